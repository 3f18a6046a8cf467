"""cocotb testbench of the conv core (``hw/conv_core.py``): whole layers.

Named layers scaled to the build (a LeNet-style 5x5 conv with 2x2 max-pool,
a VGG-style 3x3 same-padded conv, a depthwise 3x3 + pointwise 1x1 pair, a
fully connected layer, an overlapping 3x3/2 pool) and random layers (half of
them with random input and output zero points) stream through with random
gaps on the pixel and weight streams and random back-pressure on the output;
every output beat is compared with ``golden.conv_layer``.
"""

from __future__ import annotations


import cocotb
import cocotb.utils
from cocotb.triggers import RisingEdge

from ...hw.conv_core import ConvCore, conv_layer_layout, core_counters_layout, core_error_layout
from ...hw.requant_activation import channel_params_layout
from ..conv_driver import ConvLayer
from ..streams import (LayoutCodec, Scoreboard, StreamDriver, StreamMonitor,
                       bench_rng, start_clock_and_reset, wait_done)
from . import bench_config


def layer_from(cfg, rng, name, c, h, w, m, r, s, **kwargs) -> ConvLayer:
    """A random-valued layer of the given shape, clipped to the configuration."""
    c, m = min(c, cfg.max_in_channels), min(m, cfg.max_out_channels)
    groups = kwargs.pop("groups", 1)
    if groups == "depthwise":
        groups, m = c, c
    return ConvLayer(
        x=rng.integers(cfg.act_min, cfg.act_max + 1, (c, min(h, cfg.max_height),
                                                      min(w, cfg.max_width))),
        w=rng.integers(cfg.weight_min, cfg.weight_max + 1, (m, c // groups, r, s)),
        bias=rng.integers(-3000, 3000, m), multiplier=rng.integers(1, 1 << 12, m),
        shift=rng.integers(10, 18, m), groups=groups, name=name, **kwargs)


def named_layers(cfg, rng) -> list[ConvLayer]:
    """The named layers of the test plan, scaled down to fit ``cfg``."""
    k = min(5, cfg.max_kernel)
    k3 = min(3, cfg.max_kernel)
    pool3 = ("max", 3, 2) if cfg.max_pool_kernel >= 3 and cfg.max_pool_stride >= 2 else None
    size = min(12, cfg.max_height, cfg.max_width)
    return [
        layer_from(cfg, rng, "LeNet-style conv 5x5 + relu + maxpool 2x2", 1, size, size, 6, k, k,
                   activation="relu", pool=("max", 2, 2)),
        layer_from(cfg, rng, "VGG-style 3x3 same", 3, 8, 8, 8, k3, k3,
                   padding=(k3 // 2,) * 4, activation="relu"),
        layer_from(cfg, rng, "depthwise 3x3 + ReLU6", 4, 8, 8, 4, k3, k3, groups="depthwise",
                   padding=(k3 // 2,) * 4, activation="clamp", clamp_high=cfg.act_max // 2),
        layer_from(cfg, rng, "pointwise 1x1", 4, 8, 8, 8, 1, 1),
        layer_from(cfg, rng, "strided conv + overlapping pool", 2, size, size, 3, k3, k3,
                   stride=(min(2, cfg.max_stride),) * 2, pool=pool3),
        layer_from(cfg, rng, "fully connected", 4, k3, k3, 8, k3, k3),
        layer_from(cfg, rng, "LeNet-5 conv2 style (6->16, 5x5) + relu + maxpool 2x2", 6,
                   min(14, cfg.max_height), min(14, cfg.max_width), 16, k, k,
                   activation="relu", pool=("max", 2, 2)),
        alexnet_style(cfg, rng),
    ]


def alexnet_style(cfg, rng) -> ConvLayer:
    """Large kernel, stride 4, overlapping 3x3/2 max-pool (scaled to the build)."""
    k = min(11, cfg.max_kernel)
    stride = min(4, cfg.max_stride)
    size = min(31, cfg.max_height, cfg.max_width)
    conv_out = (size - k) // stride + 1
    overlapping = cfg.max_pool_kernel >= 3 and cfg.max_pool_stride >= 2 and conv_out >= 3
    return layer_from(cfg, rng, f"AlexNet style {k}x{k}/{stride} + relu + 3x3/2 max-pool", 3,
                      size, size, 8, k, k, stride=(stride, stride), activation="relu",
                      pool=("max", 3, 2) if overlapping else None)


def random_activation(cfg, rng, zero_point: int = 0) -> dict:
    """``activation`` (and ``clamp_high`` for "clamp", from the output zero point up to
    ``act_max``) for a random layer."""
    activation = str(rng.choice(["none", "relu", "clamp"]))
    if activation == "clamp":
        return {"activation": activation,
                "clamp_high": int(rng.integers(zero_point, cfg.act_max + 1))}
    return {"activation": activation}


def random_zero_points(cfg, rng) -> dict:
    """Random input and output zero points, the ends of the range included."""
    def one():
        return int(rng.choice([cfg.act_min, cfg.act_max,
                               int(rng.integers(cfg.act_min, cfg.act_max + 1))],
                              p=[0.1, 0.1, 0.8]))
    return {"input_zero_point": one(), "output_zero_point": one()}


def random_layer(cfg, rng, name, *, zero_points: bool | None = None) -> ConvLayer:
    """A random valid layer: shape, stride, dilation, padding, groups, activation, pool,
    and random zero points when ``zero_points`` is true (``None``: half of the time)."""
    while True:
        c = int(rng.integers(1, min(cfg.max_in_channels, 2 * cfg.array_rows) + 1))
        m = int(rng.integers(1, min(cfg.max_out_channels, 2 * cfg.array_cols) + 1))
        groups = int(rng.choice([g for g in range(1, c + 1) if c % g == 0 and m % g == 0]))
        r, s = (int(v) for v in rng.integers(1, min(cfg.max_kernel, 3) + 1, 2))
        stride = tuple(int(v) for v in rng.integers(1, min(cfg.max_stride, 2) + 1, 2))
        dilation = tuple(int(v) for v in rng.integers(1, min(cfg.max_dilation, 2) + 1, 2))
        padding = tuple(int(v) for v in rng.integers(0, min(cfg.max_padding, 1) + 1, 4))
        h, w = (int(v) for v in rng.integers(3, min(cfg.max_height, 8) + 1, 2))
        pool = None
        if rng.random() < 0.5:
            kernel = int(rng.integers(1, min(cfg.max_pool_kernel, 2) + 1))
            pool = (str(rng.choice(["max", "avg"])), kernel,
                    int(rng.integers(1, cfg.max_pool_stride + 1)))
        asymmetric = rng.random() < 0.5 if zero_points is None else zero_points
        zeros = random_zero_points(cfg, rng) if asymmetric else {}
        layer = layer_from(cfg, rng, name, c, h, w, m, r, s, groups=groups, stride=stride,
                           dilation=dilation, padding=padding, pool=pool, **zeros,
                           **random_activation(cfg, rng, zeros.get("output_zero_point", 0)))
        try:
            layer.golden(cfg.act_width)
        except ValueError:
            continue  # kernel larger than the padded input, or pool larger than the output
        if layer.misfits(cfg):
            continue  # e.g. a folded bias beyond bias_width
        return layer


#: Random layers per run of ``conv_core_random_layers``.
RANDOM_LAYERS = 6


class ConvCoreBench:
    """Streams, parameter writes and checks around one ``conv_core`` top."""

    def __init__(self, dut, rng, *, idle_probability=0.2, stall_probability=0.2):
        self.dut = dut
        self.config = cfg = bench_config()
        core = ConvCore(cfg)
        self.rng = rng
        self.pixels = StreamDriver(dut, "pixels", LayoutCodec(core.pixels.payload.shape()),
                                   rng=rng, idle_probability=idle_probability)
        self.weights = StreamDriver(dut, "weights", LayoutCodec(core.weights.payload.shape()),
                                    rng=rng, idle_probability=idle_probability)
        self.out = StreamMonitor(dut, "out", LayoutCodec(core.out.payload.shape()), rng=rng,
                                 stall_probability=stall_probability)
        self.layer_codec = LayoutCodec(conv_layer_layout(cfg))
        self.param_codec = LayoutCodec(channel_params_layout(cfg))
        self.error_codec = LayoutCodec(core_error_layout())
        self.counter_codec = LayoutCodec(core_counters_layout())
        self.scoreboard = Scoreboard("conv_core")
        self.layers = 0
        dut.job__start.value = 0
        dut.job__cancel.value = 0
        dut.param_en.value = 0

    def error_bits(self) -> int:
        return int(self.dut.job__error.value)

    async def wait_done(self, timeout_cycles: int):
        await wait_done(self.dut, timeout_cycles=timeout_cycles, what="conv core")

    async def run(self, layer: ConvLayer) -> dict:
        """Run one layer and compare its output with the golden model."""
        cfg, dut = self.config, self.dut
        for channel, params in layer.param_writes():
            dut.param_en.value = 1
            dut.param_addr.value = channel
            dut.param_data.value = self.param_codec.pack(params)
            await RisingEdge(dut.clk)
        dut.param_en.value = 0
        fields = layer.layer_fields()
        fields["activation"] = fields["activation"].value
        fields["pool_mode"] = fields["pool_mode"].value
        dut.layer.value = self.layer_codec.pack(fields)
        expected = layer.expected_beats(cfg)
        pixels, weights = layer.pixel_beats(cfg), layer.weight_beats(cfg)
        p, q = layer.conv_size()
        issues = p * q * len(weights)  # generous bound
        budget = 20 * (len(weights) + len(pixels) + len(expected) + issues) + 5000
        self.out.beats = []
        dut.job__start.value = 1
        await RisingEdge(dut.clk)
        dut.job__start.value = 0
        start = cocotb.utils.get_sim_time(unit="ns")
        receiver = cocotb.start_soon(self.out.receive(len(expected), timeout_cycles=budget))
        weight_task = cocotb.start_soon(self.weights.send(weights, timeout_cycles=budget))
        await self.pixels.send(pixels, timeout_cycles=budget)
        await weight_task
        received = await receiver
        await self.wait_done(budget)
        cycles = round((cocotb.utils.get_sim_time(unit="ns") - start) / 10)
        self.scoreboard.compare(expected, received)
        assert self.error_bits() == 0, self.error_codec.unpack(self.error_bits())
        counters = self.counter_codec.unpack(int(dut.counters.value))
        self.layers += 1
        dut._log.info("%s: %d output beats match golden conv_layer; %d cycles; counters %s",
                      layer.name, len(expected), cycles, counters)
        return {"cycles": cycles, "counters": counters, "output_beats": len(expected)}


@cocotb.test()
async def conv_core_named_layers(dut):
    """LeNet-, VGG-, MobileNet-style, FC and overlapping-pool layers, back to back."""
    tb = ConvCoreBench(dut, bench_rng(1))
    await start_clock_and_reset(dut)
    for layer in named_layers(tb.config, tb.rng):
        await tb.run(layer)
    dut._log.info("layers covered: %d", tb.layers)


@cocotb.test()
async def conv_core_random_layers(dut):
    """Random shapes, strides, dilations, paddings, groups, activations, pools and zero
    points."""
    tb = ConvCoreBench(dut, bench_rng(2))
    cfg, rng = tb.config, tb.rng
    await start_clock_and_reset(dut)
    for index in range(RANDOM_LAYERS):
        await tb.run(random_layer(cfg, rng, f"random {index}"))
    dut._log.info("layers covered: %d", tb.layers)
