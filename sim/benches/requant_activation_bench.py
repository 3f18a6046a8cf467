"""cocotb testbench of the requantization + activation unit (``hw/requant_activation.py``).

Per-channel multipliers and shifts are written through the parameter port,
then thousands of accumulators - random, the extremes of the accumulator
range, and values that land exactly on a rounding half - stream through with
random input gaps and random output back-pressure. The scoreboard compares
every output beat with ``golden.requantize`` followed by ``golden.relu``.
"""

from __future__ import annotations

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge

from ...golden import relu, requantize
from ...hw.requant_activation import Activation, RequantActivation, channel_params_layout
from ..streams import (LayoutCodec, Scoreboard, StreamDriver, StreamMonitor, bench_rng,
                       start_clock_and_reset)
from . import bench_config


class RequantBench:
    """Drivers, monitor and golden reference around one ``requant_activation`` top."""

    def __init__(self, dut, rng, *, idle_probability=0.3, stall_probability=0.3):
        self.dut = dut
        self.config = cfg = bench_config()
        unit = RequantActivation(cfg)  # only for its port layouts
        self.in_codec = LayoutCodec(unit.i.payload.shape())
        self.out_codec = LayoutCodec(unit.o.payload.shape())
        self.param_codec = LayoutCodec(channel_params_layout(cfg))
        self.rng = rng
        self.driver = StreamDriver(dut, "i", self.in_codec, rng=rng,
                                   idle_probability=idle_probability)
        self.monitor = StreamMonitor(dut, "o", self.out_codec, rng=rng,
                                     stall_probability=stall_probability)
        self.scoreboard = Scoreboard("requant_activation")
        self.multiplier = np.ones(cfg.max_out_channels, dtype=np.int64)
        self.shift = np.zeros(cfg.max_out_channels, dtype=np.int64)
        dut.param_en.value = 0
        dut.clear_error.value = 0
        dut.activation.value = Activation.NONE.value

    async def write_params(self, channel, multiplier, shift):
        """Write one channel's parameters (call right after a rising edge)."""
        dut = self.dut
        dut.param_en.value = 1
        dut.param_addr.value = int(channel)
        dut.param_data.value = self.param_codec.pack({"multiplier": int(multiplier),
                                                      "shift": int(shift)})
        await RisingEdge(dut.clk)
        dut.param_en.value = 0
        if channel < self.config.max_out_channels:
            self.multiplier[channel], self.shift[channel] = multiplier, shift

    async def randomize_params(self):
        cfg = self.config
        for channel in range(cfg.max_out_channels):
            # Include the extremes of both fields on some channels.
            multiplier = int(self.rng.choice([0, 1, cfg.max_multiplier,
                                              int(self.rng.integers(0, cfg.max_multiplier + 1))],
                                             p=[0.05, 0.1, 0.15, 0.7]))
            shift = int(self.rng.choice([0, cfg.max_shift,
                                         int(self.rng.integers(0, cfg.max_shift + 1))],
                                        p=[0.15, 0.15, 0.7]))
            await self.write_params(channel, multiplier, shift)

    def random_beats(self, count):
        """Accumulators that cover the range, its ends and exact rounding halves."""
        cfg, rng = self.config, self.rng
        channels = rng.integers(0, cfg.max_out_channels, count)
        kind = rng.integers(0, 4, count)
        accs = rng.integers(cfg.acc_low, cfg.acc_high + 1, count)
        small = rng.integers(-(1 << 12), 1 << 12, count)
        accs = np.where(kind == 1, small, accs)
        ends = rng.choice([cfg.acc_low, cfg.acc_high, 0, 1, -1], count)
        accs = np.where(kind == 2, ends, accs)
        # acc * M0 = q * 2**sh + 2**(sh-1) exactly when M0 == 1: a rounding half.
        half = np.where(self.shift[channels] > 0,
                        (rng.integers(-300, 300, count) << self.shift[channels])
                        + ((1 << self.shift[channels]) >> 1), accs)
        half = np.clip(half, cfg.acc_low, cfg.acc_high)
        accs = np.where(kind == 3, half, accs)
        lasts = (rng.random(count) < 0.1).astype(np.int64)
        return [{"acc": int(a), "channel": int(c), "last": int(last)}
                for a, c, last in zip(accs, channels, lasts)]

    def expected(self, beats, activation):
        cfg = self.config
        accs = np.array([b["acc"] for b in beats], dtype=np.int64)
        channels = np.array([b["channel"] for b in beats], dtype=np.int64)
        # Each beat is its own "channel" for the per-element golden call.
        values = requantize(accs, self.multiplier[channels], self.shift[channels],
                            bits=cfg.act_width)
        if activation == Activation.RELU:
            values = relu(values)
        return [{"value": int(v), "channel": b["channel"], "last": b["last"]}
                for v, b in zip(values, beats)]

    async def stream(self, beats, activation):
        """Send ``beats`` and check every output against the golden model."""
        self.dut.activation.value = activation.value
        self.monitor.beats = []
        receiver = cocotb.start_soon(self.monitor.receive(len(beats)))
        await self.driver.send(beats)
        received = await receiver
        self.scoreboard.compare(self.expected(beats, activation), received)
        await self.monitor.expect_silence(8)


# The parameter memory is RAM: reset does not clear it, so this case relies on
# running first (cocotb runs a module's tests in the order they are written).
@cocotb.test()
async def requant_power_up_parameters_pass_through(dut):
    """At power-up every channel has multiplier 1, shift 0: values only saturate."""
    tb = RequantBench(dut, bench_rng(1))
    cfg = tb.config
    await start_clock_and_reset(dut)
    beats = [{"acc": a, "channel": c % cfg.max_out_channels, "last": 0}
             for c, a in enumerate([0, 5, -7, cfg.act_max, cfg.act_max + 1, cfg.act_min,
                                    cfg.act_min - 1, cfg.acc_high, cfg.acc_low])]
    await tb.stream(beats, Activation.NONE)
    # Hand-checked: saturation to the activation range.
    values = [b["value"] for b in tb.monitor.beats]
    assert values == [0, 5, -7, cfg.act_max, cfg.act_max, cfg.act_min, cfg.act_min,
                      cfg.act_max, cfg.act_min], values


@cocotb.test()
async def requant_random_streams_match_golden(dut):
    """Random per-channel parameters and accumulators, gaps and back-pressure."""
    tb = RequantBench(dut, bench_rng(2))
    await start_clock_and_reset(dut)
    await tb.randomize_params()
    for activation in (Activation.NONE, Activation.RELU):
        await tb.stream(tb.random_beats(1500), activation)
    assert tb.scoreboard.checked == 3000


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
async def requant_out_of_range_channel_sets_error(dut):
    """A channel beyond max_out_channels flags the error, passes a 0 and clears."""
    tb = RequantBench(dut, bench_rng(4))
    cfg = tb.config
    channel_bits = max(1, (cfg.max_out_channels - 1).bit_length())
    await start_clock_and_reset(dut)
    if cfg.max_out_channels == 1 << channel_bits:
        dut._log.info("max_out_channels=%d uses every channel code: no out-of-range code",
                      cfg.max_out_channels)
        return
    await ReadOnly()
    assert int(dut.error.value) == 0
    await RisingEdge(dut.clk)
    bad = {"acc": 1000, "channel": cfg.max_out_channels, "last": 1}
    tb.monitor.beats = []
    receiver = cocotb.start_soon(tb.monitor.receive(1))
    await tb.driver.send([bad])
    received = await receiver
    assert received == [{"value": 0, "channel": cfg.max_out_channels, "last": 1}], received
    await ReadOnly()
    assert int(dut.error.value) == 1, "error flag not set by an out-of-range channel"
    await RisingEdge(dut.clk)
    dut.clear_error.value = 1
    await RisingEdge(dut.clk)
    dut.clear_error.value = 0
    await ReadOnly()
    assert int(dut.error.value) == 0, "clear_error did not clear the flag"
    await RisingEdge(dut.clk)
    # A parameter write to a channel that does not exist flags it too, and
    # leaves the real channels alone.
    await tb.write_params(0, 5, 1)
    await tb.write_params(cfg.max_out_channels, 0, 0)
    await ReadOnly()
    assert int(dut.error.value) == 1, "error flag not set by an out-of-range parameter write"
    await RisingEdge(dut.clk)
    await tb.stream([{"acc": 3, "channel": 0, "last": 0}], Activation.NONE)
    assert tb.monitor.beats[0]["value"] == 8, tb.monitor.beats  # (3*5 + 1) >> 1, by hand
