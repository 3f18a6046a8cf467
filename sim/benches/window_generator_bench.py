"""cocotb testbench of the line buffer + window generator (``hw/window_generator.py``).

Random convolution shapes covering every run-time parameter (kernel 1..max
and non-square, stride and dilation per axis, asymmetric padding, H or W of
1, kernel equal to the padded image, stride larger than the kernel, a random
input zero point in the padding on half of them), plus the named corner cases, back-to-back frames with new shapes, a truncated
and an over-long frame. Input gaps and output back-pressure are random; every
output slice is compared with ``golden.extract_windows`` in stream order.
Each test logs how many configurations it covered.
"""

from __future__ import annotations

import json
import os

import cocotb
import cocotb.utils
from cocotb.triggers import ReadOnly, RisingEdge

from ...hw.window_generator import WindowGenerator, layer_shape_layout
from ..frame_unit_bench import FrameUnitBench, overlong_frame, truncated_frame
from ..streams import bench_rng, start_clock_and_reset
from ..window_streams import ConvShape, pixel_beats, window_beats
from . import bench_config


#: Random shapes per run of ``windows_of_random_shapes_back_to_back``.
RANDOM_FRAMES = 40


def random_shape(cfg, rng) -> ConvShape:
    """A random valid shape within the configuration's maxima."""
    while True:
        # Up to two channel groups and 8x8 images keep a frame to a few
        # thousand cycles; the kernel/stride/dilation/padding span the maxima.
        c = int(rng.integers(1, min(cfg.max_in_channels, cfg.array_rows + 1) + 1))
        h = int(rng.integers(1, min(cfg.max_height, 8) + 1))
        w = int(rng.integers(1, min(cfg.max_width, 8) + 1))
        kernel = tuple(int(v) for v in rng.integers(1, cfg.max_kernel + 1, 2))
        stride = tuple(int(v) for v in rng.integers(1, cfg.max_stride + 1, 2))
        dilation = tuple(int(v) for v in rng.integers(1, cfg.max_dilation + 1, 2))
        padding = tuple(int(v) for v in rng.integers(0, cfg.max_padding + 1, 4))
        fits_h = h + padding[0] + padding[1] >= dilation[0] * (kernel[0] - 1) + 1
        fits_w = w + padding[2] + padding[3] >= dilation[1] * (kernel[1] - 1) + 1
        if fits_h and fits_w:
            return ConvShape(c, h, w, kernel, stride, dilation, padding)


def corner_shapes(cfg) -> list[tuple[str, ConvShape]]:
    """The named cases of the window generator's test plan (clipped to the maxima)."""
    k = min(3, cfg.max_kernel)
    pad = min(1, cfg.max_padding)
    c = min(3, cfg.max_in_channels)
    stride = min(cfg.max_stride, k + 1)
    shapes = [
        ("1x1 kernel", ConvShape(c, 4, 5, kernel=(1, 1))),
        ("kernel equals padded image", ConvShape(c, k - 2 * pad if k > 2 * pad else 1,
                                                 k, kernel=(k, k), padding=(pad, pad, 0, 0))),
        ("stride larger than kernel", ConvShape(c, 7, 7, kernel=(1, 2), stride=(stride, stride))),
        ("dilation with padding", ConvShape(c, 6, 7, kernel=(k, k),
                                            dilation=(min(2, cfg.max_dilation),) * 2,
                                            padding=(pad,) * 4)),
        ("H = 1", ConvShape(c, 1, 6, kernel=(1, k), padding=(0, 0, pad, 0))),
        ("W = 1", ConvShape(c, 6, 1, kernel=(k, 1), padding=(pad, 0, 0, 0))),
        ("asymmetric padding", ConvShape(c, 5, 5, kernel=(k, k),
                                         padding=(cfg.max_padding, 0, 0, cfg.max_padding))),
        ("kernel not a multiple of stride", ConvShape(c, 8, 8, kernel=(k, k),
                                                      stride=(min(2, cfg.max_stride),) * 2)),
        ("non-square everything", ConvShape(c, 5, 8, kernel=(1, k), stride=(1, 2),
                                            dilation=(1, min(2, cfg.max_dilation)),
                                            padding=(0, pad, pad, 0))),
    ]
    return shapes


class WindowBench(FrameUnitBench):
    """Drivers, monitor and control of one ``window_generator`` top."""

    def __init__(self, dut, rng, **kwargs):
        self.config = cfg = bench_config()
        super().__init__(dut, WindowGenerator(cfg), layer_shape_layout(cfg), "window_generator",
                         rng, **kwargs)
        dut.zero_point.value = 0

    async def frame(self, shape: ConvShape, x=None, zero_point: int = 0):
        """Run one good frame (padding reads as ``zero_point``) and check every slice
        against the golden windows."""
        cfg = self.config
        if x is None:
            x = self.rng.integers(cfg.act_min, cfg.act_max + 1,
                                  (shape.channels, shape.height, shape.width))
        expected = window_beats(cfg, shape, x, zero_point)
        beats = pixel_beats(cfg, x)
        self.dut.zero_point.value = int(zero_point)     # sampled at start
        await self.check_frame(shape.port_fields(), beats, expected,
                               budget=20 * (len(expected) + len(beats)) + 2000)


@cocotb.test()
async def windows_of_named_corner_cases(dut):
    """1x1, kernel = padded image, stride > kernel, dilation + padding, H or W = 1, ..."""
    tb = WindowBench(dut, bench_rng(1))
    await start_clock_and_reset(dut)
    for name, shape in corner_shapes(tb.config):
        await tb.frame(shape)
        dut._log.info("corner case %r passed: %s", name, shape)
    dut._log.info("configurations covered: %d", tb.frames)


@cocotb.test()
async def windows_of_random_shapes_back_to_back(dut):
    """Random shapes over the whole parameter space, frames back to back; half of them
    with a random input zero point (the range ends included)."""
    tb = WindowBench(dut, bench_rng(2))
    cfg, rng = tb.config, tb.rng
    await start_clock_and_reset(dut)
    for index in range(RANDOM_FRAMES):
        zero_point = 0
        if index % 2:
            zero_point = int(rng.choice([cfg.act_min, cfg.act_max,
                                         int(rng.integers(cfg.act_min, cfg.act_max + 1))]))
        await tb.frame(random_shape(cfg, rng), zero_point=zero_point)
    dut._log.info("configurations covered: %d", tb.frames)


@cocotb.test()
async def truncated_and_long_frames_set_errors_and_recover(dut):
    """`last` too early: short_frame; no `last` at the end: long_frame; then a good frame."""
    tb = WindowBench(dut, bench_rng(3))
    cfg = tb.config
    await start_clock_and_reset(dut)
    shape = corner_shapes(cfg)[0][1]
    x = tb.rng.integers(cfg.act_min, cfg.act_max + 1, (shape.channels, shape.height, shape.width))
    beats = pixel_beats(cfg, x)

    for frame, flag in ((truncated_frame(beats), "short_frame"),
                        (overlong_frame(beats, extra=2), "long_frame")):
        await tb.expect_frame_error(shape.port_fields(), frame, flag)
        dut._log.info("%s: error flagged after %d input beats", flag, len(frame))
    tb.monitor.beats = []
    await tb.frame(shape, x)


@cocotb.test()
async def bad_shapes_set_config_error(dut):
    """Zero or oversized fields and kernels larger than the padded image."""
    tb = WindowBench(dut, bench_rng(4))
    cfg = tb.config
    await start_clock_and_reset(dut)
    good = ConvShape(1, 3, 3, kernel=(1, 1)).port_fields()
    bad_fields = [{"height": 0}, {"channels": 0}, {"kernel_w": 0}, {"stride_h": 0},
                  {"dilation_w": 0},
                  {"kernel_h": cfg.max_kernel, "height": 1, "dilation_h": cfg.max_dilation}]
    if cfg.max_kernel > 1:
        bad_fields.append({"kernel_w": 2, "width": 1})
    for fields in bad_fields:
        await tb.start_shape({**good, **fields})
        await ReadOnly()
        await RisingEdge(dut.clk)
        await tb.wait_done(50)
        assert tb.error()["config"] == 1, f"no config error for {fields}"
        assert int(dut.i__ready.value) == 0
    await tb.frame(ConvShape(1, 3, 3, kernel=(1, 1)))


@cocotb.test()
async def windows_benchmark(dut):
    """Cycles of one stall-free frame (only with CONVACCEL_BENCH_JSON set)."""
    target = os.environ.get("CONVACCEL_BENCH_JSON")
    if not target:
        dut._log.info("CONVACCEL_BENCH_JSON not set: benchmark skipped")
        return
    spec = json.loads(os.environ["CONVACCEL_BENCH_SHAPE"])
    shape = ConvShape(spec["channels"], spec["height"], spec["width"], tuple(spec["kernel"]),
                      tuple(spec["stride"]), tuple(spec["dilation"]), tuple(spec["padding"]))
    tb = WindowBench(dut, bench_rng(5), idle_probability=0.0, stall_probability=0.0)
    cfg = tb.config
    await start_clock_and_reset(dut)
    x = tb.rng.integers(cfg.act_min, cfg.act_max + 1, (shape.channels, shape.height, shape.width))
    start = cocotb.utils.get_sim_time(unit="ns")
    await tb.frame(shape, x)
    cycles = round((cocotb.utils.get_sim_time(unit="ns") - start) / 10)
    windows = shape.windows(x)
    positions = windows.shape[0] * windows.shape[1]
    figures = {"shape": spec, "input_beats": len(pixel_beats(cfg, x)),
               "slices": len(window_beats(cfg, shape, x)), "windows": positions,
               "cycles": cycles, "cycles_per_window": cycles / positions,
               "slices_per_window": len(window_beats(cfg, shape, x)) / positions}
    with open(target, "w") as handle:
        json.dump(figures, handle, indent=2)
    dut._log.info("benchmark: %s", figures)
