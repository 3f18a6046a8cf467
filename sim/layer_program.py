"""Layers as programs: :class:`~convaccel.sim.conv_driver.ConvLayer` -> bus commands and beats.

:func:`add_layer` appends what a host does for one layer (layer registers,
per-channel parameters, start, streams, wait for the interrupt, read the
error bits and counters) to a :class:`~convaccel.sim.program.Program`;
:func:`add_chain` appends layers each started on the interrupt of the one
before. :func:`layer_outcome` picks a layer's outputs, error bits and
counters out of a :class:`~convaccel.sim.program.ProgramResult`, in the
shape :meth:`convaccel.sim.driver.ConvAccelDriver.run_layer` returns, and
:func:`check_outcome` checks them against the golden model.
"""

from __future__ import annotations

import dataclasses

from ..hw.conv_accel import COUNTERS
from ..host.device import decode_error
from .conv_driver import ConvLayer
from .layer_suite import real_macs
from .program import Program, ProgramResult, Stalls

__all__ = ["LayerJob", "add_chain", "add_layer", "check_outcome", "decode_error",
           "layer_outcome", "run_layers"]

#: Registers read back after every layer.
READBACK = ("error", *COUNTERS, "out_size")


@dataclasses.dataclass
class LayerJob:
    """Where one layer's results are in a program's result."""

    layer: ConvLayer
    index: int                  # the layer's start, in program order
    reads: dict[str, int]       # register -> index of its read
    expected: list[dict]
    delay: int = 0              # cycles between the interrupt before and the start
    sent: dict = dataclasses.field(default_factory=dict)   # beats sent: {"pixels": n, "weights": n}


def _start(program: Program, layer: ConvLayer, stalls: Stalls, seed: int, hold: bool) -> tuple:
    cfg = program.config
    pixels = program.words("pixels", layer.pixel_beats(cfg))
    weights = program.words("weights", layer.weight_beats(cfg))
    expected = layer.expected_beats(cfg)
    index = program.start(pixels, weights, len(expected), stalls=stalls, seed=seed, hold=hold)
    return index, expected, {"pixels": len(pixels), "weights": len(weights)}


def _readback(program: Program) -> dict[str, int]:
    return {name: program.read(name) for name in READBACK}


def add_layer(program: Program, layer: ConvLayer, *, stalls: Stalls = Stalls(), seed: int = 1,
              params: bool = True) -> LayerJob:
    """Program, start and stream ``layer``, wait for its interrupt, read its results back.

    ``params=False`` leaves the per-channel parameters as the layer before
    wrote them (they must be the same).
    """
    program.write("status", irq_enable=1)
    for register, fields in layer.register_fields(program.regmap).items():
        program.write(register, **fields)
    if params:
        for register, fields in layer.param_register_writes():
            program.write(register, **fields)
    index, expected, sent = _start(program, layer, stalls, seed, hold=False)
    program.sync()
    program.wait_irq()
    return LayerJob(layer, index, _readback(program), expected, sent=sent)


def add_chain(program: Program, layers: list[ConvLayer], rng, *, stalls: Stalls = Stalls(),
              max_delay: int = 20) -> list[LayerJob]:
    """Layers each started on the interrupt of the one before (0..``max_delay`` cycles later).

    The next layer's registers are written while its predecessor runs (they
    are sampled at start); parameters, which are taken only while idle, are
    written after the interrupt when they change. The error bits and counters
    of a layer are read after the next one started (they hold until it ends);
    that layer's streams are held back until then, so it cannot end first.
    """
    program.write("status", irq_enable=1)
    jobs: list[LayerJob] = []
    params = None
    for layer in layers:
        for register, fields in layer.register_fields(program.regmap).items():
            program.write(register, **fields)
        delay = 0
        if jobs:
            program.wait_irq()
            delay = int(rng.integers(1, max_delay + 1)) if rng.random() < 0.5 else 0
            program.idle(delay)
        if layer.param_writes() != params:
            params = layer.param_writes()
            for register, fields in layer.param_register_writes():
                program.write(register, **fields)
        index, expected, sent = _start(program, layer, stalls, int(rng.integers(1, 1 << 32)),
                                 hold=bool(jobs))
        if jobs:
            jobs[-1].reads = _readback(program)
            program.release()
        jobs.append(LayerJob(layer, index, {}, expected, delay, sent))
    program.sync()
    program.wait_irq()
    jobs[-1].reads = _readback(program)
    return jobs


def layer_outcome(program: Program, result: ProgramResult, job: LayerJob) -> dict:
    """Outputs, error bits, counters, output size and port edges of one layer."""
    record = result.layers[job.index]
    values = {name: program.regmap.register(name).unpack(result.reads[index][1])
              for name, index in job.reads.items()}
    code = result.reads[job.reads["error"]][1]
    counters = {name: values[name]["count"] for name in COUNTERS}
    counters["macs"] = counters["macs_hi"] << 32 | counters["macs_lo"]
    return {"name": job.layer.name, "expected": job.expected,
            "received": [{"data": program.lanes(word), "last": last}
                         for last, word in record.outputs],
            "error": code, "errors": decode_error(code), "counters": counters,
            "out_size": values["out_size"], "start_edge": record.start_edge,
            "last_out_edge": record.last_out_edge, "port_cycles": record.port_cycles,
            "delay": job.delay, "beats_sent": job.sent}


def check_outcome(outcome: dict, layer: ConvLayer) -> None:
    """Bit-exact output, no error bit, ``busy_cycles`` equal to the edges counted at the
    ports and ``macs`` equal to ``P*Q*M*(C/groups)*R*S``; raises ``AssertionError``."""
    name = layer.name
    expected, received = outcome["expected"], outcome["received"]
    for index, (want, got) in enumerate(zip(expected, received)):
        assert want == got, f"{name}: first mismatch at beat {index}: expected {want}, got {got}"
    assert len(expected) == len(received), (name, len(expected), len(received))
    assert outcome["error"] == 0, (name, outcome["errors"])
    counters = outcome["counters"]
    assert counters["busy_cycles"] == outcome["port_cycles"], (
        name, counters["busy_cycles"], outcome["port_cycles"])
    assert counters["macs"] == real_macs(layer), (name, counters["macs"], real_macs(layer))
    sent = outcome["beats_sent"]
    for stream, count in (("pixel_beats", sent["pixels"]), ("weight_beats", sent["weights"]),
                          ("out_beats", len(received))):
        assert counters[stream] == count, (name, stream, counters[stream], count)


def run_layers(session, layers: list[ConvLayer], *, stalls: Stalls = Stalls(), seed: int = 1,
               bus_delay: float = 0.0, check: bool = True, **run_options) -> tuple[list, object]:
    """Run ``layers`` one after the other on ``session`` (fast or cocotb); returns each
    layer's outcome (checked with :func:`check_outcome` unless ``check=False``) and the
    program's result."""
    program = Program(session.config, bus_seed=seed, bus_delay=bus_delay)
    jobs = [add_layer(program, layer, stalls=stalls, seed=seed * 7919 + index)
            for index, layer in enumerate(layers)]
    result = session.run_program(program, **run_options)
    outcomes = [layer_outcome(program, result, job) for job in jobs]
    if check:
        for outcome, layer in zip(outcomes, layers):
            check_outcome(outcome, layer)
    return outcomes, result
