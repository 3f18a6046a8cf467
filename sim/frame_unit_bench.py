"""Shared cocotb testbench parts of the frame units (window generator, pooling unit).

Both take one frame per ``job__start`` with their ``shape`` port sampled,
stream ``i``/``o`` with ``{"data", "last"}`` beats, report
``job__done``/``job__busy`` and the ``window_error_layout`` error bits on
``job__error``, and accept ``job__cancel`` (their ``job`` port, see
:class:`~convaccel.hw.job_control.JobControl`). :class:`FrameUnitBench`
holds what their benches have in common; :func:`truncated_frame` and
:func:`overlong_frame` build the bad frames the frame-control tests send.
"""

from __future__ import annotations

import cocotb
from cocotb.triggers import RisingEdge

from ..hw.window_generator import window_error_layout
from .streams import LayoutCodec, Scoreboard, StreamDriver, StreamMonitor, wait_done

__all__ = ["FrameUnitBench", "NO_ERROR", "overlong_frame", "truncated_frame"]

#: Error bits of a frame that ended cleanly.
NO_ERROR = {"config": 0, "short_frame": 0, "long_frame": 0}


def truncated_frame(beats: list[dict], length: int | None = None) -> list[dict]:
    """The first ``length`` beats (default: half), the last of them marked ``last``."""
    cut = [dict(beat) for beat in beats[:len(beats) // 2 if length is None else length]]
    cut[-1]["last"] = 1
    return cut


def overlong_frame(beats: list[dict], extra: int = 1) -> list[dict]:
    """Every beat without ``last``, then ``extra`` more beats, the final one marked ``last``."""
    tail = [dict(beat, last=0) for beat in beats[:extra]]
    tail[-1]["last"] = 1
    return [dict(beat, last=0) for beat in beats] + tail


class FrameUnitBench:
    """Drivers, monitor, scoreboard and control of one frame unit.

    Parameters
    ----------
    dut : cocotb handle
    unit : wiring.Component
        An instance of the simulated design, for its port layouts.
    shape_layout : data.Layout
        Layout of the ``shape`` port.
    name : str
        Used in messages.
    rng, idle_probability, stall_probability
        As for :class:`~convaccel.sim.streams.StreamDriver` / ``StreamMonitor``.
    """

    def __init__(self, dut, unit, shape_layout, name: str, rng, *, idle_probability=0.3,
                 stall_probability=0.3):
        self.dut = dut
        self.name = name
        self.rng = rng
        self.driver = StreamDriver(dut, "i", LayoutCodec(unit.i.payload.shape()), rng=rng,
                                   idle_probability=idle_probability)
        self.monitor = StreamMonitor(dut, "o", LayoutCodec(unit.o.payload.shape()), rng=rng,
                                     stall_probability=stall_probability)
        self.shape_codec = LayoutCodec(shape_layout)
        self.error_codec = LayoutCodec(window_error_layout())
        self.scoreboard = Scoreboard(name)
        self.frames = 0
        dut.job__start.value = 0
        dut.job__cancel.value = 0

    def error(self) -> dict:
        return self.error_codec.unpack(int(self.dut.job__error.value))

    async def start_shape(self, fields: dict):
        """Present ``shape`` and pulse ``start`` (call right after a rising edge)."""
        self.dut.shape.value = self.shape_codec.pack(fields)
        self.dut.job__start.value = 1
        await RisingEdge(self.dut.clk)
        self.dut.job__start.value = 0

    async def wait_done(self, timeout_cycles: int):
        await wait_done(self.dut, timeout_cycles=timeout_cycles, what=self.name)

    async def check_frame(self, fields: dict, beats: list[dict], expected: list[dict],
                          budget: int):
        """Run one good frame and compare every output beat with ``expected``."""
        self.monitor.beats = []
        await self.start_shape(fields)
        receiver = cocotb.start_soon(self.monitor.receive(len(expected), timeout_cycles=budget))
        await self.driver.send(beats, timeout_cycles=budget)
        received = await receiver
        await self.wait_done(budget)
        self.scoreboard.compare(expected, received)
        assert self.error() == NO_ERROR, self.error()
        self.frames += 1

    async def expect_frame_error(self, fields: dict, frame: list[dict], flag: str):
        """Send a bad ``frame``; exactly the ``flag`` error bit must be set."""
        self.monitor.beats = []
        await self.start_shape(fields)
        # Outputs of the part that was complete may come out before the error.
        drain = cocotb.start_soon(self.monitor.receive(10 ** 6, timeout_cycles=10 ** 6))
        await self.driver.send(frame)
        await self.wait_done(1000)
        drain.cancel()
        error = self.error()
        assert error[flag] == 1 and sum(error.values()) == 1, (flag, error)
        assert not any(beat["last"] for beat in self.monitor.beats), \
            "an erroneous frame ended cleanly"
        await RisingEdge(self.dut.clk)
        self.monitor.ready.value = 0
