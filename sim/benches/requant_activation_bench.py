"""cocotb testbench of the bias + requantization + activation unit (``hw/requant_activation.py``).

Per-channel biases, multipliers and shifts are written through the parameter
port, then thousands of accumulator vectors - random, the extremes of the
accumulator range, and values that land exactly on a rounding half - stream
through with random input gaps and random output back-pressure, with each
activation, random output zero points and random (signed) clamp bounds. The
scoreboard compares every output beat with the requantization and
activation of ``golden.conv_layer`` (``sim/requant_streams.py``). The design
is generated with ``lanes = array_cols`` (one beat = one systolic-engine
result).
"""

from __future__ import annotations

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge

from ...hw.requant_activation import Activation, RequantActivation, channel_params_layout
from ..requant_streams import golden_requant
from ..streams import (LayoutCodec, Scoreboard, StreamDriver, StreamMonitor, bench_rng,
                       start_clock_and_reset)
from . import bench_config


class RequantBench:
    """Drivers, monitor and golden reference around one ``requant_activation`` top."""

    def __init__(self, dut, rng, *, idle_probability=0.3, stall_probability=0.3):
        self.dut = dut
        self.config = cfg = bench_config()
        unit = RequantActivation(cfg, lanes=cfg.array_cols)  # only for its port layouts
        self.lanes, self.groups = unit.lanes, unit.groups
        self.rng = rng
        self.driver = StreamDriver(dut, "i", LayoutCodec(unit.i.payload.shape()), rng=rng,
                                   idle_probability=idle_probability)
        self.monitor = StreamMonitor(dut, "o", LayoutCodec(unit.o.payload.shape()), rng=rng,
                                     stall_probability=stall_probability)
        self.param_codec = LayoutCodec(channel_params_layout(cfg))
        self.scoreboard = Scoreboard("requant_activation")
        channels = self.groups * self.lanes
        self.bias = np.zeros(channels, dtype=np.int64)
        self.multiplier = np.ones(channels, dtype=np.int64)
        self.shift = np.zeros(channels, dtype=np.int64)
        dut.param_en.value = 0
        dut.clear_error.value = 0
        dut.activation.value = Activation.NONE.value
        self.clamp_high = cfg.act_max // 2
        dut.clamp_high.value = self.clamp_high
        self.zero_point = 0
        dut.zero_point.value = 0

    async def write_params(self, channel, bias, multiplier, shift):
        """Write one channel's parameters (call right after a rising edge)."""
        dut = self.dut
        dut.param_en.value = 1
        dut.param_addr.value = int(channel)
        dut.param_data.value = self.param_codec.pack(
            {"bias": int(bias), "multiplier": int(multiplier), "shift": int(shift)})
        await RisingEdge(dut.clk)
        dut.param_en.value = 0
        if channel < self.config.max_out_channels:
            self.bias[channel] = bias
            self.multiplier[channel], self.shift[channel] = multiplier, shift

    async def randomize_params(self):
        cfg, rng = self.config, self.rng
        for channel in range(cfg.max_out_channels):
            # Include the extremes of every field on some channels.
            multiplier = int(rng.choice([0, 1, cfg.max_multiplier,
                                         int(rng.integers(0, cfg.max_multiplier + 1))],
                                        p=[0.05, 0.1, 0.15, 0.7]))
            shift = int(rng.choice([0, cfg.max_shift, int(rng.integers(0, cfg.max_shift + 1))],
                                   p=[0.15, 0.15, 0.7]))
            bias = int(rng.choice([0, cfg.bias_min, cfg.bias_max,
                                   int(rng.integers(-1000, 1001))], p=[0.3, 0.1, 0.1, 0.5]))
            await self.write_params(channel, bias, multiplier, shift)

    def random_beats(self, count):
        """Accumulators that cover the range, its ends and exact rounding halves."""
        cfg, rng, lanes = self.config, self.rng, self.lanes
        groups = rng.integers(0, self.groups, count)
        channels = groups[:, None] * lanes + np.arange(lanes)[None, :]
        channels = np.minimum(channels, len(self.shift) - 1)
        # Products only: the bias is added inside, as it is after the array.
        low, high = cfg.acc_low - cfg.bias_min, cfg.acc_high - cfg.bias_max
        kind = rng.integers(0, 4, (count, lanes))
        accs = rng.integers(low, high + 1, (count, lanes))
        accs = np.where(kind == 1, rng.integers(-(1 << 12), 1 << 12, (count, lanes)), accs)
        accs = np.where(kind == 2, rng.choice([low, high, 0, 1, -1], (count, lanes)), accs)
        # (acc + bias) * M0 = q * 2**sh + 2**(sh-1) exactly when M0 == 1: a rounding half.
        shift = self.shift[channels]
        half = ((rng.integers(-300, 300, (count, lanes)) << shift) + ((1 << shift) >> 1)
                - self.bias[channels])
        accs = np.where((kind == 3) & (shift > 0), np.clip(half, low, high), accs)
        lasts = (rng.random(count) < 0.1).astype(np.int64)
        return [{"psum": [int(a) for a in row], "group": int(g), "last": int(last)}
                for row, g, last in zip(accs, groups, lasts)]

    def expected(self, beats, activation):
        cfg, lanes = self.config, self.lanes
        out = []
        for beat in beats:
            channels = beat["group"] * lanes + np.arange(lanes)
            real = channels < cfg.max_out_channels
            safe = np.where(real, channels, 0)
            accs = np.array(beat["psum"], dtype=np.int64) + self.bias[safe]
            # Each lane is its own "channel" for the per-element golden call.
            values = golden_requant(accs, self.multiplier[safe], self.shift[safe],
                                    bits=cfg.act_width, activation=activation,
                                    zero_point=self.zero_point, clamp_high=self.clamp_high)
            values = np.where(real, values, 0)
            out.append({"data": [int(v) for v in values],
                        "last": beat["last"]})
        return out

    def set_zero_point(self, zero_point, clamp_high):
        """Output zero point and clamp bound of the next streams (the unit is empty)."""
        self.zero_point, self.clamp_high = int(zero_point), int(clamp_high)
        self.dut.zero_point.value = self.zero_point
        self.dut.clamp_high.value = self.clamp_high

    async def stream(self, beats, activation):
        """Send ``beats`` and check every output against the golden model."""
        self.dut.activation.value = activation.value
        self.monitor.beats = []
        receiver = cocotb.start_soon(self.monitor.receive(len(beats)))
        await self.driver.send(beats)
        received = await receiver
        self.scoreboard.compare(self.expected(beats, activation), received)
        await self.monitor.expect_silence(8)


# The parameter memories are RAM: reset does not clear them, so this case
# relies on running first (cocotb runs a module's tests in the order written).
@cocotb.test()
async def requant_power_up_parameters_pass_through(dut):
    """At power-up every channel has bias 0, multiplier 1, shift 0: values only saturate."""
    tb = RequantBench(dut, bench_rng(1))
    cfg = tb.config
    await start_clock_and_reset(dut)
    values = [0, 5, -7, cfg.act_max, cfg.act_max + 1, cfg.act_min, cfg.act_min - 1,
              cfg.acc_high - cfg.bias_max, cfg.acc_low - cfg.bias_min]
    hand = [0, 5, -7, cfg.act_max, cfg.act_max, cfg.act_min, cfg.act_min, cfg.act_max,
            cfg.act_min]
    beats = [{"psum": [v] * tb.lanes, "group": 0, "last": 0} for v in values]
    await tb.stream(beats, Activation.NONE)
    real = min(tb.lanes, cfg.max_out_channels)
    # Hand-checked: saturation to the activation range.
    assert [b["data"][:real] for b in tb.monitor.beats] == [[v] * real for v in hand]


@cocotb.test()
async def requant_random_streams_match_golden(dut):
    """Random per-channel parameters and accumulators, gaps and back-pressure."""
    tb = RequantBench(dut, bench_rng(2))
    await start_clock_and_reset(dut)
    await tb.randomize_params()
    for activation in (Activation.NONE, Activation.RELU, Activation.CLAMP):
        await tb.stream(tb.random_beats(600), activation)
    assert tb.scoreboard.checked == 1800


@cocotb.test()
async def requant_random_output_zero_points(dut):
    """Random output zero points (the range ends included) and signed clamp bounds, some
    below the zero point, with every activation; gaps and back-pressure."""
    tb = RequantBench(dut, bench_rng(5))
    cfg, rng = tb.config, tb.rng
    await start_clock_and_reset(dut)
    await tb.randomize_params()
    zero_points = [cfg.act_min, cfg.act_max] + [int(v) for v in
                                                rng.integers(cfg.act_min, cfg.act_max + 1, 4)]
    for zero_point in zero_points:
        high = int(rng.integers(cfg.act_min, cfg.act_max + 1))
        if rng.random() < 0.7:       # mostly a ReLU6-like bound above the zero point
            high = int(rng.integers(zero_point, cfg.act_max + 1))
        tb.set_zero_point(zero_point, high)
        for activation in (Activation.NONE, Activation.RELU, Activation.CLAMP):
            await tb.stream(tb.random_beats(150), activation)
    assert tb.scoreboard.checked == len(zero_points) * 3 * 150


@cocotb.test()
async def requant_full_throughput_without_stalls(dut):
    """With no gaps and no back-pressure one beat leaves per cycle after the latency."""
    tb = RequantBench(dut, bench_rng(3), idle_probability=0.0, stall_probability=0.0)
    await start_clock_and_reset(dut)
    await tb.randomize_params()
    count = 200
    await tb.stream(tb.random_beats(count), Activation.RELU)
    assert tb.driver.cycles == count, f"driver needed {tb.driver.cycles} cycles for {count} beats"


@cocotb.test()
async def requant_out_of_range_sets_error(dut):
    """A group or channel beyond max_out_channels flags the error and gives 0."""
    tb = RequantBench(dut, bench_rng(4))
    cfg = tb.config
    channel_bits = max(1, (cfg.max_out_channels - 1).bit_length())
    group_bits = max(1, (tb.groups - 1).bit_length())
    await start_clock_and_reset(dut)
    # Earlier tests left their parameters in the RAM: set every channel.
    for channel in range(cfg.max_out_channels):
        await tb.write_params(channel, 0, 1, 0)
    await tb.write_params(0, 0, 5, 1)
    await tb.stream([{"psum": [3] * tb.lanes, "group": 0, "last": 0}], Activation.NONE)
    assert tb.monitor.beats[0]["data"][0] == 8  # (3*5 + 1) >> 1, by hand
    if tb.groups < 1 << group_bits:
        bad = {"psum": [1000] * tb.lanes, "group": tb.groups, "last": 1}
        tb.monitor.beats = []
        receiver = cocotb.start_soon(tb.monitor.receive(1))
        await tb.driver.send([bad])
        received = await receiver
        assert received == [{"data": [0] * tb.lanes, "last": 1}], received
        await ReadOnly()
        assert int(dut.error.value) == 1, "error flag not set by an out-of-range group"
        await RisingEdge(dut.clk)
        dut.clear_error.value = 1
        await RisingEdge(dut.clk)
        dut.clear_error.value = 0
        await ReadOnly()
        assert int(dut.error.value) == 0, "clear_error did not clear the flag"
        await RisingEdge(dut.clk)
    if cfg.max_out_channels < 1 << channel_bits:
        await tb.write_params(cfg.max_out_channels, 0, 0, 0)
        await ReadOnly()
        assert int(dut.error.value) == 1, "error flag not set by an out-of-range write"
        await RisingEdge(dut.clk)
    # Channel 0 still has its parameters.
    await tb.stream([{"psum": [3] * tb.lanes, "group": 0, "last": 0}], Activation.NONE)
    assert tb.monitor.beats[0]["data"][0] == 8
