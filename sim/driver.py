"""Host-side driver of the ``conv_accel`` top (cocotb): registers and streams.

:class:`ConvAccelDriver` programs a :class:`~convaccel.sim.conv_driver.ConvLayer`
through the AXI4-Lite registers (layer shape, per-channel parameters,
start), streams its pixels and weights on the AXI4-Stream inputs, collects
the output stream, waits for ``status.done`` and reads back the error code,
the output size and the performance counters. The regression tests use it,
so it is the tested reference for software that drives the accelerator.
"""

from __future__ import annotations

import cocotb
from amaranth.hdl import signed
from amaranth.lib import data
from cocotb.triggers import RisingEdge

from ..hw.config import AccelConfig
from ..hw.conv_accel import COUNTERS, conv_accel_register_map
from ..host.device import decode_error
from .axi_lite_master import AxiLiteMaster, EdgeCounter
from .conv_driver import ConvLayer
from .streams import LayoutCodec, SimTimeout, StreamDriver, StreamMonitor

__all__ = ["ConvAccelDriver", "decode_error"]


class ConvAccelDriver:
    """Drive one ``conv_accel`` top from cocotb.

    Parameters
    ----------
    dut : cocotb handle
    config : AccelConfig
        The build's configuration.
    rng : numpy.random.Generator
        Source of the random stream gaps, back-pressure and bus delays.
    idle_probability, stall_probability : float
        Random gaps on the inputs / back-pressure on the output and the bus.
    """

    def __init__(self, dut, config: AccelConfig, rng, *, idle_probability: float = 0.2,
                 stall_probability: float = 0.2):
        self.dut = dut
        self.config = cfg = config
        self.regmap = conv_accel_register_map(config)
        self.clock = EdgeCounter(dut)
        self.bus = AxiLiteMaster(dut, self.clock, rng, idle_probability=idle_probability,
                                 stall_probability=stall_probability, timeout_cycles=1000)
        lanes = lambda width, count: LayoutCodec(data.ArrayLayout(signed(width), count))  # noqa: E731
        self.pixels = StreamDriver(dut, "s_axis_pixels", lanes(cfg.act_width, cfg.array_rows),
                                   rng=rng, idle_probability=idle_probability, axis=True)
        self.weights = StreamDriver(dut, "s_axis_weights",
                                    lanes(cfg.weight_width, cfg.array_cols), rng=rng,
                                    idle_probability=idle_probability, axis=True)
        self.out = StreamMonitor(dut, "m_axis_out", lanes(cfg.act_width, cfg.array_cols),
                                 rng=rng, stall_probability=stall_probability, axis=True,
                                 clock=self.clock)
        dut.s_axis_weights_tlast.value = 0

    def start(self):
        """Start the bus workers (right after reset)."""
        self.clock.start()
        self.bus.start()

    async def write(self, register: str, **fields):
        reg = self.regmap.register(register)
        access = await self.bus.write(reg.offset, reg.pack(fields))
        assert access.resp == 0, f"write to {register} answered {access.resp}"

    async def read(self, register: str) -> dict:
        reg = self.regmap.register(register)
        access = await self.bus.read(reg.offset)
        assert access.resp == 0, f"read of {register} answered {access.resp}"
        return reg.unpack(access.data)

    async def read_error(self) -> int:
        """The ``error`` register as one value (bit ``n`` = ``ERROR_BITS`` entry ``n``)."""
        return self.regmap.register("error").pack(await self.read("error"))

    async def read_counters(self) -> dict:
        """Every performance counter, plus ``macs`` (``macs_hi:macs_lo``)."""
        counters = {name: (await self.read(name))["count"] for name in COUNTERS}
        counters["macs"] = counters["macs_hi"] << 32 | counters["macs_lo"]
        return counters

    async def program(self, layer: ConvLayer):
        """Write the layer registers and every output channel's parameters."""
        await self.program_layer(layer)
        await self.program_params(layer)

    async def program_layer(self, layer: ConvLayer):
        """Write the layer registers (sampled at start: allowed while a layer runs)."""
        for register, fields in layer.register_fields(self.regmap).items():
            await self.write(register, **fields)

    async def program_params(self, layer: ConvLayer):
        """Write every output channel's parameters (only while idle)."""
        for register, fields in layer.param_register_writes():
            await self.write(register, **fields)

    async def wait_done(self, timeout_cycles: int) -> dict:
        """Poll ``status`` until ``done``; clear it; return the final status."""
        start = self.clock.edge
        while True:
            status = await self.read("status")
            if status["done"]:
                await self.write("status", done=1, irq_enable=status["irq_enable"])
                return status
            if self.clock.edge - start > timeout_cycles:
                raise SimTimeout(f"conv_accel: no done within {timeout_cycles} cycles")
            for _ in range(8):
                await RisingEdge(self.dut.clk)

    async def run_layer(self, layer: ConvLayer, *, timeout_cycles: int = 200_000) -> dict:
        """Program, start and stream one layer; return outputs, error bits and counters."""
        cfg = self.config
        await self.program(layer)
        expected = layer.expected_beats(cfg)
        self.out.beats = []
        await self.write("control", start=1)
        receiver = cocotb.start_soon(self.out.receive(len(expected),
                                                      timeout_cycles=timeout_cycles))
        weights = [{"data": beat, "last": 0} for beat in layer.weight_beats(cfg)]
        weight_task = cocotb.start_soon(self.weights.send(weights, timeout_cycles=timeout_cycles))
        await self.pixels.send(layer.pixel_beats(cfg), timeout_cycles=timeout_cycles)
        await weight_task
        received = await receiver
        await self.wait_done(timeout_cycles)
        code = await self.read_error()
        return {"expected": expected, "received": received, "error": code,
                "errors": decode_error(code), "counters": await self.read_counters(),
                "out_size": await self.read("out_size")}
