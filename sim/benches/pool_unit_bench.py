"""cocotb testbench of the pooling unit (``hw/pool_unit.py``).

Random pooling layers (window 1..max, stride 1..max independently, max and
average, raster and engine block order, H or W down to the window size)
with random input gaps and output back-pressure, each compared beat by beat
with ``golden.pool2d``; named cases 2x2/2 and 3x3/2; short/long frames and
bad shapes flag their errors and the next frame passes.
"""

from __future__ import annotations

import cocotb

from ...hw.pool_unit import PoolMode, PoolUnit, pool_shape_layout
from ..frame_unit_bench import FrameUnitBench, overlong_frame, truncated_frame
from ..pool_streams import pool_input_beats, pool_output_beats
from ..streams import bench_rng, start_clock_and_reset
from . import bench_config

#: Random layers per run of ``pool_random_layers``.
RANDOM_LAYERS = 30


class PoolBench(FrameUnitBench):
    """Drivers, monitor and control of one ``pool_unit`` top."""

    def __init__(self, dut, rng):
        self.config = cfg = bench_config()
        super().__init__(dut, PoolUnit(cfg), pool_shape_layout(cfg), "pool_unit", rng)

    @staticmethod
    def fields(c, h, w, kernel, stride, mode, in_block) -> dict:
        return {"height": h, "width": w, "channels": c, "kernel": kernel, "stride": stride,
                "mode": (PoolMode.AVG if mode == "avg" else PoolMode.MAX).value,
                "in_block": in_block}

    async def layer(self, c, h, w, kernel, stride, mode, in_block=1, x=None):
        cfg = self.config
        if x is None:
            x = self.rng.integers(cfg.act_min, cfg.act_max + 1, (c, h, w))
        expected = pool_output_beats(cfg, x, kernel, stride, mode)
        beats = pool_input_beats(cfg, x, in_block)
        await self.check_frame(self.fields(c, h, w, kernel, stride, mode, in_block), beats,
                               expected,
                               budget=20 * (len(beats) + len(expected) * kernel * kernel) + 2000)


@cocotb.test()
async def pool_named_layers(dut):
    """2x2/2 and 3x3/2 (overlapping), both modes; 1x1 pass-through."""
    tb = PoolBench(dut, bench_rng(1))
    cfg = tb.config
    await start_clock_and_reset(dut)
    c = min(cfg.max_out_channels, cfg.array_cols + 1)
    cases = [(2, 2), (1, 1)]
    if cfg.max_pool_kernel >= 3 and cfg.max_pool_stride >= 2:
        cases.append((3, 2))
    for kernel, stride in cases:
        for mode in ("max", "avg"):
            await tb.layer(c, 7, 8, kernel, stride, mode, in_block=min(3, cfg.array_block))
    dut._log.info("configurations covered: %d", tb.frames)


@cocotb.test()
async def pool_random_layers(dut):
    """Random window, stride, mode, size and input order."""
    tb = PoolBench(dut, bench_rng(2))
    cfg = tb.config
    rng = tb.rng
    await start_clock_and_reset(dut)
    for _ in range(RANDOM_LAYERS):
        kernel = int(rng.integers(1, cfg.max_pool_kernel + 1))
        stride = int(rng.integers(1, cfg.max_pool_stride + 1))
        h = int(rng.integers(kernel, min(cfg.max_height, 9) + 1))
        w = int(rng.integers(kernel, min(cfg.max_width, 9) + 1))
        c = int(rng.integers(1, min(cfg.max_out_channels, 2 * cfg.array_cols) + 1))
        mode = str(rng.choice(["max", "avg"]))
        in_block = int(rng.integers(1, cfg.array_block + 1))
        await tb.layer(c, h, w, kernel, stride, mode, in_block)
    dut._log.info("configurations covered: %d", tb.frames)


@cocotb.test()
async def pool_frame_errors_and_recovery(dut):
    """Short frame, long frame, bad shape: each flags its bit; then a good layer."""
    tb = PoolBench(dut, bench_rng(3))
    cfg = tb.config
    await start_clock_and_reset(dut)
    x = tb.rng.integers(cfg.act_min, cfg.act_max + 1, (2, 4, 4))
    good = pool_input_beats(cfg, x)
    for frame, flag in ((truncated_frame(good, 5), "short_frame"),
                        (overlong_frame(good), "long_frame")):
        await tb.expect_frame_error(tb.fields(2, 4, 4, 2, 2, "max", 1), frame, flag)
    await tb.start_shape(tb.fields(2, 4, 4, cfg.max_pool_kernel + 1, 1, "max", 1))
    await tb.wait_done(100)
    assert tb.error() == {"config": 1, "short_frame": 0, "long_frame": 0}
    await tb.layer(2, 4, 4, 2, 2, "avg", x=x)
