"""cocotb bench: ``conv_accel`` driven only from its generated JSON files.

The host here knows the accelerator only through ``conv_accel_registers.json``
and ``conv_accel_streams.json`` (paths in ``CONVACCEL_REGISTERS_JSON`` and
``CONVACCEL_STREAMS_JSON``) and :mod:`convaccel.sim.json_driver`, which
packs and unpacks the streams from them. It uses the project's bus models
(AXI4-Lite master, AXI4-Stream driver and monitor, all carrying whole
``tdata`` words) and ``golden.conv_layer`` for the expected output, but none
of the project's packing code. Everything the JSON calls ignored (unused
lanes, padding bits, weight ``tlast``) carries random junk; every stream has
random gaps or back-pressure; every wait has a cycle limit.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge

from ...golden import conv_layer
from ..axi_lite_master import AxiLiteMaster, EdgeCounter
from ..json_driver import Registers, Streams
from ..streams import (SimTimeout, StreamDriver, StreamMonitor, WordCodec, bench_rng,
                       start_clock_and_reset)

# Codes of mode.activation and mode.pool_mode, as the register docs give them.
ACTIVATIONS = {"none": 0, "relu": 1, "clamp": 2}
POOL_MODES = {"max": 0, "avg": 1}
TIMEOUT_CYCLES = 100_000


@dataclasses.dataclass
class Layer:
    """A layer as the host programs it: register fields, arrays, per-channel values."""

    name: str
    settings: dict      # {register: {field: value}} of the layer registers
    x: np.ndarray       # (C, H, W)
    w: np.ndarray       # (M, C/groups, R, S)
    bias: np.ndarray
    multiplier: np.ndarray
    shift: np.ndarray
    activation: str = "none"
    clamp_high: int = 0
    pool: tuple | None = None   # (mode, kernel, stride)

    def golden(self, act_width: int, weight_width: int) -> np.ndarray:
        kernel, padding = self.settings["kernel"], self.settings["padding"]
        return conv_layer(
            self.x, self.w, self.bias, self.multiplier, self.shift,
            stride=(kernel["stride_h"], kernel["stride_w"]),
            padding=(padding["top"], padding["bottom"], padding["left"], padding["right"]),
            dilation=(kernel["dilation_h"], kernel["dilation_w"]),
            groups=self.settings["groups"]["groups"], activation=self.activation,
            pool=self.pool, bits=act_width, clamp_high=self.clamp_high or None,
            weight_bits=weight_width)


class JsonHost:
    """Register access and the three streams of one ``conv_accel``, from the JSON files."""

    def __init__(self, dut, registers: Registers, streams: Streams, rng):
        self.dut, self.registers, self.streams, self.rng = dut, registers, streams, rng
        self.clock = EdgeCounter(dut)
        self.bus = AxiLiteMaster(dut, self.clock, rng, idle_probability=0.2,
                                 stall_probability=0.2, timeout_cycles=1000)

        def port(stream):
            about = streams.streams[stream]
            return about["port"], WordCodec(about["tdata_bits"])

        self.pixels = StreamDriver(dut, *port("pixels"), rng=rng, idle_probability=0.25,
                                   axis=True)
        self.weights = StreamDriver(dut, *port("weights"), rng=rng, idle_probability=0.25,
                                    axis=True)
        self.out = StreamMonitor(dut, *port("out"), rng=rng, stall_probability=0.25, axis=True)

    def start(self):
        self.clock.start()
        self.bus.start()

    async def write(self, register: str, **fields):
        access = await self.bus.write(self.registers.offset(register),
                                      self.registers.word(register, **fields))
        assert access.resp == 0, f"write to {register} answered {access.resp}"

    async def read(self, register: str) -> dict:
        access = await self.bus.read(self.registers.offset(register))
        assert access.resp == 0, f"read of {register} answered {access.resp}"
        return self.registers.fields(register, access.data)

    async def wait_done(self):
        """Poll ``status`` until ``done``, then clear it."""
        start = self.clock.edge
        while not (await self.read("status"))["done"]:
            if self.clock.edge - start > TIMEOUT_CYCLES:
                raise SimTimeout(f"no status.done within {TIMEOUT_CYCLES} cycles")
        await self.write("status", done=1)

    async def inputs_refused_while_idle(self) -> bool:
        await ReadOnly()
        ready = (int(getattr(self.dut, f"{self.pixels_port}_tready").value),
                 int(getattr(self.dut, f"{self.weights_port}_tready").value))
        await RisingEdge(self.dut.clk)
        return ready == (0, 0)

    @property
    def pixels_port(self):
        return self.streams.streams["pixels"]["port"]

    @property
    def weights_port(self):
        return self.streams.streams["weights"]["port"]

    async def run(self, layer: Layer) -> dict:
        """Program, start and stream one layer; return what came back and the checks."""
        for register, fields in layer.settings.items():
            if register != "mode":
                await self.write(register, **fields)
        await self.write("mode", **layer.settings["mode"],
                         activation=ACTIVATIONS[layer.activation], clamp_high=layer.clamp_high,
                         pool_mode=POOL_MODES[layer.pool[0]] if layer.pool else 0)
        for channel in range(layer.w.shape[0]):
            await self.write("param_channel", channel=channel)
            await self.write("param_bias", bias=int(layer.bias[channel]) & 0xFFFF_FFFF)
            await self.write("param_multiplier", multiplier=int(layer.multiplier[channel]))
            await self.write("param_shift", shift=int(layer.shift[channel]))
            await self.write("param_write", write=1)
        assert await self.inputs_refused_while_idle(), "an input stream is ready while idle"

        names = self.streams.names(layer.settings)
        pixels = self.streams.pack("pixels", names, {"x": layer.x}, self.rng)
        weights = self.streams.pack("weights", names, {"w": layer.w}, self.rng)
        counts = {stream: self.streams.beat_count(stream, names)
                  for stream in ("pixels", "weights", "out")}
        assert (len(pixels), len(weights)) == (counts["pixels"], counts["weights"]), \
            (layer.name, "beat count formulas disagree with the loop nests", counts)

        self.out.beats = []
        await self.write("control", start=1)
        receiver = cocotb.start_soon(self.out.receive(counts["out"],
                                                      timeout_cycles=TIMEOUT_CYCLES))
        weight_task = cocotb.start_soon(self.weights.send(weights, timeout_cycles=TIMEOUT_CYCLES))
        await self.pixels.send(pixels, timeout_cycles=TIMEOUT_CYCLES)
        await weight_task
        received = await receiver
        await self.out.expect_silence(16)
        await self.wait_done()
        return {"names": names, "received": received, "error": await self.read("error"),
                "conv_size": await self.read("conv_size"),
                "out_size": await self.read("out_size")}


def _load() -> tuple[Registers, Streams]:
    try:
        registers = Path(os.environ["CONVACCEL_REGISTERS_JSON"]).read_text()
        streams = Path(os.environ["CONVACCEL_STREAMS_JSON"]).read_text()
    except KeyError as missing:
        raise RuntimeError(f"{missing} is not set: the bench reads the generated JSON "
                           "files named there") from None
    return Registers(registers), Streams(streams)


async def _host(dut, salt: int) -> JsonHost:
    registers, streams = _load()
    host = JsonHost(dut, registers, streams, bench_rng(salt))
    await start_clock_and_reset(dut)
    host.start()
    return host


async def _build(host: JsonHost) -> dict[str, int]:
    """Every build register field as read over the bus."""
    build = {}
    for register in host.registers.registers:
        if register.startswith("build"):
            build.update(await host.read(register))
    return build


@cocotb.test()
async def json_build_registers_match_the_json(dut):
    """The build registers read back the values both JSON files were generated for."""
    host = await _host(dut, 1)
    build = await _build(host)
    for register in host.registers.registers:
        if register.startswith("build"):
            for field in host.registers.field_names(register):
                assert build[field] == host.registers.reset(register, field), (register, field)
    for symbol, about in host.streams.image["symbols"].items():
        if "value" in about:
            register, field = about["register"].split(".")
            assert (await host.read(register))[field] == about["value"], symbol


def _layers(build: dict, rng: np.random.Generator) -> list[Layer]:
    """A few small layers that cover the stream rules, scaled to the build."""
    rows, cols, block = build["array_rows"], build["array_cols"], build["array_block"]
    act_max = (1 << (build["act_width"] - 1)) - 1
    weight_max = (1 << (build["weight_width"] - 1)) - 1
    max_c, max_m = build["max_in_channels"], build["max_out_channels"]
    k3 = min(3, build["max_kernel"])
    pad = min(1, build["max_padding"])
    stride2 = min(2, build["max_stride"])

    def layer(name, c, h, w, m, r, s, *, groups=1, stride=(1, 1), dilation=(1, 1),
              padding=(0, 0, 0, 0), pool=None, activation="none", clamp_high=0):
        c, m = min(c, max_c), min(m, max_m)
        if groups == "depthwise":
            groups = c = m = min(c, m)
        h, w = min(h, build["max_height"]), min(w, build["max_width"])
        multiplier_top = min(1 << 12, 1 << build["mult_width"])
        shift_top = min(20, (1 << build["shift_width"]) - 1)
        bias_top = min(3000, 1 << (build["bias_width"] - 1))
        return Layer(
            name=name,
            settings={
                "shape": {"height": h, "width": w},
                "channels": {"in_channels": c, "out_channels": m},
                "kernel": {"kernel_h": r, "kernel_w": s, "stride_h": stride[0],
                           "stride_w": stride[1], "dilation_h": dilation[0],
                           "dilation_w": dilation[1]},
                "padding": dict(zip(("top", "bottom", "left", "right"), padding)),
                "groups": {"groups": groups},
                "mode": {"pool_enable": int(pool is not None),
                         "pool_kernel": pool[1] if pool else 1,
                         "pool_stride": pool[2] if pool else 1},
            },
            x=rng.integers(-act_max - 1, act_max + 1, (c, h, w)),
            w=rng.integers(-weight_max - 1, weight_max + 1, (m, c // groups, r, s)),
            bias=rng.integers(-bias_top, bias_top, m),
            multiplier=rng.integers(1, multiplier_top, m),
            shift=rng.integers(min(12, shift_top), shift_top + 1, m),
            activation=activation, clamp_high=clamp_high, pool=pool)

    grouped = min(2 * max(rows, cols), max_c, max_m) // 2 * 2
    layers = [
        # M not a multiple of cols; rows longer than a block where the build allows.
        layer("dense 3x3 same, M = cols + 1", 3, 6, min(block + 2, 12), cols + 1, k3, k3,
              padding=(pad,) * 4),
        # (8 - 3) % 2 = 1: the bottom row and the right column feed no window.
        layer("3x3 stride 2, unused bottom row and right column", 2, 8, 8, 3, k3, k3,
              stride=(stride2, stride2), activation="relu"),
        layer("depthwise 3x3 + ReLU6", 2 * rows, 5, 5, 2 * rows, k3, k3, groups="depthwise",
              padding=(pad,) * 4, activation="clamp", clamp_high=act_max // 2),
        layer("2 groups, dilated 3x1", grouped, 6, 5, grouped, k3, 1, groups=2,
              dilation=(min(2, build["max_dilation"]), 1), padding=(pad, pad, 0, 0)),
        layer("pointwise 1x1, two channel groups per pixel", rows + 3, 4, 4, cols, 1, 1),
        layer("3x3 + ReLU + max pool 2x2/2", 2, 8, 8, 5, k3, k3, padding=(pad,) * 4,
              activation="relu", pool=("max", 2, 2)),
    ]
    if build["max_pool_kernel"] >= 3 and build["max_pool_stride"] >= 2:
        layers.append(layer("3x3 valid + average pool 3x3/2", 1, 9, 9, 2, k3, k3,
                            pool=("avg", 3, 2)))
    return layers


@cocotb.test()
async def json_layers_bit_exact(dut):
    """Small layers, packed and unpacked from the JSON only, match golden.conv_layer."""
    host = await _host(dut, 2)
    build = await _build(host)
    for layer in _layers(build, np.random.default_rng(3)):
        result = await host.run(layer)
        names = result["names"]
        expected = layer.golden(build["act_width"], build["weight_width"])
        arrays, problems = host.streams.unpack(
            "out", names, result["received"],
            {"y": tuple(names[size] for size in host.streams.image["arrays"]["y"]["shape"])})
        assert not problems, (layer.name, problems[:5])
        assert arrays["y"].shape == expected.shape, (layer.name, arrays["y"].shape)
        mismatch = np.argwhere(arrays["y"] != expected)
        assert not len(mismatch), (
            f"{layer.name}: {len(mismatch)} outputs differ from golden, first at (m, p, q) = "
            f"{tuple(mismatch[0])}: got {arrays['y'][tuple(mismatch[0])]}, expected "
            f"{expected[tuple(mismatch[0])]}")
        assert not any(result["error"].values()), (layer.name, result["error"])
        assert result["conv_size"] == {"height": names["P"], "width": names["Q"]}, layer.name
        assert result["out_size"] == {"height": names["Po"], "width": names["Qo"]}, layer.name
        dut._log.info("%s: %d output beats bit-exact from the JSON alone", layer.name,
                      len(result["received"]))
