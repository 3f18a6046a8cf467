"""cocotb program player: the cocotb backend of layer programs.

Plays the files of a :class:`~convaccel.sim.program.Program` (folder in
``CONVACCEL_PROGRAM_DIR``) on the ``conv_accel`` top and writes the same
result files as the compiled testbench ``sim/tb/conv_accel_tb.v``, following
the same rules edge for edge (see :mod:`convaccel.sim.program`): the three
streams step their xorshift patterns from each layer's start edge, so both
backends hand the top the same beats in the same cycles and must read back
the same outputs and counters. The AXI4-Lite bus is cocotbext-axi's master
with random pauses on every channel; its timing does not reach a layer's
counters, which count from the start edge.
"""

from __future__ import annotations

import os
from pathlib import Path

import cocotb
from cocotb.triggers import ClockCycles, Event, ReadOnly, RisingEdge, SimTimeoutError, with_timeout
from cocotbext.axi import AxiLiteBus, AxiLiteMaster

from ..program import (BUS, END, IDLE, READ, RELEASE, START, SYNC, WAIT_IRQ, WRITE,
                       stream_states, xorshift32)
from ..streams import start_clock_and_reset

#: Failure codes, as the compiled testbench writes them (see FAILURES in sim/program.py).
OUTPUT_CHANGED, STREAM_TIMEOUT, IRQ_TIMEOUT, SYNC_TIMEOUT = 1, 4, 5, 6
WRITE_RESPONSE, READ_RESPONSE, OVERLAP, BUS_TIMEOUT_FAILURE = 7, 8, 9, 10
#: Cycles an AXI4-Lite transfer may take, and the clock period.
BUS_TIMEOUT, CLOCK_NS = 1000, 10


class _Failed(Exception):
    """Ends the program after an ``X`` record."""


class _Source:
    """One input stream: beats from its file, offered by the layer's pause pattern."""

    def __init__(self, dut, prefix: str, path: Path):
        self.valid = getattr(dut, f"{prefix}_tvalid")
        self.ready = getattr(dut, f"{prefix}_tready")
        self.data = getattr(dut, f"{prefix}_tdata")
        self.last = getattr(dut, f"{prefix}_tlast")
        self.beats = iter([tuple(int(v, 16) for v in line.split())
                           for line in path.read_text().splitlines()])
        self.valid.value = 0
        self.last.value = 0
        self.up = False          # tvalid as driven in the current cycle

    def begin(self, total: int, threshold: int, state: int):
        self.total, self.threshold, self.state = total, threshold, state
        self.offered = self.taken = 0

    def step(self, ready: bool, released: bool):
        """One edge: count a handshake, then offer the next beat or go idle."""
        if self.up and ready:
            self.taken += 1
        self.state = xorshift32(self.state)
        if not self.up or ready:
            if released and self.offered < self.total and self.state >> 24 >= self.threshold:
                last, word = next(self.beats)
                self.data.value = word
                self.last.value = last
                self.valid.value = 1
                self.up = True
                self.offered += 1
            else:
                self.valid.value = 0
                self.up = False


class ProgramPlayer:
    """Plays one program folder on the ``conv_accel`` top (see the module docstring)."""

    def __init__(self, dut, folder: Path):
        self.dut = dut
        self.folder = folder
        self.bus_master = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.clk, dut.rst)
        self.pixels = _Source(dut, "s_axis_pixels", folder / "pixels.hex")
        self.weights = _Source(dut, "s_axis_weights", folder / "weights.hex")
        self.out_ready = dut.m_axis_out_tready
        self.out_ready.value = 0
        self.out_file = open(folder / "out.hex", "w")
        self.results = open(folder / "results.txt", "w")
        self.edges = 0
        self.layer_on = self.released = self.start_due = False
        self.irq = False
        self.failure = None
        self.edge_event = Event()

    def record(self, kind: str, *values: int):
        self.results.write(" ".join([kind] + [f"{v:x}" for v in values]) + "\n")

    def fail(self, code: int):
        self.record("X", code, self.edges)
        self.failure = code

    # -- the per-edge engine: the testbench's tick and step_streams ---------------------

    async def clock(self):
        dut = self.dut
        while True:
            await ReadOnly()
            sample = {name: int(getattr(dut, name).value) for name in (
                "s_axil_awvalid", "s_axil_awready", "s_axil_wvalid", "s_axil_wready",
                "s_axis_pixels_tready", "s_axis_weights_tready", "m_axis_out_tvalid",
                "m_axis_out_tready", "m_axis_out_tlast", "irq")}
            out_data = int(dut.m_axis_out_tdata.value) if sample["m_axis_out_tvalid"] else 0
            await RisingEdge(dut.clk)
            self.edges += 1
            self.irq = bool(sample["irq"])
            if self.start_due:
                self.start_aw |= bool(sample["s_axil_awvalid"] and sample["s_axil_awready"])
                self.start_w |= bool(sample["s_axil_wvalid"] and sample["s_axil_wready"])
                if self.start_aw and self.start_w:
                    self.begin_layer()
            if self.layer_on and self.failure is None:
                self.step(sample, out_data)
            self.edge_event.set()

    def begin_layer(self):
        pixels, weights, outputs, stalls, seed, timeout, hold = self.next_layer
        self.start_due = False
        self.layer_on = True
        self.released = not hold
        self.layer_edge = self.last_out_edge = self.edges
        states = stream_states(seed)
        self.pixels.begin(pixels, stalls & 0xFF, states[0])
        self.weights.begin(weights, stalls >> 8 & 0xFF, states[1])
        self.out_total, self.out_taken = outputs, 0
        self.out_threshold, self.out_state = stalls >> 16 & 0xFF, states[2]
        self.layer_timeout = timeout
        self.out_held = None
        self.record("S", self.edges)

    def step(self, sample: dict, out_data: int):
        valid, ready = sample["m_axis_out_tvalid"], sample["m_axis_out_tready"]
        beat = (out_data, sample["m_axis_out_tlast"])
        if self.out_held is not None and (not valid or beat != self.out_held):
            self.fail(OUTPUT_CHANGED)
        self.out_held = beat if valid and not ready else None
        if valid and ready:
            self.out_file.write(f"{sample['m_axis_out_tlast']} {out_data:x}\n")
            self.out_taken += 1
            self.last_out_edge = self.edges
        self.pixels.step(bool(sample["s_axis_pixels_tready"]), self.released)
        self.weights.step(bool(sample["s_axis_weights_tready"]), self.released)
        self.out_state = xorshift32(self.out_state)
        self.out_ready.value = int(self.out_taken < self.out_total
                                   and self.out_state >> 24 >= self.out_threshold)
        if (self.pixels.taken == self.pixels.total and self.weights.taken == self.weights.total
                and self.out_taken == self.out_total):
            self.layer_on = False
            self.record("D", self.last_out_edge, self.pixels.taken, self.weights.taken,
                        self.out_taken)
        elif self.edges - self.layer_edge > self.layer_timeout:
            self.fail(STREAM_TIMEOUT)

    async def next_edge(self):
        self.edge_event.clear()
        await self.edge_event.wait()
        if self.failure is not None:
            raise _Failed

    # -- the command player ------------------------------------------------------------

    def set_bus_pauses(self, seed: int, threshold: int):
        """Random pauses on the five AXI4-Lite channels, from one xorshift generator."""
        state = [seed or 1]

        def pauses():
            while True:
                state[0] = xorshift32(state[0])
                yield state[0] >> 24 < threshold

        master = self.bus_master
        for channel in (master.write_if.aw_channel, master.write_if.w_channel,
                        master.write_if.b_channel, master.read_if.ar_channel,
                        master.read_if.r_channel):
            channel.set_pause_generator(pauses())

    async def wait_for(self, condition, timeout: int, code: int):
        waited = 0
        while not condition():
            if waited > timeout:
                self.fail(code)
                raise _Failed
            waited += 1
            await self.next_edge()

    async def bus(self, transfer):
        """Await an AXI4-Lite transfer of the master, at most BUS_TIMEOUT cycles."""
        try:
            response = await with_timeout(transfer, BUS_TIMEOUT * CLOCK_NS, "ns")
        except SimTimeoutError:
            self.fail(BUS_TIMEOUT_FAILURE)
            raise _Failed from None
        if int(response.resp) != 0:
            self.fail(WRITE_RESPONSE if hasattr(response, "length") else READ_RESPONSE)
            raise _Failed
        return response

    async def write(self, address: int, data: int):
        await self.bus(self.bus_master.write(address, data.to_bytes(4, "little")))

    async def play(self):
        for line in (self.folder / "program.hex").read_text().splitlines():
            op, *args = (int(v, 16) for v in line.split())
            if op == END:
                break
            if op == WRITE:
                await self.write(*args)
            elif op == READ:
                response = await self.bus(self.bus_master.read(args[0], 4))
                self.record("R", args[0], int.from_bytes(response.data, "little"))
            elif op == START:
                if self.layer_on:
                    self.fail(OVERLAP)
                    raise _Failed
                self.next_layer = args[2:]
                self.start_aw = self.start_w = False
                self.start_due = True
                await self.write(args[0], args[1])
            elif op == WAIT_IRQ:
                await self.next_edge()
                await self.wait_for(lambda: self.irq, args[0], IRQ_TIMEOUT)
                self.record("I", self.edges)
            elif op == IDLE:
                await ClockCycles(self.dut.clk, args[0])
            elif op == SYNC:
                await self.wait_for(lambda: not (self.layer_on or self.start_due), args[0],
                                    SYNC_TIMEOUT)
            elif op == RELEASE:
                self.released = True
            elif op == BUS:
                self.set_bus_pauses(*args)

    async def run(self):
        await start_clock_and_reset(self.dut)
        cocotb.start_soon(self.clock())
        try:
            await self.play()
        except _Failed:
            pass
        self.record("E", self.edges)
        self.out_file.close()
        self.results.close()


@cocotb.test()
async def program_player(dut):
    """Play the program in ``CONVACCEL_PROGRAM_DIR`` (result files next to it)."""
    await ProgramPlayer(dut, Path(os.environ["CONVACCEL_PROGRAM_DIR"])).run()
