"""Pooling ring writer: block-order beats into the ring, driven as the pooling unit drives it."""

import numpy as np
import pytest
from amaranth.utils import ceil_log2

from convaccel.hw import PRESETS
from convaccel.hw.pool_ring_writer import PoolRingWriter
from convaccel.sim.amaranth_frames import run_testbench

CONFIG = PRESETS["tiny"].replace(array_block=3)   # 2 lanes, up to 2 groups, 12 wide, ring 3
LANES = CONFIG.array_cols
GROUP_BITS, X_BITS = ceil_log2(2), ceil_log2(CONFIG.max_width)


def word_address(g, x, slot):
    """Group in the low bits, then the column, then the ring slot (the module's layout)."""
    return g | x << GROUP_BITS | slot << (GROUP_BITS + X_BITS)


def beat_order(height, width, groups, in_block):
    """(y, x, g) of every input beat, by the loops of the module docstring."""
    order = []
    for y in range(height):
        for first in range(0, width, in_block):
            for g in range(groups):
                for x in range(first, min(first + in_block, width)):
                    order.append((y, x, g))
    return order


CASES = [
    # H, W, C, K, U, in_block
    (5, 7, 3, 2, 2, 3), (6, 6, 4, 3, 1, 1), (7, 5, 1, 1, 3, 2), (4, 8, 2, 3, 3, 3),
    (3, 2, 3, 2, 1, 3), (8, 4, 4, 2, 3, 1),
]


@pytest.mark.parametrize("height, width, channels, kernel, stride, in_block", CASES)
def test_writer_stores_the_rows_each_output_row_needs(height, width, channels, kernel, stride,
                                                      in_block):
    groups = -(-channels // LANES)
    out_height = (height - kernel) // stride + 1
    order = beat_order(height, width, groups, in_block)
    rng = np.random.default_rng(height * 100 + width * 10 + channels)
    words = [[int(v) for v in rng.integers(-128, 128, LANES)] for _ in order]
    dut = PoolRingWriter(CONFIG)
    writes, taken_at_emit, beats_taken = [], [], []

    async def take_beats(ctx, fill):
        """Offer beats (with gaps) while the writer wants them; the number taken."""
        count = 0
        while ctx.get(dut.needed) if fill else ctx.get(dut.rows_left):
            index = len(beats_taken)          # the beat on offer
            assert ctx.get(dut.frame_end) == (index == len(order) - 1)
            accept = rng.random() < 0.7
            ctx.set(dut.accept, accept)
            ctx.set(dut.fill, fill)
            ctx.set(dut.data, words[index])
            if ctx.get(dut.write_en):
                writes.append((ctx.get(dut.write_addr), list(ctx.get(dut.write_data)),
                               order[index]))
            if accept:
                beats_taken.append(index)
                count += 1
            await ctx.tick()
            ctx.set(dut.accept, 0)
        return count

    async def testbench(ctx, dut):
        for name, value in dict(height=height, width=width, kernel=kernel,
                                in_block=in_block).items():
            ctx.set(getattr(dut.shape, name), value)
        for name, value in dict(groups_last=groups - 1, height_last=height - 1,
                                width_last=width - 1,
                                last_lanes=channels - (groups - 1) * LANES).items():
            ctx.set(getattr(dut.geometry, name), value)
        ctx.set(dut.restart, 1)
        await ctx.tick()
        ctx.set(dut.restart, 0)
        for p in range(out_height):
            ctx.set(dut.row_top, stride * p)
            await take_beats(ctx, fill=1)
            taken_at_emit.append(len(beats_taken))
            if p < out_height - 1:
                for _ in range(stride):     # the next output row: one input row per extend
                    ctx.set(dut.extend, 1)
                    await ctx.tick()
                ctx.set(dut.extend, 0)
        await take_beats(ctx, fill=0)       # rows below the last window: read, not stored
        assert len(beats_taken) == len(order) and not ctx.get(dut.rows_left)

    run_testbench(dut, testbench)

    # Output row p is emitted once input rows up to U*p + K (or H) are in.
    assert taken_at_emit == [min(stride * p + kernel, height) * width * groups
                             for p in range(out_height)]
    # Stored: exactly the rows some window touches, each beat once, unused lanes 0.
    touched = {y for p in range(out_height) for y in range(stride * p, stride * p + kernel)}
    want = []
    for (y, x, g), word in zip(order, words):
        if y in touched:
            data = [value if g * LANES + lane < channels else 0
                    for lane, value in enumerate(word)]
            want.append((word_address(g, x, y % kernel), data, (y, x, g)))
    assert writes == want
