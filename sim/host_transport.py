"""The cocotb backend of the host runtime: :class:`~convaccel.host.transport.Transport`
over the AXI ports of the ``conv_accel`` RTL under Verilator.

The host runtime is plain blocking Python (a board's driver would be the
same code); cocotb runs coroutines in the simulator's thread. The runtime
therefore runs in a :func:`cocotb.task.bridge` thread and every transport
method is a :func:`cocotb.task.resume` coroutine: a call blocks the host
thread while the simulator advances. Streams go through the seeded drivers
of :mod:`convaccel.sim.streams` (random gaps on the inputs, random
back-pressure on the output), registers through the AXI4-Lite master with
random delays; every wait has a cycle limit.
"""

from __future__ import annotations

import cocotb
import numpy as np
from cocotb.task import resume
from cocotb.triggers import RisingEdge

from ..hw.config import AccelConfig
from ..hw.conv_accel import conv_accel_register_map
from ..host.streams import beat_bytes
from ..host.transport import TransportError
from .axi_lite_master import AxiLiteMaster, EdgeCounter
from .streams import StreamDriver, StreamMonitor, WordCodec

__all__ = ["CocotbTransport"]

#: AXI4-Stream port of each stream name of the transport protocol.
PORTS = {"pixels": "s_axis_pixels", "weights": "s_axis_weights", "out": "m_axis_out"}


class CocotbTransport:
    """Registers and streams of one ``conv_accel`` top, driven from a bridge thread.

    Parameters
    ----------
    dut : cocotb handle
    config : AccelConfig
    rng : numpy.random.Generator
        Source of the stream gaps, back-pressure and bus delays.
    idle_probability, stall_probability : float
        Gaps on the input streams and the bus / back-pressure on the output.
    timeout_cycles : int
        Limit of every wait (a stream's beats, the output, ``done``).
    """

    def __init__(self, dut, config: AccelConfig, rng: np.random.Generator, *,
                 idle_probability: float = 0.2, stall_probability: float = 0.2,
                 timeout_cycles: int = 2_000_000):
        self.dut = dut
        self.config = config
        self.timeout_cycles = timeout_cycles
        regmap = conv_accel_register_map(config)
        self.status = regmap.register("status")
        self.clock = EdgeCounter(dut)
        self.bus = AxiLiteMaster(dut, self.clock, rng, idle_probability=idle_probability,
                                 stall_probability=stall_probability, timeout_cycles=10_000)
        self.bytes = {name: beat_bytes(config, name) for name in PORTS}
        self.ports = {
            name: (StreamMonitor if name == "out" else StreamDriver)(
                dut, port, WordCodec(8 * self.bytes[name]), rng=rng, axis=True,
                **({"stall_probability": stall_probability, "clock": self.clock}
                   if name == "out" else {"idle_probability": idle_probability}))
            for name, port in PORTS.items()}
        self.sending = []

    def start(self) -> None:
        """Start the clock counter and the bus workers (after reset, in the simulator)."""
        self.clock.start()
        self.bus.start()

    # The five methods of the protocol: each blocks the calling bridge thread.

    @resume
    async def write32(self, offset: int, value: int) -> None:
        access = await self.bus.write(offset, value & 0xFFFF_FFFF)
        if access.resp != 0:
            raise TransportError(f"write to {offset:#x} answered {access.resp}")

    @resume
    async def read32(self, offset: int) -> int:
        access = await self.bus.read(offset)
        if access.resp != 0:
            raise TransportError(f"read of {offset:#x} answered {access.resp}")
        return access.data

    @resume
    async def send(self, stream: str, data: bytes) -> None:
        size = self.bytes[stream]
        if len(data) % size:
            raise TransportError(f"{stream}: {len(data)} bytes are not whole {size}-byte beats")
        words = [int.from_bytes(data[i:i + size], "little") for i in range(0, len(data), size)]
        beats = [{"data": word, "last": int(i == len(words) - 1)} for i, word in
                 enumerate(words)]
        self.sending.append(cocotb.start_soon(
            self.ports[stream].send(beats, timeout_cycles=self.timeout_cycles)))

    @resume
    async def receive(self, stream: str, size: int) -> bytes:
        width = self.bytes[stream]
        monitor = self.ports[stream]
        monitor.beats = []
        beats = await monitor.receive(size // width, timeout_cycles=self.timeout_cycles)
        return b"".join(beat["data"].to_bytes(width, "little") for beat in beats)

    @resume
    async def wait_done(self) -> None:
        for task in self.sending:
            await task
        self.sending = []
        start = self.clock.edge
        while True:
            status = self.status.unpack((await self.bus.read(self.status.offset)).data)
            if status["done"]:
                return
            if self.clock.edge - start > self.timeout_cycles:
                raise TransportError(f"no done within {self.timeout_cycles} cycles")
            for _ in range(8):
                await RisingEdge(self.dut.clk)
