"""Pooling walk: the taps of one output row, against the raster loop order written out."""

import numpy as np
import pytest

from convaccel.hw import PRESETS
from convaccel.hw.pool_walk import PoolWalk
from convaccel.sim.amaranth_frames import run_testbench

CONFIG = PRESETS["tiny"]          # 2 lanes: up to 2 channel groups; window up to 3


def expected_row(*, kernel, stride, groups, out_width, top_slot):
    """(x, slot, group, first, window_end, row_last) of every tap of the row, by the
    nested loops of the module docstring (ring of ``kernel`` slots)."""
    taps = []
    for q in range(out_width):
        for g in range(groups):
            for r in range(kernel):
                for s in range(kernel):
                    taps.append([stride * q + s, (top_slot + r) % kernel, g,
                                 int(r == 0 and s == 0),
                                 int(r == kernel - 1 and s == kernel - 1), 0])
    taps[-1][-1] = 1
    return [tuple(tap) for tap in taps]


ROWS = [
    dict(kernel=2, stride=2, groups=2, out_width=3, top_slot=1),
    dict(kernel=3, stride=2, groups=1, out_width=4, top_slot=2),
    dict(kernel=3, stride=1, groups=2, out_width=2, top_slot=0),
    dict(kernel=1, stride=3, groups=2, out_width=4, top_slot=0),
    dict(kernel=2, stride=3, groups=1, out_width=1, top_slot=0),
]


@pytest.mark.parametrize("row", ROWS, ids=range(len(ROWS)))
def test_walk_visits_the_rows_taps_in_raster_order(row):
    want = expected_row(**row)
    dut = PoolWalk(CONFIG)
    rng = np.random.default_rng(len(want))
    got = []

    async def testbench(ctx, dut):
        ctx.set(dut.shape.kernel, row["kernel"])
        ctx.set(dut.shape.stride, row["stride"])
        ctx.set(dut.geometry.groups_last, row["groups"] - 1)
        ctx.set(dut.geometry.out_width, row["out_width"])
        ctx.set(dut.row_top_slot, row["top_slot"])
        for _ in range(2):                     # the same row twice: begin starts afresh
            ctx.set(dut.begin, 1)
            await ctx.tick()
            ctx.set(dut.begin, 0)
            taken = []
            while not taken or not taken[-1][-1]:
                step = rng.random() < 0.7      # gaps: the walk holds its tap
                tap = ctx.get(dut.tap)
                current = (tap.x, tap.slot, tap.group, ctx.get(dut.first),
                           ctx.get(dut.window_end), ctx.get(dut.row_last))
                ctx.set(dut.step, step)
                if step:
                    taken.append(current)
                await ctx.tick()
                assert len(taken) <= len(want)
            ctx.set(dut.step, 0)
            got.append(taken)

    run_testbench(dut, testbench)
    assert got == [want, want]
