"""The transport protocol: the five things a host runtime needs from a ``conv_accel``.

A transport moves 32-bit register words and stream bytes between the host
and one accelerator; it knows nothing about layers. The runtime
(:class:`~convaccel.host.device.Accelerator`) runs every layer with these
five methods, so the same program runs on any backend that has them:

* the cocotb backend (``convaccel.sim.host_transport.CocotbTransport``),
  which drives the AXI ports of the RTL under Verilator;
* a fast-simulation backend (a compiled testbench);
* a board: memory-mapped registers plus one DMA channel per stream (the
  README's "Bring your own model" section shows one).

Stream bytes are what a DMA moves: one ``tdata`` word per beat, rounded up
to whole bytes, little-endian, lane 0 in the low bits (see
:mod:`convaccel.host.streams`); a transfer ends with ``tlast`` on its last
beat. A layer is, in this order::

    write32(...) for every register and parameter, write32(control, start)
    send("weights", ...); send("pixels", ...)   # both start, neither waits
    receive("out", n)                            # blocks until n bytes came
    wait_done()                                  # blocks until status.done
    read32(error), read32(counters ...)
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["INPUT_STREAMS", "OUTPUT_STREAMS", "Transport", "TransportError"]

#: Streams the host sends (AXI4-Stream slave ports of the top).
INPUT_STREAMS = ("pixels", "weights")
#: Streams the host receives.
OUTPUT_STREAMS = ("out",)


class TransportError(RuntimeError):
    """The transport could not complete an operation (a timeout, a lost device)."""


@runtime_checkable
class Transport(Protocol):
    """What a backend implements to run programs on one ``conv_accel``."""

    def write32(self, offset: int, value: int) -> None:
        """Write the 32-bit register at byte ``offset``."""

    def read32(self, offset: int) -> int:
        """Read the 32-bit register at byte ``offset``."""

    def send(self, stream: str, data: bytes) -> None:
        """Start sending ``data`` on input stream ``stream`` (``"pixels"`` or ``"weights"``).

        Returns as soon as the transfer is under way (a DMA started): the
        accelerator takes the pixel and weight streams at the same time, so
        a transport that waited for one to finish before the other started
        would deadlock. The transfer ends with ``tlast``. ``data`` stays the
        transport's until :meth:`wait_done` returns.
        """

    def receive(self, stream: str, size: int) -> bytes:
        """Receive exactly ``size`` bytes from output stream ``stream`` (``"out"``).

        Blocks until they have arrived (the sends started before keep going
        meanwhile).
        """

    def wait_done(self) -> None:
        """Block until the accelerator raised ``status.done`` (or its interrupt).

        Every send started before has completed when this returns. A
        transport raises :class:`TransportError` after its own time limit.
        """
