"""Ring writer: input beats into the ring of rows, row by row as the output rows need them."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from convaccel.hw import PRESETS
from convaccel.hw.ring_writer import RingWriter, line_buffer_depth

CONFIG = PRESETS["tiny"]   # 2 lanes, 4 channels (2 groups), 12 wide, kernel 3, dilation 3
LANES = CONFIG.array_rows


def word_address(group, x, slot):
    """The tiny build's memory map: 1 bit of group, 4 of column (12 wide), 3 of slot (7 rows)."""
    return group | x << 1 | slot << 5


def test_tiny_line_buffer_depth():
    assert line_buffer_depth(CONFIG) == 7 * 16 * 2


FRAMES = [
    # H, W, C, ring L, pad_top, stride_h, output rows P
    dict(height=5, width=3, channels=3, ring=3, pad_top=1, stride_h=1, out_height=5),
    dict(height=7, width=2, channels=4, ring=1, pad_top=0, stride_h=2, out_height=4),
    dict(height=6, width=4, channels=1, ring=7, pad_top=2, stride_h=3, out_height=1),
    dict(height=9, width=1, channels=2, ring=5, pad_top=2, stride_h=4, out_height=2),
]


@pytest.mark.parametrize("frame", FRAMES, ids=range(len(FRAMES)))
def test_rows_are_taken_as_each_output_row_needs_them(frame):
    H, W, C, L = frame["height"], frame["width"], frame["channels"], frame["ring"]
    groups = -(-C // LANES)
    beats = [(y, x, g) for y in range(H) for x in range(W) for g in range(groups)]
    rng = np.random.default_rng(H * 7 + W)
    data = {beat: [int(v) for v in rng.integers(-128, 128, LANES)] for beat in beats}
    dut = RingWriter(CONFIG)
    writes, taken_per_row = [], []

    async def testbench(ctx):
        for name, value in dict(ring=L, ring_last=L - 1, height_last=H - 1, width_last=W - 1,
                                groups_last=groups - 1,
                                last_lanes=C - (groups - 1) * LANES).items():
            ctx.set(getattr(dut.geometry, name), value)
        ctx.set(dut.shape.pad_top, frame["pad_top"])
        row_top = -frame["pad_top"]
        ctx.set(dut.row_top, row_top)
        ctx.set(dut.restart, 1)
        await ctx.tick()
        ctx.set(dut.restart, 0)
        sent = 0
        for p in range(frame["out_height"]):
            ctx.set(dut.fill, 1)
            while ctx.get(dut.needed):
                valid = rng.random() < 0.7
                ctx.set(dut.data, data[beats[sent]])
                ctx.set(dut.accept, valid)
                assert ctx.get(dut.frame_end) == (sent == len(beats) - 1)
                if valid and ctx.get(dut.write_en):
                    writes.append((ctx.get(dut.write_addr), list(ctx.get(dut.write_data))))
                await ctx.tick()
                sent += valid
            ctx.set(dut.accept, 0)
            ctx.set(dut.fill, 0)
            taken_per_row.append(sent)
            # The next output row: its top tap row moves stride_h rows down.
            for _ in range(frame["stride_h"] if p + 1 < frame["out_height"] else 0):
                row_top += 1
                ctx.set(dut.row_top, row_top)
                ctx.set(dut.extend, 1)
                await ctx.tick()
                ctx.set(dut.extend, 0)
        # Below the last window: the rest of the frame is counted and dropped.
        while ctx.get(dut.rows_left):
            assert sent < len(beats)
            ctx.set(dut.accept, 1)
            assert not ctx.get(dut.write_en)
            await ctx.tick()
            sent += 1
        ctx.set(dut.accept, 0)
        assert sent == len(beats)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()

    # Output row p needs input rows up to y0 + L - 1 (y0 = p * Uh - pt): all of them
    # taken before it is emitted, no more.
    for p, sent in enumerate(taken_per_row):
        rows = min(H, max(0, p * frame["stride_h"] - frame["pad_top"] + L))
        assert sent == rows * W * groups, (p, sent)
    # A row is stored iff some output row's taps reach it, in slot y mod L, as it
    # came (the reader zeroes the lanes beyond C).
    tops = [p * frame["stride_h"] - frame["pad_top"] for p in range(frame["out_height"])]
    want = []
    for y, x, g in beats:
        if any(top <= y < top + L for top in tops):
            want.append((word_address(g, x, y % L), list(data[(y, x, g)])))
    assert writes == want
