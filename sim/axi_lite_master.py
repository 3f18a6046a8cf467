"""cocotb AXI4-Lite master with random delays and back-pressure (verification IP).

Used by the register-file bench and by the conv accelerator's host driver.
The master needs an object whose ``edge`` attribute counts rising edges
(read in the ReadOnly phase); :class:`EdgeCounter` is the plain one.
"""

from __future__ import annotations

import dataclasses

import cocotb
from cocotb.queue import Queue
from cocotb.triggers import Event, ReadOnly, RisingEdge

from .streams import SimTimeout

__all__ = ["Access", "AxiLiteMaster", "EdgeCounter"]


class EdgeCounter:
    """Counts rising edges of ``dut.clk`` from its ``start()``."""

    def __init__(self, dut):
        self.dut = dut
        self.edge = 0

    def start(self):
        cocotb.start_soon(self._run())

    async def _run(self):
        while True:
            await RisingEdge(self.dut.clk)
            self.edge += 1


@dataclasses.dataclass
class Access:
    """One transfer as the master saw it (``resp`` is None until it is answered).

    ``edge`` numbers the rising edge that completed the request (the later
    of AW and W for a write); ``response_cycle`` the first cycle the
    response was valid (cycle ``n`` follows edge ``n``).
    """

    kind: str  # "write" or "read"
    address: int
    data: int = 0
    strb: int = 0
    resp: int | None = None
    edge: int | None = None
    response_cycle: int | None = None


@dataclasses.dataclass
class _Transfer:
    """A submitted write or read on its way through the channels."""

    access: Access
    marks: dict  # request channel -> edge of its handshake
    done: Event


class AxiLiteMaster:
    """AXI4-Lite master model with random valid delays and ready back-pressure.

    Requests go out in order on their channels (AW and W independently, so
    either may lead), each after a seeded random number of idle cycles with
    junk on the payload. Several writes (and reads) may be submitted before
    the first response, as a real master may do: the slave has to hold them
    off. BREADY and RREADY are random every cycle, also when nothing is due.
    The response workers check the slave's side: a response comes only
    after its request was accepted, and a stalled response stays valid and
    unchanged.

    Parameters
    ----------
    dut : cocotb handle
        Has the ``<prefix>_aw*`` ... ``<prefix>_r*`` ports.
    clock : EdgeCounter or any object with an ``edge`` count
        Supplies the edge count (read only in the ReadOnly phase).
    rng : numpy.random.Generator
    idle_probability : float
        Chance of one more idle cycle before each AW, W and AR valid.
    stall_probability : float
        Chance of BREADY/RREADY being low in a cycle.
    timeout_cycles : int
        Limit of every wait for a handshake or a response.
    prefix : str
    """

    def __init__(self, dut, clock, rng, *, idle_probability: float = 0.4,
                 stall_probability: float = 0.4, timeout_cycles: int = 200,
                 prefix: str = "s_axil"):
        self.dut = dut
        self.clock = clock
        self.rng = rng
        self.idle_probability = idle_probability
        self.stall_probability = stall_probability
        self.timeout_cycles = timeout_cycles
        self.port = {name: getattr(dut, f"{prefix}_{name}") for name in (
            "awaddr", "awprot", "awvalid", "awready", "wdata", "wstrb", "wvalid", "wready",
            "bresp", "bvalid", "bready", "araddr", "arprot", "arvalid", "arready",
            "rdata", "rresp", "rvalid", "rready")}
        self.addr_width = len(self.port["awaddr"])
        self.data_width = len(self.port["wdata"])
        for name in ("awvalid", "wvalid", "arvalid", "bready", "rready", "awaddr", "awprot",
                     "wdata", "wstrb", "araddr", "arprot"):
            self.port[name].value = 0
        self.accesses: list[Access] = []  # completed, in completion order
        self._requests = {channel: Queue() for channel in ("aw", "w", "ar")}
        self._due = {"b": [], "r": []}  # submitted transfers awaiting their response

    def start(self):
        """Start the channel workers (right after reset; cocotb ends them with the test)."""
        for channel in self._requests:
            cocotb.start_soon(self._request_worker(channel))
        cocotb.start_soon(self._response_worker("b", ("bresp",), ("aw", "w")))
        cocotb.start_soon(self._response_worker("r", ("rdata", "rresp"), ("ar",)))

    def _junk(self, payload: dict):
        for name in payload:
            self.port[name].value = int(self.rng.integers(0, 1 << len(self.port[name])))

    async def _request_worker(self, channel: str):
        valid, ready = self.port[f"{channel}valid"], self.port[f"{channel}ready"]
        while True:
            payload, marks = await self._requests[channel].get()
            while self.rng.random() < self.idle_probability:
                self._junk(payload)  # the slave must ignore the payload while valid is low
                await RisingEdge(self.dut.clk)
            for name, value in payload.items():
                self.port[name].value = value
            valid.value = 1
            for _ in range(self.timeout_cycles):
                await ReadOnly()
                accepted = bool(ready.value)
                if accepted:
                    marks[channel] = self.clock.edge + 1
                await RisingEdge(self.dut.clk)
                if accepted:
                    break
            else:
                raise SimTimeout(f"{channel.upper()} {payload} not accepted within "
                                 f"{self.timeout_cycles} cycles")
            valid.value = 0

    async def _response_worker(self, channel: str, names: tuple, requests: tuple):
        valid, ready = self.port[f"{channel}valid"], self.port[f"{channel}ready"]
        due = self._due[channel]
        held, waited = None, 0
        while True:
            finished = None
            take = bool(self.rng.random() >= self.stall_probability)
            ready.value = int(take)
            await ReadOnly()
            payload = tuple(int(self.port[name].value) for name in names)
            if held is not None and (not valid.value or payload != held):
                raise AssertionError(
                    f"{channel.upper()} response changed or withdrawn while stalled: was "
                    f"{held}, now valid={int(valid.value)} {dict(zip(names, payload))}")
            held = None
            edge = self.clock.edge
            if valid.value:
                if not due or any(due[0].marks.get(r, edge + 1) > edge for r in requests):
                    raise AssertionError(
                        f"{channel.upper()}VALID in cycle {edge} with no request accepted "
                        f"before it (outstanding: {[t.access for t in due]})")
                access = due[0].access
                if access.response_cycle is None:
                    access.response_cycle = edge
                if take:
                    finished = due.pop(0)
                    access.edge = max(finished.marks[r] for r in requests)
                    access.resp = payload[-1]
                    if channel == "r":
                        access.data = payload[0]
                    self.accesses.append(access)
                else:
                    held = payload
            waited = waited + 1 if due and all(r in due[0].marks for r in requests) else 0
            if waited > self.timeout_cycles:
                raise SimTimeout(f"no {channel.upper()} response within {self.timeout_cycles} "
                                 f"cycles of accepting {due[0].access}")
            await RisingEdge(self.dut.clk)
            if finished is not None:
                finished.done.set()  # after the edge: the waiter may drive signals

    def submit_write(self, address: int, data: int, strb: int | None = None) -> _Transfer:
        """Queue a write (byte enables ``strb``, default all); await ``.done`` for it."""
        strb = (1 << (self.data_width // 8)) - 1 if strb is None else strb
        transfer = _Transfer(Access("write", address, data, strb), {}, Event())
        self._due["b"].append(transfer)
        self._requests["aw"].put_nowait(
            ({"awaddr": address, "awprot": int(self.rng.integers(0, 8))}, transfer.marks))
        self._requests["w"].put_nowait(({"wdata": data, "wstrb": strb}, transfer.marks))
        return transfer

    def submit_read(self, address: int) -> _Transfer:
        """Queue a read; await ``.done`` for it."""
        transfer = _Transfer(Access("read", address), {}, Event())
        self._due["r"].append(transfer)
        self._requests["ar"].put_nowait(
            ({"araddr": address, "arprot": int(self.rng.integers(0, 8))}, transfer.marks))
        return transfer

    async def write(self, address: int, data: int, strb: int | None = None) -> Access:
        """Write and wait for the response."""
        transfer = self.submit_write(address, data, strb)
        await transfer.done.wait()
        return transfer.access

    async def read(self, address: int) -> Access:
        """Read and wait for the response."""
        transfer = self.submit_read(address)
        await transfer.done.wait()
        return transfer.access

    async def expect_idle(self, cycles: int = 10):
        """Nothing pending: all answered, no response valid, every ready high."""
        pending = [t.access for due in self._due.values() for t in due]
        assert not pending, f"transfers still without a response: {pending}"
        for _ in range(cycles):
            await ReadOnly()
            state = {name: int(self.port[name].value)
                     for name in ("bvalid", "rvalid", "awready", "wready", "arready")}
            if state != {"bvalid": 0, "rvalid": 0, "awready": 1, "wready": 1, "arready": 1}:
                raise AssertionError(f"register file not idle after the traffic: {state}")
            await RisingEdge(self.dut.clk)
