"""cocotb testbench of the AXI4-Lite register file (``hw/axi_lite.py``).

The DUT is :class:`~convaccel.hw.axi_lite.AxiLiteRegisterFile` built from
:func:`example_map` (the test that builds it imports the same function).

* :class:`AxiLiteMaster` drives the five channels itself (no cocotbext-axi
  here): seeded random idle cycles before each AW/W/AR valid (with junk on
  the payload meanwhile), random BREADY/RREADY back-pressure, up to four
  requests queued per direction (the slave must hold them off: one write and
  one read outstanding), a cycle limit on every wait, and checks of the
  slave's side of the protocol: a response never comes before its request
  was accepted, and a stalled response stays valid and unchanged.
* :class:`HardwareSide` counts clock edges, drives the ``ro`` inputs and the
  ``w1c`` set inputs with random values and records every field output in
  every cycle.
* :func:`check_trace` replays everything against :class:`RegisterModel`, a
  plain-Python model of the documented behaviour, edge by edge: each read's
  data and response, each write's response, every output in every cycle
  (so a pulse must last exactly one cycle and a set must win over a
  clear), and the 1-cycle latency of both directions.

Each test ends by checking that nothing is left pending: no response valid,
all three readies high, no pulse.
"""

from __future__ import annotations


import cocotb
from cocotb.triggers import ReadOnly, RisingEdge

from ...hw.axi_lite import (RESP_OKAY, RESP_SLVERR, AxiLiteRegisterFile, clear_port_name,
                            field_port_name, set_port_name)
from ...hw.register_map import Field, Register, RegisterMap
from ..axi_lite_master import Access, AxiLiteMaster
from ..streams import bench_rng, start_clock_and_reset

__all__ = ["example_map", "AxiLiteMaster", "HardwareSide", "RegisterModel", "check_trace"]

#: Random reads and writes per direction in ``axil_random_traffic``.
RANDOM_ACCESSES = 1000


def example_map() -> RegisterMap:
    """The register map of the tests: every access type, a multi-byte field, a hole.

    ``scale.value`` spans three bytes from bit 4 (byte strobes cut it);
    ``ctrl.abort`` is a pulse in byte 3; offset 0x0c is unmapped.
    """
    return RegisterMap("axil_example", [
        Register("ctrl", 0x00, [
            Field("enable", 0, 1, "rw", doc="Run the engine."),
            Field("mode", 1, 3, "rw", reset=2, doc="Operating mode."),
            Field("start", 8, 1, "pulse", doc="Start one job."),
            Field("abort", 31, 1, "pulse", doc="Abort the job."),
        ], doc="Control."),
        Register("status", 0x04, [
            Field("busy", 0, 1, "ro", doc="A job is running."),
            Field("done", 8, 1, "w1c", doc="A job finished."),
            Field("error", 9, 1, "w1c", reset=1, doc="Something went wrong."),
            Field("count", 16, 16, "ro", doc="Jobs finished so far."),
        ], doc="Status."),
        Register("scale", 0x08, [
            Field("value", 4, 20, "rw", reset=0x12345, doc="A multi-byte value."),
        ]),
        Register("threshold", 0x10, [
            Field("low", 0, 16, "rw", reset=0xbeef),
            Field("high", 24, 8, "rw", reset=0xa5),
        ], doc="Two fields with a gap between them."),
    ], doc="Example register map of the AXI4-Lite register file tests.")


class HardwareSide:
    """Counts edges, drives the ``ro``/set inputs randomly, records field outputs.

    Parameters
    ----------
    dut : cocotb handle
    regmap : RegisterMap
    rng : numpy.random.Generator
    active : bool
        Drive random input values; if false the ``ro`` inputs stay at their
        documented reset values and the set inputs at 0.
    """

    def __init__(self, dut, regmap: RegisterMap, rng, *, active: bool = True):
        self.dut = dut
        self.rng = rng
        self.active = active
        self.edge = 0
        self.inputs: list[dict] = []   # inputs[c]: sampled by edge c + 1
        self.outputs: list[dict] = []  # outputs[c]: shown during cycle c
        self.in_ports, self.out_ports = {}, []
        for reg in regmap.registers:
            for item in reg.fields:
                name = field_port_name(reg.name, item.name)
                if item.access == "ro":
                    self.in_ports[name] = item.width
                    getattr(dut, name).value = item.reset  # what the docs promise
                else:
                    self.out_ports.append(name)
                if item.access == "w1c":
                    for port in (set_port_name(reg.name, item.name),
                                 clear_port_name(reg.name, item.name)):
                        self.in_ports[port] = 1
                        getattr(dut, port).value = 0

    async def run(self):
        """Start right after a rising edge (cycle 0); runs until cancelled."""
        dut = self.dut
        while True:
            if self.active:
                for name, width in self.in_ports.items():
                    if width == 1:  # set inputs and flags: mostly idle
                        getattr(dut, name).value = int(self.rng.random() < 0.1)
                    elif self.rng.random() < 0.3:
                        getattr(dut, name).value = int(self.rng.integers(0, 1 << width))
            await ReadOnly()
            self.inputs.append({name: int(getattr(dut, name).value) for name in self.in_ports})
            self.outputs.append({name: int(getattr(dut, name).value) for name in self.out_ports})
            await RisingEdge(dut.clk)
            self.edge += 1


class RegisterModel:
    """Plain-Python model of the register file's documented behaviour (32-bit bus).

    ``state`` holds the ``rw`` and ``w1c`` values by port name; ``pulse``
    outputs are high only in the cycle after the edge of a write that fires
    them.
    """

    def __init__(self, regmap: RegisterMap):
        self.regmap = regmap
        self.state = {field_port_name(reg.name, f.name): f.reset
                      for reg in regmap.registers for f in reg.fields
                      if f.access in ("rw", "w1c")}

    def _register(self, address: int):
        return self.regmap.register_at(address & ~3)

    def read(self, address: int, inputs: dict) -> tuple[int, int]:
        """(data, resp) of a read accepted with ``inputs`` on the ``ro`` ports."""
        reg = self._register(address)
        if reg is None:
            return 0, RESP_SLVERR
        values = {}
        for item in reg.fields:
            name = field_port_name(reg.name, item.name)
            if item.access == "ro":
                values[item.name] = inputs[name]
            elif item.access != "pulse":  # pulse fields read 0
                values[item.name] = self.state[name]
        return reg.pack(values), RESP_OKAY

    def write(self, address: int, data: int, strb: int) -> tuple[int, set]:
        """Apply a write; return (resp, names of the pulse outputs it fires)."""
        reg = self._register(address)
        if reg is None:
            return RESP_SLVERR, set()
        enabled = sum(0xff << (8 * byte) for byte in range(4) if strb >> byte & 1)
        pulses = set()
        for item in reg.fields:
            name = field_port_name(reg.name, item.name)
            mask = item.mask & enabled
            if item.access == "rw":
                old = self.state[name] << item.lsb
                self.state[name] = ((old & ~mask) | (data & mask)) >> item.lsb
            elif item.access == "pulse" and data & mask:
                pulses.add(name)
            elif item.access == "w1c" and data & mask:
                self.state[name] = 0
        return RESP_OKAY, pulses

    def apply_sets(self, inputs: dict):
        """Apply the ``w1c`` clear, then set inputs sampled on an edge (after that edge's
        write: set wins over both clears)."""
        for suffix, value_after in (("_clear", 0), ("_set", 1)):
            for name, value in inputs.items():
                field = name[:-len(suffix)]
                if value and name.endswith(suffix) and field in self.state:
                    self.state[field] = value_after

    def outputs(self, pulses: set, names: list) -> dict:
        """Expected value of every field output after an edge that fired ``pulses``."""
        return {name: self.state[name] if name in self.state else int(name in pulses)
                for name in names}


def check_trace(regmap: RegisterMap, hardware: HardwareSide, accesses: list[Access]) -> int:
    """Replay the recorded cycles through :class:`RegisterModel`; return the edges checked.

    Raises
    ------
    AssertionError
        At the first difference, naming the cycle and the access.
    """
    model = RegisterModel(regmap)
    by_edge: dict[tuple, Access] = {}
    for access in accesses:
        latency = access.response_cycle - (access.edge - 1)
        want = (AxiLiteRegisterFile.WRITE_LATENCY if access.kind == "write"
                else AxiLiteRegisterFile.READ_LATENCY)
        assert latency == want, f"{access}: latency {latency} cycles, documented {want}"
        key = (access.kind, access.edge)
        assert key not in by_edge, f"two {access.kind}s completed on edge {access.edge}"
        by_edge[key] = access
    expected = model.outputs(set(), hardware.out_ports)
    assert hardware.outputs[0] == expected, f"cycle 0: outputs {hardware.outputs[0]} != {expected}"
    # The register file acts on a request on the edge latency - 1 after its
    # handshake (the request is registered first).
    read_delay = AxiLiteRegisterFile.READ_LATENCY - 1
    write_delay = AxiLiteRegisterFile.WRITE_LATENCY - 1
    for edge in range(1, len(hardware.outputs)):
        sampled = hardware.inputs[edge - 1]
        read = by_edge.pop(("read", edge - read_delay), None)
        if read is not None:
            data, resp = model.read(read.address, sampled)
            assert (read.data, read.resp) == (data, resp), (
                f"{read}: expected data {data:#010x} resp {resp}, got {read.data:#010x} "
                f"resp {read.resp}")
        pulses = set()
        write = by_edge.pop(("write", edge - write_delay), None)
        if write is not None:
            resp, pulses = model.write(write.address, write.data, write.strb)
            assert write.resp == resp, f"{write}: expected resp {resp}, got {write.resp}"
        model.apply_sets(sampled)
        expected = model.outputs(pulses, hardware.out_ports)
        assert hardware.outputs[edge] == expected, (
            f"cycle {edge}: outputs {hardware.outputs[edge]} != expected {expected} "
            f"(write on that edge: {write})")
    assert not by_edge, f"accesses outside the recorded cycles: {list(by_edge.values())}"
    return len(hardware.outputs) - 1


class AxiLiteBench:
    """Master, hardware side and map around one ``axi_lite_registers`` top."""

    def __init__(self, dut, rng, *, active: bool = True, **master_options):
        self.dut = dut
        self.regmap = example_map()
        self.rng = rng
        self.hardware = HardwareSide(dut, self.regmap, rng, active=active)
        self.master = AxiLiteMaster(dut, self.hardware, rng, **master_options)

    async def start(self):
        await start_clock_and_reset(self.dut)
        self._recorder = cocotb.start_soon(self.hardware.run())
        self.master.start()

    def random_address(self) -> int:
        """Mostly a register (sometimes with low address bits set), else any address."""
        if self.rng.random() < 0.25:
            return int(self.rng.integers(0, 1 << self.master.addr_width))
        reg = self.regmap.registers[int(self.rng.integers(0, len(self.regmap.registers)))]
        return reg.offset | (int(self.rng.integers(1, 4)) if self.rng.random() < 0.2 else 0)

    async def finish(self) -> int:
        """Check nothing is pending, stop recording and replay the trace."""
        await self.master.expect_idle()
        self._recorder.cancel()
        edges = check_trace(self.regmap, self.hardware, self.master.accesses)
        self.dut._log.info("%d accesses over %d cycles match the model",
                           len(self.master.accesses), edges)
        return edges


@cocotb.test()
async def axil_reset_values(dut):
    """After reset every register reads its reset value, holes answer SLVERR."""
    tb = AxiLiteBench(dut, bench_rng(1), active=False)
    await tb.start()
    for reg in tb.regmap.registers:
        access = await tb.master.read(reg.offset)
        assert (access.data, access.resp) == (reg.reset, RESP_OKAY), access
    for address in (0x0c, 0x14, 0x1c):
        assert (await tb.master.read(address)).resp == RESP_SLVERR
    await tb.finish()


@cocotb.test()
async def axil_random_traffic(dut):
    """Concurrent random writes and reads, random delays, back-pressure and hardware events."""
    tb = AxiLiteBench(dut, bench_rng(2))
    rng = tb.rng
    await tb.start()

    def random_write():
        strb = 0xf if rng.random() < 0.5 else int(rng.integers(0, 16))
        return tb.master.submit_write(tb.random_address(), int(rng.integers(0, 1 << 32)), strb)

    async def issue(submit):
        # Up to 4 requests in flight: the slave must hold the later ones off.
        in_flight = []
        for _ in range(RANDOM_ACCESSES):
            in_flight.append(submit())
            while len(in_flight) > int(rng.integers(0, 4)):
                await in_flight.pop(0).done.wait()
        for transfer in in_flight:
            await transfer.done.wait()

    writes = cocotb.start_soon(issue(random_write))
    reads = cocotb.start_soon(issue(lambda: tb.master.submit_read(tb.random_address())))
    await writes
    await reads
    await tb.finish()
    kinds = [(a.kind, a.resp) for a in tb.master.accesses]
    for kind in ("write", "read"):
        # The traffic must exercise both answers in both directions.
        assert (kind, RESP_OKAY) in kinds and (kind, RESP_SLVERR) in kinds, kind


@cocotb.test()
async def axil_back_to_back_without_stalls(dut):
    """No idles and no back-pressure: each direction completes a transfer every 2 cycles."""
    tb = AxiLiteBench(dut, bench_rng(3), idle_probability=0.0, stall_probability=0.0)
    await tb.start()
    count = 20
    for index in range(count):
        await tb.master.write(0x10, index * 0x01010101)
    for _ in range(count):
        await tb.master.read(0x10)
    for kind in ("write", "read"):
        edges = [a.edge for a in tb.master.accesses if a.kind == kind]
        gaps = {later - earlier for earlier, later in zip(edges, edges[1:])}
        # A transfer every latency + 1 edges: the response, then the ready again.
        latency = (AxiLiteRegisterFile.WRITE_LATENCY if kind == "write"
                   else AxiLiteRegisterFile.READ_LATENCY)
        assert gaps == {latency + 1}, f"{kind}s completed {gaps} edges apart, expected " \
            f"{latency + 1}"
    # Hand-checked: the last write, 19 * 0x01010101, keeps bits 31:24 and 15:0.
    assert tb.master.accesses[-1].data == 0x13001313, tb.master.accesses[-1]
    await tb.finish()
