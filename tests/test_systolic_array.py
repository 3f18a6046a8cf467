"""Systolic grid: multi-tile matrix products against the golden model (Amaranth sim)."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from convaccel.golden import conv2d
from convaccel.hw import PRESETS
from convaccel.hw.systolic_array import SystolicArray


def golden_tile(a, w, psum):
    """psum + a @ w, computed by the golden model as a 1x1 convolution."""
    x = a.T.reshape(a.shape[1], a.shape[0], 1)            # (K, T, 1): channels = reduction
    weights = w.T.reshape(w.shape[1], w.shape[0], 1, 1)   # (M, K, 1, 1)
    return conv2d(x, weights)[:, :, 0].T + psum


def run_tiles(config, tiles, *, rng, bubble=0.0, load_gap=0.0, guard=SystolicArray.LOAD_GUARD):
    """Drive tiles through the array honouring its timing contract (loads from
    ``guard`` cycles after a swap); return outputs, cycles."""
    dut = SystolicArray(config)
    rows, cols = dut.rows, dut.cols
    outputs = []
    cycles = [0]

    async def testbench(ctx):
        cycle = 0

        async def tick():
            nonlocal cycle
            await ctx.tick()
            cycle += 1
            if ctx.get(dut.out_valid):
                outputs.append([ctx.get(dut.psum_out[c]) for c in range(cols)])

        late = [None, None]   # the vector and partial sums of the previous slot

        def present(vector=None, psum=None, swap=0, load=None):
            """One slot of the schedule: its swap now, its vector a cycle later
            (the swap goes one cycle ahead of the tile's first activation)."""
            ctx.set(dut.swap, swap)
            (vector, psum), late[:] = late, (vector, psum)
            ctx.set(dut.act_valid, vector is not None)
            if vector is not None:
                for r in range(rows):
                    ctx.set(dut.act[r], int(vector[r]))
                for c in range(cols):
                    ctx.set(dut.psum_in[c], int(psum[c]))
            ctx.set(dut.wload_valid, load is not None)
            if load is not None:
                row, values = load
                ctx.set(dut.wload_row, row)
                for c in range(cols):
                    ctx.set(dut.wload_data[c], int(values[c]))

        # Tile 0's weights go in before anything else.
        for r in range(rows):
            present(load=(r, tiles[0][1][r]))
            await tick()
        carried = None   # a last load due in the cycle of the next tile's swap
        for index, (a, w, psum) in enumerate(tiles):
            nxt = tiles[index + 1][1] if index + 1 < len(tiles) else None
            swap_cycle = cycle
            pending_loads = list(range(rows)) if nxt is not None else []
            v = 0
            while v < len(a) or pending_loads:
                load, carried = carried, None
                # Next tile's rows from LOAD_GUARD cycles after this tile's swap.
                if (load is None and pending_loads and cycle >= swap_cycle + guard
                        and rng.random() >= load_gap):
                    r = pending_loads.pop(0)
                    load = (r, nxt[r])
                if v < len(a) and (v == 0 or rng.random() >= bubble):
                    present(a[v], psum[v], swap=int(v == 0), load=load)
                    v += 1
                else:
                    present(load=load)
                await tick()
                # The contract allows the last row in the next swap's own cycle.
                if v == len(a) and len(pending_loads) == 1 and cycle >= swap_cycle + guard:
                    r = pending_loads.pop(0)
                    carried = (r, nxt[r])
        present()
        await tick()
        present()
        for _ in range(dut.latency + 2):
            await tick()
        cycles[0] = cycle

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return np.array(outputs, dtype=np.int64).reshape(-1, cols), cycles[0]


def random_tiles(config, rng, lengths, *, extreme=False):
    rows, cols = config.array_rows, config.array_cols
    tiles = []
    for length in lengths:
        if extreme:
            a = np.full((length, rows), config.act_min)
            w = np.full((rows, cols), config.weight_min)
        else:
            a = rng.integers(config.act_min, config.act_max + 1, (length, rows))
            w = rng.integers(config.weight_min, config.weight_max + 1, (rows, cols))
        psum = rng.integers(-(1 << 20), 1 << 20, (length, cols))
        tiles.append((a, w, psum))
    return tiles


@pytest.mark.parametrize("rows, cols", [(1, 1), (1, 4), (4, 1), (2, 3), (3, 2), (4, 4)])
def test_tiles_back_to_back_with_bubbles_match_golden(rows, cols):
    config = PRESETS["tiny"].replace(array_rows=rows, array_cols=cols)
    rng = np.random.default_rng(rows * 10 + cols)
    tiles = random_tiles(config, rng, [rows + cols + 2, 1, 7, rows + cols - 1])
    out, _ = run_tiles(config, tiles, rng=rng, bubble=0.3, load_gap=0.3)
    expected = np.concatenate([golden_tile(a, w, p) for a, w, p in tiles])
    assert out.shape == expected.shape
    np.testing.assert_array_equal(out, expected)


def test_extreme_operands_everywhere():
    config = PRESETS["tiny"].replace(array_rows=3, array_cols=3)
    rng = np.random.default_rng(5)
    tiles = random_tiles(config, rng, [6, 6], extreme=True)
    out, _ = run_tiles(config, tiles, rng=rng)
    expected = np.concatenate([golden_tile(a, w, p) for a, w, p in tiles])
    np.testing.assert_array_equal(out, expected)
    assert expected[0, 0] - tiles[0][2][0, 0] == 3 * 128 * 128  # by hand


def test_tiles_of_rows_plus_the_load_guard_need_no_bubble():
    """The documented minimum tile length streams tiles back to back, however
    wide the array (the load beats follow the swap down skewed columns)."""
    config = PRESETS["tiny"].replace(array_rows=3, array_cols=6, max_out_channels=6)
    rng = np.random.default_rng(9)
    length = 3 + SystolicArray.LOAD_GUARD
    tiles = random_tiles(config, rng, [length] * 5)
    out, cycles = run_tiles(config, tiles, rng=rng)
    np.testing.assert_array_equal(
        out, np.concatenate([golden_tile(a, w, p) for a, w, p in tiles]))
    # rows cycles of first load + 5 tiles of `length` vectors + the activations'
    # cycle behind their swap + the latency (rows + cols + 2) + 2.
    assert cycles == 3 + 5 * length + 1 + (3 + 6 + 2) + 2


@pytest.mark.parametrize("rows, cols", [(2, 3), (3, 4)])
def test_a_load_before_the_guard_corrupts_the_running_tile(rows, cols):
    """The contract's guard is needed: loads in the swap's own cycle reach a
    PE before it has copied its shadow weight (so the test above can fail)."""
    config = PRESETS["tiny"].replace(array_rows=rows, array_cols=cols)
    rng = np.random.default_rng(rows + cols)
    tiles = random_tiles(config, rng, [rows + cols] * 3)
    out, _ = run_tiles(config, tiles, rng=rng, guard=SystolicArray.LOAD_GUARD - 1)
    expected = np.concatenate([golden_tile(a, w, p) for a, w, p in tiles])
    assert not np.array_equal(out, expected)
