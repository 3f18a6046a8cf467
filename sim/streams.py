"""cocotb stream verification IP for ``amaranth.lib.stream`` ports.

An Amaranth stream port ``i`` becomes the Verilog ports ``i__valid``,
``i__ready`` and ``i__payload`` (the payload packed as its
``amaranth.lib.data`` layout). :class:`StreamDriver` sends beats into such a
port with seeded random idle cycles; :class:`StreamMonitor` collects beats from
an output port with seeded random back-pressure and checks the stream rule that
a stalled beat stays valid and unchanged; :class:`Scoreboard` compares what
came out with what the golden model expects and reports the first mismatch
with its index and both values.

Handshakes are sampled in the ReadOnly phase before each rising edge, so
the code does not depend on when the simulator updates registered outputs.
Every wait has a cycle limit: a deadlock fails fast with a message instead of
hanging the run.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import cocotb
from amaranth.lib import data
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

LOG = logging.getLogger("cocotb.convaccel")

__all__ = ["LayoutCodec", "WordCodec", "StreamDriver", "StreamMonitor", "Scoreboard", "SimTimeout",
           "bench_seed", "bench_rng", "start_clock_and_reset", "wait_done", "wait_until"]


class SimTimeout(AssertionError):
    """A wait exceeded its cycle limit (probably a deadlock)."""


def bench_seed() -> int:
    """Seed of this run: ``CONVACCEL_SEED`` if set, else cocotb's ``RANDOM_SEED``."""
    return int(os.environ.get("CONVACCEL_SEED", cocotb.RANDOM_SEED))


def bench_rng(salt: int = 0) -> np.random.Generator:
    """A ``numpy`` generator seeded from :func:`bench_seed` (plus ``salt``)."""
    seed = bench_seed()
    LOG.info("convaccel random seed %d (salt %d): rerun with CONVACCEL_SEED=%d",
                    seed, salt, seed)
    return np.random.default_rng([seed, salt])


class LayoutCodec:
    """Packs dicts to the integer image of an Amaranth layout and back."""

    def __init__(self, layout: data.Layout):
        self.layout = data.Layout.cast(layout)
        self.width = self.layout.size

    def pack(self, fields: dict) -> int:
        return self.layout.const(fields).as_value().value & ((1 << self.width) - 1)

    def unpack(self, bits: int):
        """Plain Python image: dict for a struct, list for an array, int for a field."""
        return self._plain(data.Const(self.layout, int(bits)))

    @classmethod
    def _plain(cls, value):
        if not isinstance(value, data.Const):
            return int(value)
        layout = value.shape()
        if isinstance(layout, data.ArrayLayout):
            return [cls._plain(value[index]) for index in range(layout.length)]
        return {name: cls._plain(value[name]) for name, _ in layout}


class WordCodec:
    """Beats that are already whole ``tdata`` words: packs and unpacks nothing."""

    def __init__(self, width: int):
        self.width = width

    def pack(self, word: int) -> int:
        return word

    def unpack(self, bits: int) -> int:
        return int(bits)


async def start_clock_and_reset(dut, *, cycles: int = 3, period_ns: int = 10):
    """Start ``dut.clk`` and hold ``dut.rst`` high for ``cycles`` rising edges."""
    cocotb.start_soon(Clock(dut.clk, period_ns, unit="ns").start())
    dut.rst.value = 1
    await ClockCycles(dut.clk, cycles)
    dut.rst.value = 0
    await RisingEdge(dut.clk)


async def wait_until(dut, condition, *, timeout_cycles: int, what: str):
    """Wait (sampling before each rising edge) until ``condition()`` holds."""
    for _ in range(timeout_cycles):
        await ReadOnly()
        if condition():
            await RisingEdge(dut.clk)
            return
        await RisingEdge(dut.clk)
    raise SimTimeout(f"timed out after {timeout_cycles} cycles waiting for {what}")


async def wait_done(dut, *, timeout_cycles: int, what: str):
    """Wait until a unit's job port reports ``job__done`` and no longer ``job__busy``."""
    await wait_until(dut, lambda: int(dut.job__done.value) and not int(dut.job__busy.value),
                     timeout_cycles=timeout_cycles, what=f"{what} to finish")


class _StreamPort:
    """The signals of one stream port.

    ``<prefix>__valid/ready/payload`` for an Amaranth stream; with
    ``axis=True`` the AXI4-Stream names ``<prefix>_tvalid/tready/tdata/tlast``,
    where the codec packs ``beat["data"]`` into ``tdata`` and ``beat["last"]``
    drives ``tlast``.
    """

    def __init__(self, dut, prefix: str, codec, rng: np.random.Generator, axis: bool = False):
        self.dut = dut
        self.clk = dut.clk
        self.axis = axis
        if axis:
            self.valid = getattr(dut, f"{prefix}_tvalid")
            self.ready = getattr(dut, f"{prefix}_tready")
            self.payload = getattr(dut, f"{prefix}_tdata")
            self.tlast = getattr(dut, f"{prefix}_tlast", None)
        else:
            self.valid = getattr(dut, f"{prefix}__valid")
            self.ready = getattr(dut, f"{prefix}__ready")
            self.payload = getattr(dut, f"{prefix}__payload")
        self.codec = codec
        self.rng = rng

    def _put(self, beat):
        if self.axis:
            self.payload.value = self.codec.pack(beat["data"])
            if self.tlast is not None:
                self.tlast.value = int(beat.get("last", 0))
        else:
            self.payload.value = self.codec.pack(beat)

    def _sample(self) -> int:
        """The payload bits (and tlast on top, for AXI4-Stream) as one integer."""
        value = int(self.payload.value)
        if self.axis and self.tlast is not None:
            value |= int(self.tlast.value) << len(self.payload)
        return value

    def _decode(self, bits: int):
        if self.axis:
            # tdata is rounded up to whole bytes: the bits above the layout are padding.
            beat = {"data": self.codec.unpack(bits & ((1 << self.codec.width) - 1))}
            if self.tlast is not None:
                beat["last"] = bits >> len(self.payload)
            return beat
        return self.codec.unpack(bits)


class StreamDriver(_StreamPort):
    """Drives beats into a valid/ready stream port with random idle cycles.

    Parameters
    ----------
    dut : cocotb handle
        The toplevel.
    prefix : str
        Port prefix, e.g. ``"i"`` for ``i__valid``/``i__ready``/``i__payload``.
    axis : bool
        AXI4-Stream port names (``<prefix>_tvalid`` ...), see ``_StreamPort``.
    codec : LayoutCodec
        The payload layout.
    rng : numpy.random.Generator
        Source of the idle pattern (and of junk payloads while idle).
    idle_probability : float
        Chance of inserting an idle cycle before each beat.
    """

    def __init__(self, dut, prefix: str, codec: LayoutCodec, *, rng: np.random.Generator,
                 idle_probability: float = 0.3, axis: bool = False):
        super().__init__(dut, prefix, codec, rng, axis)
        self.idle_probability = idle_probability
        self.sent = 0
        self.cycles = 0
        self.valid.value = 0

    def _junk(self) -> int:
        return int(self.rng.integers(0, 1 << min(self.codec.width, 62)))

    async def send(self, beats: list[dict], *, timeout_cycles: int | None = None):
        """Send every beat in order; call right after a rising edge."""
        budget = timeout_cycles if timeout_cycles is not None else 100 * len(beats) + 1000
        deadline = self.cycles + budget  # self.cycles counts over every send()
        for index, beat in enumerate(beats):
            # Idle cycles show junk on the payload: the DUT must ignore it.
            while self.rng.random() < self.idle_probability:
                self.valid.value = 0
                self.payload.value = self._junk()  # (tlast keeps its old value)
                await RisingEdge(self.clk)
                self.cycles += 1
            self.valid.value = 1
            self._put(beat)
            while True:
                await ReadOnly()
                accepted = bool(self.ready.value)
                await RisingEdge(self.clk)
                self.cycles += 1
                if accepted:
                    break
                if self.cycles > deadline:
                    raise SimTimeout(
                        f"driver {self.valid._name}: beat {index} of {len(beats)} not accepted "
                        f"within {budget} cycles of this "
                        "send (deadlock?)")
            self.sent += 1
        self.valid.value = 0


class StreamMonitor(_StreamPort):
    """Collects beats from a valid/ready output port with random back-pressure.

    Also checks the stream rule: once ``valid`` is high and ``ready`` low, the
    next cycle must show ``valid`` high and the same payload.

    Parameters
    ----------
    dut : cocotb handle
    prefix : str
        Port prefix, e.g. ``"o"``.
    codec : LayoutCodec
    rng : numpy.random.Generator
    stall_probability : float
        Chance of holding ``ready`` low in a cycle.
    clock : EdgeCounter, optional
        With it, ``edges`` records the rising edge of every handshake.
    """

    def __init__(self, dut, prefix: str, codec: LayoutCodec, *, rng: np.random.Generator,
                 stall_probability: float = 0.3, axis: bool = False, clock=None):
        super().__init__(dut, prefix, codec, rng, axis)
        self.stall_probability = stall_probability
        self.clock = clock
        self.edges: list[int] = []
        self.beats: list[dict] = []
        self.stall_cycles = 0
        self.ready.value = 0

    async def receive(self, count: int, *, timeout_cycles: int | None = None) -> list[dict]:
        """Collect ``count`` beats (call right after a rising edge) and return them."""
        limit = timeout_cycles if timeout_cycles is not None else 100 * count + 1000
        held = None  # payload that was valid but not taken in the previous cycle
        for cycle in range(limit):
            ready = self.rng.random() >= self.stall_probability
            self.ready.value = int(ready)
            await ReadOnly()
            valid = bool(self.valid.value)
            if held is not None:
                if not valid or self._sample() != held:
                    raise AssertionError(
                        f"stream {self.valid._name}: beat {len(self.beats)} changed or was "
                        f"withdrawn while stalled (was {self._decode(held)}, now "
                        f"valid={int(valid)} payload="
                        f"{self._decode(self._sample()) if valid else '-'})")
            held = None
            if valid and ready:
                self.beats.append(self._decode(self._sample()))
                if self.clock is not None:
                    self.edges.append(self.clock.edge + 1)  # the edge that takes it
            elif valid:
                held = self._sample()
                self.stall_cycles += 1
            await RisingEdge(self.clk)
            if len(self.beats) == count:
                self.ready.value = 0
                return self.beats
        raise SimTimeout(
            f"monitor {self.valid._name}: got {len(self.beats)} of {count} beats within "
            f"{limit} cycles (deadlock or lost beats?)")

    async def expect_silence(self, cycles: int):
        """Fail if any beat appears in the next ``cycles`` cycles (duplicates, junk)."""
        self.ready.value = 1
        for _ in range(cycles):
            await ReadOnly()
            if self.valid.value:
                raise AssertionError(
                    f"stream {self.valid._name}: unexpected extra beat "
                    f"{self._decode(self._sample())} after the expected ones")
            await RisingEdge(self.clk)


class Scoreboard:
    """Compares received beats with expected ones, reporting the first mismatch.

    Parameters
    ----------
    name : str
        Used in messages.
    """

    def __init__(self, name: str):
        self.name = name
        self.checked = 0

    def compare(self, expected: list[dict], actual: list[dict]):
        for index, (want, got) in enumerate(zip(expected, actual)):
            if want != got:
                raise AssertionError(
                    f"{self.name}: first mismatch at beat {index} of {len(expected)}: "
                    f"expected {want}, got {got}")
        if len(expected) != len(actual):
            raise AssertionError(
                f"{self.name}: expected {len(expected)} beats, got {len(actual)}")
        self.checked += len(expected)
        LOG.info("%s: %d beats match the golden model", self.name, len(expected))
