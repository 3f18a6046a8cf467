"""Window walk: the taps of one output row, against the engine's loop order written out."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from convaccel.hw import PRESETS
from convaccel.hw.window_walk import WindowWalk

CONFIG = PRESETS["tiny"].replace(array_block=3)   # 2 lanes: up to 2 channel groups


def expected_row(*, height, width, kernel, stride_w, dilation, pad_left, groups, out_width,
                 ring, row_top, row_top_slot, block):
    """(y, x, slot, group, pad, last_group, row_last) of every slice of the row, by the
    nested loops of the module docstring."""
    slices = []
    for first in range(0, out_width, block):
        positions = range(first, min(first + block, out_width))
        for r in range(kernel[0]):
            for s in range(kernel[1]):
                for g in range(groups):
                    for q in positions:
                        y = row_top + dilation[0] * r
                        x = stride_w * q + dilation[1] * s - pad_left
                        pad = not (0 <= y < height and 0 <= x < width)
                        slot = (row_top_slot + dilation[0] * r) % ring
                        slices.append([y, x, slot, g, int(pad), int(g == groups - 1), 0])
    slices[-1][-1] = 1
    return [tuple(item) for item in slices]


ROWS = [
    # image, kernel, stride_w, dilation, pad_left, groups, Q, L, row top, its slot
    dict(height=5, width=6, kernel=(3, 3), stride_w=1, dilation=(1, 1), pad_left=1,
         groups=2, out_width=6, ring=3, row_top=-1, row_top_slot=2),
    dict(height=9, width=9, kernel=(3, 2), stride_w=3, dilation=(2, 3), pad_left=2,
         groups=1, out_width=3, ring=5, row_top=4, row_top_slot=4),
    dict(height=4, width=7, kernel=(1, 1), stride_w=2, dilation=(1, 1), pad_left=0,
         groups=2, out_width=4, ring=1, row_top=3, row_top_slot=0),
    dict(height=3, width=2, kernel=(3, 3), stride_w=4, dilation=(3, 1), pad_left=2,
         groups=1, out_width=1, ring=7, row_top=-2, row_top_slot=5),
    # 1x1, one group: each block is a single (r, s, g) pass
    dict(height=2, width=12, kernel=(1, 1), stride_w=2, dilation=(1, 1), pad_left=1,
         groups=1, out_width=7, ring=1, row_top=1, row_top_slot=0),
]


@pytest.mark.parametrize("row", ROWS, ids=range(len(ROWS)))
def test_walk_visits_the_rows_taps_in_engine_order(row):
    want = expected_row(**row, block=CONFIG.array_block)
    dut = WindowWalk(CONFIG)
    rng = np.random.default_rng(len(want))
    got = []

    async def testbench(ctx):
        shape, geo = dut.shape, dut.geometry
        for name, value in dict(height=row["height"], width=row["width"],
                                stride_w=row["stride_w"], dilation_h=row["dilation"][0],
                                dilation_w=row["dilation"][1],
                                pad_left=row["pad_left"]).items():
            ctx.set(getattr(shape, name), value)
        for name, value in dict(kernel_h_last=row["kernel"][0] - 1,
                                kernel_w_last=row["kernel"][1] - 1,
                                groups_last=row["groups"] - 1, ring=row["ring"],
                                out_width=row["out_width"]).items():
            ctx.set(getattr(geo, name), value)
        ctx.set(dut.row_top, row["row_top"])
        ctx.set(dut.row_top_slot, row["row_top_slot"])
        for walk in range(2):                  # the same row twice: begin starts afresh
            ctx.set(dut.begin, 1)
            await ctx.tick()
            ctx.set(dut.begin, 0)
            taken = []
            while not taken or not taken[-1][-1]:
                step = rng.random() < 0.7      # gaps: the walk holds its slice
                tap = ctx.get(dut.tap)
                current = (tap.y, tap.x, tap.slot, tap.group, ctx.get(dut.pad),
                           ctx.get(dut.last_group), ctx.get(dut.row_last))
                ctx.set(dut.step, step)
                if step:
                    taken.append(current)
                await ctx.tick()
                assert len(taken) <= len(want)
            ctx.set(dut.step, 0)
            got.append(taken)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert got == [want, want]
