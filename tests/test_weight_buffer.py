"""Weight buffer: every block gets the whole weight sequence in order, the stream
carries it once (plus the part above the RAM per further block), and no beat
of the next layer is taken early."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from convaccel.hw.weight_buffer import WeightBuffer


def stream_for(sequence, blocks, depth):
    """What the host sends: the block once, then the part above ``depth`` per block."""
    return list(sequence) + list(sequence[depth:]) * (blocks - 1)


def run_problems(dut, problems, rows, rng, idle=0.3, stall=0.3, spare=5):
    """Run ``problems`` (lists of (sequence, blocks)) one after another.

    A model of the tile loader wants a tile at the start, takes its ``rows`` beats, waits a random time, then consumes
    the tile (``block_end`` on a block's last tile, ``want_tile`` when a
    further tile follows) and only then takes the next one. The stream offers each problem's beats and
    then ``spare`` beats of the next problem; returns, per problem, the beats
    the loader saw and how many stream beats were taken.
    """
    results = []

    async def testbench(ctx):
        for sequence, blocks in problems:
            sent = stream_for(sequence, blocks, dut.depth) + [0] * spare
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            seen, taken, tiles = [], 0, len(sequence) * blocks // rows
            in_tile, wait = 0, 0
            for _ in range(40 * len(sequence) * blocks + 200):
                offer = taken < len(sent) and rng.random() >= idle
                ctx.set(dut.i.valid, offer)
                ctx.set(dut.i.payload, sent[taken] if offer else 0)
                loading = in_tile < rows and len(seen) < len(sequence) * blocks
                ctx.set(dut.o.ready, loading and rng.random() >= stall)
                consume = in_tile == rows and wait == 0
                tile = len(seen) // rows - 1
                ctx.set(dut.block_end, consume and (tile + 1) % (len(sequence) // rows) == 0)
                ctx.set(dut.want_tile, consume and tile + 1 < tiles)
                took = offer and ctx.get(dut.i.ready)
                if ctx.get(dut.o.valid) and ctx.get(dut.o.ready):
                    seen.append(ctx.get(dut.o.payload))
                    in_tile += 1
                    wait = int(rng.integers(0, 6)) if in_tile == rows else 0
                elif in_tile == rows:
                    if consume:
                        in_tile = 0
                    else:
                        wait -= 1
                await ctx.tick()
                taken += bool(took)
                if len(seen) == len(sequence) * blocks and in_tile == 0 and tile + 1 == tiles:
                    break
            ctx.set(dut.block_end, 0)
            ctx.set(dut.want_tile, 0)
            ctx.set(dut.i.valid, 0)
            ctx.set(dut.o.ready, 0)
            for _ in range(10):         # nothing more is taken once the problem ends
                await ctx.tick()
            results.append((seen, taken))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return results


@pytest.mark.parametrize("depth, beats, blocks", [
    (32, 16, 5),     # fits: one pass on the stream
    (16, 16, 4),     # fits exactly
    (8, 24, 4),      # does not fit: the part above 8 streams per block
    (1, 4, 3),       # a one-word RAM
    (16, 8, 1),      # one block: nothing replayed
])
@pytest.mark.parametrize("idle, stall", [(0.0, 0.0), (0.4, 0.4)])
def test_every_block_sees_the_sequence_and_the_stream_carries_it_once(
        depth, beats, blocks, idle, stall):
    rows = 4
    rng = np.random.default_rng(depth * 100 + beats + blocks + int(10 * idle))
    sequence = [int(v) for v in rng.integers(0, 1 << 12, beats)]
    dut = WeightBuffer(12, depth, max_beats=64, rows=rows)
    [(seen, taken)] = run_problems(dut, [(sequence, blocks)], rows, rng, idle, stall)
    assert seen == sequence * blocks
    assert taken == len(stream_for(sequence, blocks, depth))


def test_a_new_problem_records_again():
    rng = np.random.default_rng(7)
    dut = WeightBuffer(12, 16, max_beats=64, rows=4)
    first = [int(v) for v in rng.integers(0, 1 << 12, 12)]
    second = [int(v) for v in rng.integers(0, 1 << 12, 24)]
    results = run_problems(dut, [(first, 3), (second, 3), (first, 2)], 4, rng)
    for (seen, taken), (sequence, blocks) in zip(results, [(first, 3), (second, 3), (first, 2)]):
        assert seen == sequence * blocks
        assert taken == len(stream_for(sequence, blocks, 16))


@pytest.mark.parametrize("name, value", [
    ("depth", 0), ("max_beats", 0), ("depth", 2.5), ("rows", 0)])
def test_bad_sizes_name_the_parameter(name, value):
    kwargs = {"depth": 8, "max_beats": 8, "rows": 4, name: value}
    with pytest.raises(ValueError, match=name):
        WeightBuffer(8, **kwargs)
