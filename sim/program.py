"""Layer programs: what a host does to the ``conv_accel`` top, as data both backends replay.

A :class:`Program` is a list of bus commands (AXI4-Lite writes and reads,
layer starts, waits for the interrupt) plus the pixel and weight beats the
layers stream. It is written as plain hex text files (:meth:`Program.write_files`)
that the compiled testbench (``sim/tb/conv_accel_tb.v``, see
:mod:`convaccel.sim.fast`) and the cocotb program player
(``sim/benches/program_bench.py``) both read, and both write the same result
files, which :func:`read_results` parses. So a program run on either backend
gives the same :class:`ProgramResult`, beat for beat and, since both follow
the stall rules below cycle for cycle, counter for counter.

Stalls. Every layer's three streams follow a seeded per-cycle pattern that
starts at the layer's *start edge* (the rising edge that completes the
AXI4-Lite write of ``control.start``; the later of its AW and W handshakes).
At that edge and every edge after it, each stream steps its own 32-bit
xorshift generator (:func:`xorshift32`) once; the stream is *paused* in the
coming cycle when the generator's top byte is below the stream's threshold
(``probability * 256``). A source offers its next beat only when it is not
holding an untaken beat and not paused; the output sink's ``tready`` is
``not paused`` while beats are still expected. The generators start from
:func:`stream_states` of the layer's seed, so a layer's timing does not
depend on the layers before it. Bus transfers get random delays from their
own generator; their timing does not matter for a layer's counters.

The files (numbers in hex, one command or beat per line):

``program.hex``
    ``1 addr data`` write; ``2 addr`` read; ``3 addr data pixels weights
    outputs stalls seed timeout hold`` start a layer (the write of
    ``control.start``, then stream ``pixels`` and ``weights`` beats and take
    ``outputs`` beats; ``stalls`` packs the pixel, weight and output
    thresholds in bits 7..0, 15..8, 23..16; ``hold`` = 1 keeps the sources
    idle until a release); ``4 timeout`` wait for ``irq``; ``5 cycles`` idle;
    ``6 timeout`` wait until the layer's streams are through; ``7`` release
    the held sources; ``8 seed threshold`` bus delays; ``0`` end.
``pixels.hex``, ``weights.hex``
    ``last tdata`` per beat.

Results: ``out.hex`` (``last tdata`` per output beat) and ``results.txt``
(``S edge`` a start edge, ``D edge pixels weights outputs`` a layer's
streams through with the edge of its last output handshake, ``I edge`` irq
seen, ``R addr data`` a read, ``X what edge`` a failure: timeout or a
protocol error).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..hw.config import AccelConfig
from ..hw.conv_accel import conv_accel_register_map
from ..hw.stream_format import StreamFormat

__all__ = ["Program", "ProgramResult", "ProgramFailed", "LayerRecord", "Stalls", "xorshift32",
           "stream_states", "read_results", "PROGRAM_FILES", "RESULT_FILES"]

#: Files a program is written to, and the files a run writes back.
PROGRAM_FILES = ("program.hex", "pixels.hex", "weights.hex")
RESULT_FILES = ("out.hex", "results.txt")

#: Command codes of ``program.hex``.
END, WRITE, READ, START, WAIT_IRQ, IDLE, SYNC, RELEASE, BUS = range(9)

_MASK32 = 0xFFFF_FFFF

#: Codes of the testbench's ``X code edge`` failure records.
FAILURES = {
    1: "a stalled output beat changed or was withdrawn",
    2: "pixels.hex ended early", 3: "weights.hex ended early",
    4: "the layer's streams were not through within its timeout (deadlock?)",
    5: "no irq within the timeout", 6: "the layer's streams were not through within the "
    "sync timeout", 7: "a write was answered with an error response",
    8: "a read was answered with an error response",
    9: "a layer was started before the streams of the one before were through",
    10: "an AXI4-Lite transfer took more than 1000 cycles",
}


def xorshift32(state: int) -> int:
    """One step of the 32-bit xorshift generator (13, 17, 5) both testbenches use."""
    state ^= (state << 13) & _MASK32
    state ^= state >> 17
    state ^= (state << 5) & _MASK32
    return state


def stream_states(seed: int) -> tuple[int, int, int]:
    """Start states of the pixel, weight and output generators for a layer's ``seed``."""
    # Distinct odd offsets keep the three patterns apart; xorshift needs a non-zero state.
    return tuple((seed ^ (0x9E3779B9 * (k + 1) & _MASK32)) & _MASK32 or 1 for k in range(3))


@dataclasses.dataclass(frozen=True)
class Stalls:
    """Chances per cycle of a gap on the pixel and weight streams and of output back-pressure."""

    pixels: float = 0.0
    weights: float = 0.0
    out: float = 0.0

    @classmethod
    def random(cls, probability: float = 0.2) -> "Stalls":
        """The same chance on all three streams."""
        return cls(probability, probability, probability)

    def packed(self) -> int:
        """The three thresholds (``probability * 256``, at most 255) in one word."""
        word = 0
        for index, chance in enumerate((self.pixels, self.weights, self.out)):
            if not 0.0 <= chance < 1.0:
                raise ValueError(f"stall probability must be in [0, 1), got {chance}")
            word |= min(255, round(chance * 256)) << (8 * index)
        return word


class ProgramFailed(AssertionError):
    """A run ended early: a timeout, a protocol error or a short result file."""


@dataclasses.dataclass
class LayerRecord:
    """What a run saw of one started layer."""

    start_edge: int
    last_out_edge: int | None = None
    #: ``(last, tdata)`` of every output beat.
    outputs: list = dataclasses.field(default_factory=list)

    @property
    def port_cycles(self) -> int:
        """Edges from the start write's handshake to the last output handshake."""
        return self.last_out_edge - self.start_edge


@dataclasses.dataclass
class ProgramResult:
    """Everything a run of a :class:`Program` reports."""

    layers: list[LayerRecord]
    #: ``(address, data)`` of every read, in program order.
    reads: list[tuple[int, int]]
    irq_edges: list[int]
    #: Rising edges simulated (the last edge any record names).
    edges: int = 0
    wall_seconds: float = 0.0


class Program:
    """Bus commands and stream beats for the ``conv_accel`` top of one build.

    Parameters
    ----------
    config : AccelConfig
        The build the program is for (register map and stream widths).
    bus_seed : int
        Seed of the random delays on the AXI4-Lite bus.
    bus_delay : float
        Chance per cycle that the bus master waits before a request or a
        response handshake.
    """

    def __init__(self, config: AccelConfig, *, bus_seed: int = 1, bus_delay: float = 0.0):
        self.config = config
        self.regmap = conv_accel_register_map(config)
        self.streams = StreamFormat(config)
        self.commands: list[tuple[int, ...]] = [
            (BUS, (bus_seed & _MASK32) or 1, Stalls(bus_delay).packed())]
        self.pixels: list[tuple[int, int]] = []
        self.weights: list[tuple[int, int]] = []
        self.layer_count = 0
        self.read_count = 0
        self.last_timeout = 100_000

    # -- commands -------------------------------------------------------------------

    def write32(self, address: int, value: int) -> None:
        self.commands.append((WRITE, address, value & _MASK32))

    def write(self, register: str, **fields) -> None:
        """Write ``fields`` (the others 0) to ``register``."""
        reg = self.regmap.register(register)
        self.write32(reg.offset, reg.pack(fields))

    def read32(self, address: int) -> int:
        """Read ``address``; returns the index of the read in :attr:`ProgramResult.reads`."""
        self.commands.append((READ, address))
        self.read_count += 1
        return self.read_count - 1

    def read(self, register: str) -> int:
        return self.read32(self.regmap.register(register).offset)

    def start(self, pixels, weights, outputs: int, *, stalls: Stalls = Stalls(), seed: int = 1,
              timeout: int | None = None, hold: bool = False) -> int:
        """Write ``control.start`` and stream one layer; returns the layer's index.

        ``pixels`` and ``weights`` are ``(last, tdata)`` pairs; ``outputs`` the
        number of output beats to take. ``timeout``: cycles from the start
        edge until all three streams must be through (default: generous for
        the beat counts and the stalls).
        """
        control = self.regmap.register("control")
        if timeout is None:
            timeout = 200 * (len(pixels) + len(weights) + outputs) + 20_000
        self.last_timeout = timeout
        self.commands.append((START, control.offset, control.pack({"start": 1}), len(pixels),
                              len(weights), outputs, stalls.packed(), seed & _MASK32, timeout,
                              int(hold)))
        self.pixels += pixels
        self.weights += weights
        self.layer_count += 1
        return self.layer_count - 1

    def release(self) -> None:
        self.commands.append((RELEASE,))

    def wait_irq(self, timeout: int | None = None) -> None:
        """Wait for ``irq``, at most ``timeout`` cycles (default: the last started layer's)."""
        self.commands.append((WAIT_IRQ, self.last_timeout if timeout is None else timeout))

    def sync(self, timeout: int = 10_000_000) -> None:
        """Wait until the last started layer's streams are through."""
        self.commands.append((SYNC, timeout))

    def idle(self, cycles: int) -> None:
        if cycles > 0:
            self.commands.append((IDLE, cycles))

    # -- beats ----------------------------------------------------------------------

    def words(self, stream: str, beats) -> list[tuple[int, int]]:
        """``(last, tdata)`` of beats given as lane lists or ``{"data", "last"}`` dicts."""
        words = []
        for beat in beats:
            if isinstance(beat, dict):
                data, last = beat["data"], beat.get("last", 0)
            else:
                data, last = beat, 0
            words.append((int(last), self.streams.tdata(stream, [int(v) for v in data])))
        return words

    def lanes(self, word: int) -> list[int]:
        """An output ``tdata`` word as its signed lane values."""
        layout = self.streams.layout("out")
        bits, mask = layout["lane_bits"], (1 << layout["lane_bits"]) - 1
        values = [(word >> (lane * bits)) & mask for lane in range(layout["lanes"])]
        return [value - (1 << bits) if value >> (bits - 1) else value for value in values]

    # -- files ----------------------------------------------------------------------

    def files(self) -> dict[str, str]:
        """``program.hex``, ``pixels.hex`` and ``weights.hex`` as text."""
        commands = self.commands + [(END,)]
        return {
            "program.hex": "".join(" ".join(f"{v:x}" for v in c) + "\n" for c in commands),
            "pixels.hex": "".join(f"{last} {word:x}\n" for last, word in self.pixels),
            "weights.hex": "".join(f"{last} {word:x}\n" for last, word in self.weights),
        }

    def write_files(self, folder: Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in self.files().items():
            (folder / name).write_text(text)
        for name in RESULT_FILES:
            (folder / name).unlink(missing_ok=True)
        return folder


def read_results(folder: Path, program: Program) -> ProgramResult:
    """Parse ``out.hex`` and ``results.txt`` of a run of ``program``.

    Raises
    ------
    ProgramFailed
        On a failure record, or when the run stopped before the program's end.
    """
    folder = Path(folder)
    layers: list[LayerRecord] = []
    reads, irqs, edges = [], [], 0
    try:
        text = (folder / "results.txt").read_text()
        out_text = (folder / "out.hex").read_text()
    except FileNotFoundError as missing:
        raise ProgramFailed(f"the run wrote no {Path(missing.filename).name} (crash?) in "
                            f"{folder}") from None
    outputs = [(int(last, 16), int(word, 16))
               for last, word in (line.split() for line in out_text.splitlines())]
    taken = 0
    for line in text.splitlines():
        kind, *values = line.split()
        if kind == "X":
            code, edge = (int(v, 16) for v in values)
            raise ProgramFailed(f"the run failed at edge {edge}: "
                                f"{FAILURES.get(code, f'failure {code}')} (layer "
                                f"{len(layers) - 1}; {folder})")
        numbers = [int(v, 16) for v in values]
        if kind == "S":
            layers.append(LayerRecord(numbers[0]))
        elif kind == "D":
            record = layers[-1]
            record.last_out_edge = numbers[0]
            record.outputs = outputs[taken:taken + numbers[3]]
            taken += numbers[3]
        elif kind == "I":
            irqs.append(numbers[0])
        elif kind == "R":
            reads.append((numbers[0], numbers[1]))
        elif kind == "E":
            edges = numbers[0]
    if len(layers) != program.layer_count or len(reads) != program.read_count or not edges:
        raise ProgramFailed(f"the run stopped early: {len(layers)} of {program.layer_count} "
                            f"layers, {len(reads)} of {program.read_count} reads ({folder})")
    return ProgramResult(layers, reads, irqs, edges)
