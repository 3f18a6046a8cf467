"""Weight loader: tiles enter the shadow-register port whole, in order, and only when allowed."""

import numpy as np
import pytest

from convaccel.hw import PRESETS
from convaccel.hw.weight_loader import WeightLoader
from convaccel.sim.amaranth_frames import run_testbench

CONFIG = PRESETS["tiny"]
ROWS, COLS = CONFIG.array_rows, CONFIG.array_cols


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_tiles_load_whole_in_order_after_the_swap_guard(seed):
    rng = np.random.default_rng(seed)
    tiles = 12
    beats = [[int(v) for v in rng.integers(-128, 128, COLS)] for _ in range(tiles * ROWS)]
    loads, consumes = [], []

    async def testbench(ctx, dut):
        sent, consumed, cycle = 0, 0, 0
        ctx.set(dut.first_tile, 1)
        await ctx.tick()
        ctx.set(dut.first_tile, 0)
        while consumed < tiles:
            assert cycle < 5000, "tiles stopped loading"
            offer = sent < len(beats) and rng.random() < 0.7
            ctx.set(dut.weights.valid, offer)
            if offer:
                ctx.set(dut.weights.payload, beats[sent])
            full = ctx.get(dut.full)
            consume = full and rng.random() < 0.3
            ctx.set(dut.consume, consume)
            ctx.set(dut.more, consumed + 1 < tiles)
            took = offer and ctx.get(dut.weights.ready)
            if took or full:
                assert not (took and full), "a beat taken while a tile waits"
            if ctx.get(dut.wload_valid):
                loads.append((cycle, ctx.get(dut.wload_row), list(ctx.get(dut.wload_data))))
            predicted = ctx.get(dut.full_unless_consumed)
            await ctx.tick()
            assert ctx.get(dut.full) == (predicted and not consume), cycle
            sent += took
            if consume:
                consumes.append(cycle)
                consumed += 1
            cycle += 1
        ctx.set(dut.consume, 0)
        for _ in range(COLS + ROWS + 4):
            assert not ctx.get(dut.weights.ready), "a tile taken after the last one"
            await ctx.tick()

    run_testbench(WeightLoader(CONFIG), testbench)
    assert [data for _, _, data in loads] == beats
    assert [row for _, row, _ in loads] == list(range(ROWS)) * tiles
    # A tile's first beat is taken GUARD + 1 cycles after the previous tile
    # was consumed at the earliest (the swap has entered the array by then).
    for k, consumed_at in enumerate(consumes[:-1]):
        first_load = loads[(k + 1) * ROWS][0]
        assert first_load >= consumed_at + WeightLoader.GUARD + 1, (k, consumed_at, first_load)


def test_nothing_is_taken_until_a_tile_is_wanted_and_after_the_last():
    async def testbench(ctx, dut):
        ctx.set(dut.weights.valid, 1)
        for _ in range(4):
            assert not ctx.get(dut.weights.ready)
            await ctx.tick()
        ctx.set(dut.first_tile, 1)
        await ctx.tick()
        ctx.set(dut.first_tile, 0)
        for _ in range(ROWS):
            assert ctx.get(dut.weights.ready)
            await ctx.tick()
        assert ctx.get(dut.full) and not ctx.get(dut.weights.ready)
        ctx.set(dut.consume, 1)            # the problem's last tile: no more wanted
        ctx.set(dut.more, 0)
        await ctx.tick()
        ctx.set(dut.consume, 0)
        for _ in range(2 * ROWS + WeightLoader.GUARD):
            assert not ctx.get(dut.weights.ready) and not ctx.get(dut.full)
            await ctx.tick()

    run_testbench(WeightLoader(CONFIG), testbench)
