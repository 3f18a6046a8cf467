"""Window generator set-up: the shape check and the geometry, against closed-form sizes."""

import pytest

from convaccel.hw import PRESETS
from convaccel.hw.window_geometry import WindowGeometry
from convaccel.sim.amaranth_frames import run_testbench

CONFIG = PRESETS["tiny"]          # 2 lanes, up to 4 channels, 12 x 12, kernel 3, dilation 3
LANES = CONFIG.array_rows


def shape_fields(height=5, width=6, channels=3, kernel=(3, 3), stride=(1, 1),
                 dilation=(1, 1), padding=(0, 0, 0, 0)):
    top, bottom, left, right = padding
    return dict(height=height, width=width, channels=channels,
                kernel_h=kernel[0], kernel_w=kernel[1], stride_h=stride[0], stride_w=stride[1],
                dilation_h=dilation[0], dilation_w=dilation[1],
                pad_top=top, pad_bottom=bottom, pad_left=left, pad_right=right)


def expected_geometry(f):
    """Sizes by the usual convolution formulas (floor division, no counting)."""
    ring = (f["kernel_h"] - 1) * f["dilation_h"] + 1
    span_w = (f["kernel_w"] - 1) * f["dilation_w"] + 1
    out_h = (f["height"] + f["pad_top"] + f["pad_bottom"] - ring) // f["stride_h"] + 1
    out_w = (f["width"] + f["pad_left"] + f["pad_right"] - span_w) // f["stride_w"] + 1
    groups = -(-f["channels"] // LANES)
    last_lanes = f["channels"] - (groups - 1) * LANES
    return dict(ring=ring, kernel_h_last=f["kernel_h"] - 1, kernel_w_last=f["kernel_w"] - 1,
                height_last=f["height"] - 1, width_last=f["width"] - 1,
                groups=groups, groups_last=groups - 1, last_lanes=last_lanes,
                unused_lanes=sum(1 << lane for lane in range(LANES) if lane >= last_lanes),
                out_height=out_h, out_width=out_w, out_height_last=out_h - 1,
                top_slot=(-f["pad_top"]) % ring)


def run(testbench):
    run_testbench(WindowGeometry(CONFIG), testbench)


async def start(ctx, dut, fields):
    """Present ``fields`` with ``start`` for one cycle; returns out_of_range of the next
    cycle (the check works on the sampled shape)."""
    for name, value in fields.items():
        ctx.set(getattr(dut.shape, name), value)
    ctx.set(dut.start, 1)
    assert not ctx.get(dut.out_of_range)
    await ctx.tick()
    ctx.set(dut.start, 0)
    return ctx.get(dut.out_of_range)


SHAPES = [
    shape_fields(),
    shape_fields(height=12, width=12, channels=4, stride=(2, 3), padding=(2, 1, 0, 2)),
    shape_fields(height=9, width=7, channels=1, kernel=(3, 2), dilation=(3, 2),
                 padding=(2, 2, 1, 0)),
    shape_fields(height=1, width=1, channels=2, kernel=(1, 1)),
    shape_fields(height=4, width=4, channels=4, stride=(4, 4), padding=(1, 1, 1, 1)),
]


@pytest.mark.parametrize("fields", SHAPES, ids=range(len(SHAPES)))
def test_geometry_matches_the_formulas_and_the_cycle_budget(fields):
    want = expected_geometry(fields)

    async def testbench(ctx, dut):
        assert not await start(ctx, dut, fields)
        assert not ctx.get(dut.valid)
        assert {name: ctx.get(getattr(dut.frame_shape, name)) for name in fields} == fields
        cycles = 1
        while not ctx.get(dut.counted):
            assert not ctx.get(dut.too_large) and not ctx.get(dut.valid)
            await ctx.tick()
            cycles += 1
        geometry = ctx.get(dut.geometry)
        for name in ("ring", "groups", "out_height", "out_width", "top_slot"):
            assert getattr(geometry, name) == want[name], name   # final at counted
        await ctx.tick()
        assert ctx.get(dut.valid) and not ctx.get(dut.counted)
        geometry = ctx.get(dut.geometry)
        assert {name: getattr(geometry, name) for name in want} == want
        # SPAN, SETUP, one COUNT cycle per step of the longest count and two
        # with nothing left (the second sees the first's registered "idle"),
        # then PREPARE (the counted cycle).
        steps = max(want["groups"] - 1, want["out_height"] - 1, want["out_width"] - 1,
                    fields["pad_top"])
        assert cycles == 2 + steps + 2 + 1

    run(testbench)


def test_kernel_larger_than_the_padded_input_is_too_large():
    fields = shape_fields(height=2, width=6, kernel=(3, 3))   # 3 rows of taps, 2 input rows

    async def testbench(ctx, dut):
        assert not await start(ctx, dut, fields)
        for _ in range(10):
            if ctx.get(dut.too_large):
                break
            assert not ctx.get(dut.counted)
            await ctx.tick()
        else:
            raise AssertionError("too_large never came")
        await ctx.tick()
        for _ in range(5):          # idle again: no geometry, no second report
            assert not (ctx.get(dut.too_large) or ctx.get(dut.counted) or ctx.get(dut.valid))
            await ctx.tick()
        # A good shape afterwards is worked out as usual.
        assert not await start(ctx, dut, SHAPES[0])
        while not ctx.get(dut.counted):
            await ctx.tick()
        await ctx.tick()
        assert ctx.get(dut.geometry.out_width) == expected_geometry(SHAPES[0])["out_width"]

    run(testbench)


@pytest.mark.parametrize("field, value", [("height", 0), ("width", 13), ("channels", 5),
                                          ("kernel_h", 0), ("stride_h", 0), ("dilation_w", 0),
                                          ("pad_left", 3)])
def test_out_of_range_shapes_begin_no_set_up(field, value):
    fields = {**shape_fields(), field: value}

    async def testbench(ctx, dut):
        assert await start(ctx, dut, fields)
        assert ctx.get(getattr(dut.frame_shape, field)) == value   # sampled all the same
        for _ in range(20):
            assert not (ctx.get(dut.counted) or ctx.get(dut.too_large) or ctx.get(dut.valid))
            await ctx.tick()
            assert not ctx.get(dut.out_of_range)      # one cycle only

    run(testbench)


def test_cancel_abandons_the_set_up_and_start_clears_valid():
    async def testbench(ctx, dut):
        await start(ctx, dut, SHAPES[1])
        await ctx.tick()
        ctx.set(dut.cancel, 1)
        await ctx.tick()
        ctx.set(dut.cancel, 0)
        for _ in range(20):
            assert not (ctx.get(dut.counted) or ctx.get(dut.valid))
            await ctx.tick()
        await start(ctx, dut, SHAPES[0])
        while not ctx.get(dut.counted):
            await ctx.tick()
        await ctx.tick()
        assert ctx.get(dut.valid)
        await start(ctx, dut, SHAPES[1])      # a new frame: the old geometry is invalid
        assert not ctx.get(dut.valid)

    run(testbench)
