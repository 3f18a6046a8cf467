"""The fast backend of the host runtime: :class:`~convaccel.host.transport.Transport` on the
compiled testbench (:mod:`convaccel.sim.fast`).

The compiled testbench plays whole layer programs (:class:`~convaccel.sim.program.Program`)
with no Python per cycle, so this transport collects what the runtime does for
one layer and plays it at once: register writes are queued; the write of
``control.start`` becomes the program's layer start, with the pixel and
weight bytes of the two :meth:`send` calls that follow; :meth:`receive`
adds the wait for the interrupt and a read of every register, runs the
program and returns the output bytes. Reads are answered from the register
values read back by the last run (a read with nothing read back yet runs the
queued writes plus that read-back), until the next write. Each layer's
streams follow the testbench's seeded stall patterns (``stalls``).
"""

from __future__ import annotations

from ..hw.config import AccelConfig
from ..hw.conv_accel import conv_accel_register_map
from ..host.streams import beat_bytes
from ..host.transport import TransportError
from .fast import FastSession
from .program import Program, ProgramFailed, Stalls

__all__ = ["FastTransport"]


class FastTransport:
    """Registers and streams of one ``conv_accel`` on the compiled testbench.

    Parameters
    ----------
    config : AccelConfig
        The build (compiled on first use, or found in the build cache).
    stalls : Stalls
        Chances per cycle of gaps on the input streams and of back-pressure.
    seed : int
        Seed of the stall patterns (each layer gets its own, from this one).
    session : FastSession, optional
        The compiled testbench to use.
    """

    def __init__(self, config: AccelConfig, *, stalls: Stalls = Stalls(), seed: int = 1,
                 session: FastSession | None = None):
        self.config = config
        self.stalls = stalls
        self.seed = seed
        self.session = session or FastSession(config)
        self.regmap = conv_accel_register_map(config)
        self.control = self.regmap.register("control")
        self.start_bit = self.control.field("start").mask
        self.readable = [register.offset for register in self.regmap.registers]
        self.layers = 0
        self.cycles = 0
        self._reset_batch()
        self.values: dict[int, int] = {}

    def _reset_batch(self) -> None:
        self.program = Program(self.config)
        # The runtime waits for done; the testbench waits for the interrupt.
        self.program.write("status", irq_enable=1)
        self.started = False
        self.sent: dict[str, bytes] = {}

    def _words(self, stream: str, data: bytes, last: bool) -> list[tuple[int, int]]:
        size = beat_bytes(self.config, stream)
        if len(data) % size:
            raise TransportError(f"{stream}: {len(data)} bytes are not whole {size}-byte beats")
        count = len(data) // size
        return [(int(last and i == count - 1), int.from_bytes(data[i * size:(i + 1) * size],
                                                               "little"))
                for i in range(count)]

    def _run(self) -> list:
        """Play the queued program with a read-back of every register; keep the values."""
        reads = {offset: self.program.read32(offset) for offset in self.readable}
        try:
            result = self.session.run_program(self.program)
        except ProgramFailed as failure:
            raise TransportError(f"fast backend: {failure}") from None
        self.values = {offset: result.reads[index][1] for offset, index in reads.items()}
        self.cycles += result.edges
        self._reset_batch()
        return result.layers

    # The five methods of the protocol.

    def write32(self, offset: int, value: int) -> None:
        self.values = {}
        if offset == self.control.offset and value & self.start_bit:
            self.started = True          # played with the streams (see receive)
            return
        self.program.write32(offset, value)

    def read32(self, offset: int) -> int:
        if offset not in self.values:
            if self.started:
                raise TransportError("a register read between start and the layer's output")
            self._run()
        return self.values[offset]

    def send(self, stream: str, data: bytes) -> None:
        if not self.started:
            raise TransportError(f"{stream}: sent before control.start")
        self.sent[stream] = data

    def receive(self, stream: str, size: int) -> bytes:
        if not self.started or set(self.sent) != {"pixels", "weights"}:
            raise TransportError("receive needs control.start and both input streams first")
        width = beat_bytes(self.config, stream)
        self.layers += 1
        self.program.start(self._words("pixels", self.sent["pixels"], True),
                           self._words("weights", self.sent["weights"], False), size // width,
                           stalls=self.stalls, seed=self.seed * 7919 + self.layers)
        self.program.wait_irq()
        (layer,) = self._run()
        return b"".join(word.to_bytes(width, "little") for _, word in layer.outputs)

    def wait_done(self) -> None:
        if self.started:
            raise TransportError("wait_done before the layer's output was received")
