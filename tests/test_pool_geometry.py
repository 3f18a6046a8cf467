"""Pooling set-up: the shape check and the geometry, against the floor-rule sizes."""

import pytest

from convaccel.hw import PRESETS
from convaccel.hw.pool_geometry import PoolGeometry, PoolMode
from convaccel.sim.amaranth_frames import run_testbench

CONFIG = PRESETS["tiny"]          # 2 lanes, up to 4 channels, 12 x 12, window 3, stride 3
LANES = CONFIG.array_cols


def shape_fields(height=6, width=6, channels=3, kernel=2, stride=2, mode=PoolMode.MAX,
                 in_block=1):
    return dict(height=height, width=width, channels=channels, kernel=kernel, stride=stride,
                mode=mode, in_block=in_block)


def expected_geometry(f):
    """Sizes by the pooling formulas (floor division, no counting)."""
    groups = -(-f["channels"] // LANES)
    return dict(groups=groups, groups_last=groups - 1,
                last_lanes=f["channels"] - (groups - 1) * LANES,
                height_last=f["height"] - 1, width_last=f["width"] - 1,
                out_height=(f["height"] - f["kernel"]) // f["stride"] + 1,
                out_width=(f["width"] - f["kernel"]) // f["stride"] + 1)


def run(testbench):
    run_testbench(PoolGeometry(CONFIG), testbench)


async def start(ctx, dut, fields):
    """Present ``fields`` with ``start`` for one cycle; returns ``invalid`` of that cycle."""
    for name, value in fields.items():
        ctx.set(getattr(dut.shape, name), value)
    ctx.set(dut.start, 1)
    refused = ctx.get(dut.invalid)
    await ctx.tick()
    ctx.set(dut.start, 0)
    return refused


def geometry_of(ctx, dut):
    geometry = ctx.get(dut.geometry)
    return {name: getattr(geometry, name) for name in expected_geometry(shape_fields())}


SHAPES = [
    shape_fields(),
    shape_fields(height=7, width=9, channels=4, kernel=3, stride=2, mode=PoolMode.AVG,
                 in_block=3),
    shape_fields(height=12, width=12, channels=1, kernel=1, stride=1),
    shape_fields(height=3, width=8, channels=2, kernel=3, stride=3, in_block=8),
    shape_fields(height=1, width=1, channels=4, kernel=1, stride=3),
]


@pytest.mark.parametrize("fields", SHAPES, ids=range(len(SHAPES)))
def test_geometry_matches_the_formulas_and_the_cycle_budget(fields):
    want = expected_geometry(fields)

    async def testbench(ctx, dut):
        assert not await start(ctx, dut, fields)
        assert {name: ctx.get(getattr(dut.frame_shape, name)) for name in fields} == fields
        cycles = 0
        while not ctx.get(dut.counted):
            await ctx.tick()
            cycles += 1
            assert cycles < 50
        for name in ("groups", "out_height", "out_width"):
            assert geometry_of(ctx, dut)[name] == want[name], name     # final at counted
        await ctx.tick()
        assert not ctx.get(dut.counted)
        assert geometry_of(ctx, dut) == want
        # One COUNT cycle per step of the longest count, one more that sees
        # the registered "no count stepped", then the counted one (its own
        # state, a cycle after the last COUNT).
        assert cycles == max(want["groups"], want["out_height"], want["out_width"]) + 1
        for _ in range(5):                     # idle: nothing moves
            await ctx.tick()
            assert not ctx.get(dut.counted) and geometry_of(ctx, dut) == want

    run(testbench)


@pytest.mark.parametrize("field, value", [("height", 0), ("width", 13), ("channels", 5),
                                          ("channels", 0), ("kernel", 0), ("height", 14),
                                          ("stride", 0), ("in_block", 9), ("in_block", 0),
                                          ("kernel", 3)])    # the last: larger than 2 x 6
def test_invalid_shapes_begin_no_set_up(field, value):
    fields = {**shape_fields(height=2), field: value}

    async def testbench(ctx, dut):
        assert not await start(ctx, dut, SHAPES[1])       # a geometry to keep
        while not ctx.get(dut.counted):
            await ctx.tick()
        await ctx.tick()
        kept = geometry_of(ctx, dut)
        assert await start(ctx, dut, fields)
        assert ctx.get(getattr(dut.frame_shape, field)) == value   # sampled all the same
        for _ in range(20):
            assert not ctx.get(dut.counted) and geometry_of(ctx, dut) == kept
            await ctx.tick()

    run(testbench)


def test_cancel_abandons_the_set_up():
    async def testbench(ctx, dut):
        await start(ctx, dut, SHAPES[2])                  # 11 counting cycles
        await ctx.tick()
        ctx.set(dut.cancel, 1)
        await ctx.tick()
        ctx.set(dut.cancel, 0)
        for _ in range(20):
            assert not ctx.get(dut.counted)
            await ctx.tick()
        assert not await start(ctx, dut, SHAPES[1])
        while not ctx.get(dut.counted):
            await ctx.tick()
        await ctx.tick()
        assert geometry_of(ctx, dut) == expected_geometry(SHAPES[1])

    run(testbench)
