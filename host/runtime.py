"""Run a network program: hardware steps on an accelerator, host steps in NumPy.

:func:`run_program` takes the program's inputs (float arrays, batch first,
as onnxruntime takes them), runs every image through the steps and returns
the outputs as onnxruntime would (same dtype and shape) together with a
per-step report: passes, cycles, MACs, utilization, bytes moved, wall
time, and whether every hardware layer was bit-exact with the golden model.

A hardware step runs on a *pass runner*: an
:class:`~convaccel.host.device.Accelerator` (any transport) through
:class:`AcceleratorRunner`, or the golden model itself
(:class:`GoldenRunner`, no hardware, for quick checks).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .batch import batch_limit, batched_layer, split_batch
from .device import Accelerator, LayerRun
from .fold import Mapping, check_mapping_choice, mapped_layer, pick_mapping, restore_output
from .lowering import lower
from .host_ops import run_host_op
from .program import HardwareStep, HostStep, Program
from .tiling import assemble, pass_input

__all__ = ["AcceleratorRunner", "GoldenRunner", "MismatchError", "StepReport", "run_program"]


class MismatchError(RuntimeError):
    """A hardware layer's output differs from the golden model."""


class GoldenRunner:
    """Runs hardware steps with the golden model (no hardware, no counters)."""

    name = "golden"

    checks_itself = True

    def batch_size(self, step: HardwareStep) -> int:
        return 1

    def run_step(self, step: HardwareStep, x: np.ndarray, on_pass=None):
        """``(output, runs)`` of one step on input ``x (C, H, W)``."""
        output = step.layer.with_input(x).golden()
        if on_pass:
            on_pass(len(step.passes), len(step.passes))
        return output, [LayerRun(output=output)]


class AcceleratorRunner:
    """Runs each pass of a hardware step on an :class:`Accelerator`.

    With ``mapping="auto"`` (the default) a step that runs in one pass runs
    under the mapping :func:`~convaccel.host.fold.choose_mapping` picks for
    the build (a first layer's taps folded into the array's rows, output
    positions into idle columns); ``"direct"`` runs every layer as written.
    """

    def __init__(self, accelerator: Accelerator, name: str = "accelerator",
                 mapping: str = "auto"):
        check_mapping_choice(mapping)
        self.accelerator = accelerator
        self.name = name
        self.mapping = mapping

    def mapping_for(self, step: HardwareStep, x: np.ndarray) -> Mapping:
        """The mapping ``step`` runs under on input ``x`` (direct when it needs passes)."""
        return self._mapping(step, step.layer.with_input(x))

    def _mapping(self, step: HardwareStep, layer) -> Mapping:
        if len(step.passes) != 1:
            return Mapping()
        return pick_mapping(layer, self.accelerator.config, self.mapping)

    checks_itself = False

    def batch_size(self, step: HardwareStep) -> int:
        """Images a pass of ``step`` takes side by side (1 unless fully connected in one pass)."""
        if len(step.passes) != 1:
            return 1
        return batch_limit(step.layer, self.accelerator.config)

    def run_batch(self, step: HardwareStep, xs: np.ndarray, on_pass=None):
        """``(output (M, 1, N), runs)`` of a fully connected step on ``xs (N, C, H, W)``."""
        layer = batched_layer(step.layer, xs)
        run = self.accelerator.run(lower(layer, self.accelerator.config), layer.x)
        if on_pass:
            on_pass(1, 1)
        return run.output, [run]

    def run_step(self, step: HardwareStep, x: np.ndarray, on_pass=None):
        """``(output, runs)`` of one step on input ``x (C, H, W)``: every pass, assembled."""
        layer = step.layer.with_input(x)
        mapping = self._mapping(step, layer)
        if not mapping.direct:
            hw = mapped_layer(layer, mapping)
            run = self.accelerator.run(lower(hw, self.accelerator.config), hw.x)
            if on_pass:
                on_pass(1, 1)
            return restore_output(layer, mapping, run.output), [run]
        runs = []
        for number, (part, lowered) in enumerate(zip(step.passes, step.lowered, strict=True)):
            runs.append(self.accelerator.run(lowered, pass_input(step.layer, part, x)))
            if on_pass:
                on_pass(number + 1, len(step.passes))
        return assemble(step.layer, step.passes, [run.output for run in runs]), runs


@dataclass
class StepReport:
    """One step of the program, summed over the images it ran."""

    name: str
    kind: str
    op: str
    passes: int = 0
    cycles: int = 0
    macs: int = 0
    bytes_moved: int = 0
    wall_seconds: float = 0.0
    bit_exact: bool | None = None
    reason: str = ""
    outputs: dict = field(default_factory=dict)   # tensor -> first image's value

    def utilization(self, pes: int) -> float | None:
        """Real MACs / (PEs x busy cycles), or None without counters."""
        return self.macs / (pes * self.cycles) if self.cycles else None

    def to_dict(self, pes: int) -> dict:
        return {"name": self.name, "kind": self.kind, "op": self.op, "passes": self.passes,
                "cycles": self.cycles, "macs": self.macs, "bytes": self.bytes_moved,
                "utilization": self.utilization(pes), "wall_seconds": self.wall_seconds,
                "bit_exact": self.bit_exact, "reason": self.reason}


def _first_difference(got: np.ndarray, want: np.ndarray) -> str:
    index = tuple(int(i) for i in np.argwhere(got != want)[0])
    return (f"{int(np.sum(got != want))} of {want.size} values differ; first at "
            f"(channel, row, column) {index}: got {int(got[index])}, golden {int(want[index])}")


def _run_hardware(step: HardwareStep, images: list[dict], runner, check: bool,
                  report: StepReport, on_pass) -> None:
    """``step`` on every image: a batch per pass where the layer is fully connected."""
    xs = [np.asarray(tensors[step.input], dtype=np.int64).reshape(step.layer.in_shape)
          for tensors in images]
    size = runner.batch_size(step) if len(xs) > 1 else 1
    outputs = []
    for first in range(0, len(xs), size):
        group = xs[first:first + size]
        if len(group) > 1:
            output, runs = runner.run_batch(step, np.stack(group), on_pass)
            outputs += split_batch(output)
            report.passes += 1
        else:
            output, runs = runner.run_step(step, group[0], on_pass)
            outputs.append(output)
            report.passes += len(step.passes)
        for run in runs:
            report.cycles += run.counters.get("busy_cycles", 0)
            report.bytes_moved += run.bytes_sent + run.bytes_received + 4 * run.register_writes
        # The layer's own MACs (a mapped layer's counter also counts the zero
        # taps of a widened kernel).
        if any(run.counters for run in runs):
            report.macs += step.layer.real_macs() * len(group)
    for x, output, tensors in zip(xs, outputs, images, strict=True):
        if check and not runner.checks_itself:
            want = step.layer.with_input(x).golden()
            if not np.array_equal(output, want):
                raise MismatchError(f"layer {step.name!r} on {runner.name}: not bit-exact with "
                                    f"the golden model: {_first_difference(output, want)}")
            report.bit_exact = True
        tensors[step.output] = output.reshape(step.out_shape)


def _run_host(step: HostStep, tensors: dict) -> None:
    result = run_host_op(step.op, [tensors[name] for name in step.inputs], step.in_params,
                         step.out_params, step.attrs)
    tensors[step.outputs[0]] = result


def run_program(program: Program, feeds: dict[str, np.ndarray], runner, *,
                check: bool = True,
                on_pass: Callable[[int, object, int, int], None] | None = None
                ) -> tuple[dict[str, np.ndarray], list[StepReport]]:
    """Run ``program`` on ``feeds`` (graph input name -> array, batch first).

    Parameters
    ----------
    runner : AcceleratorRunner or GoldenRunner
        Where hardware steps run.
    check : bool
        Compare every hardware layer with the golden model (raise
        :class:`MismatchError` on the first difference).
    on_pass : callable, optional
        ``on_pass(step_index, step, passes_done, passes)`` after each pass
        (a progress bar).

    Returns
    -------
    outputs : dict
        Graph output name -> array, batch first, the ONNX dtype.
    reports : list of StepReport
        One per step, summed over the images.
    """
    (graph_input,) = program.inputs
    if set(feeds) != {graph_input.name}:
        raise ValueError(f"the program takes one input {graph_input.name!r}, got "
                         f"{', '.join(map(repr, feeds)) or 'none'}")
    batch = np.asarray(feeds[graph_input.name])
    expected = [d for d in graph_input.shape[1:]]
    if batch.ndim != len(graph_input.shape) or any(
            isinstance(d, int) and d != got for d, got in zip(expected, batch.shape[1:])):
        raise ValueError(f"input {graph_input.name!r} must have shape {graph_input.shape} "
                         f"(batch first), got {list(batch.shape)}")
    reports = [StepReport(step.name, step.kind,
                          step.op if step.kind == "host" else "conv",
                          reason=getattr(step, "reason", "")) for step in program.steps]
    # Step by step over the whole batch, so a fully connected layer can take
    # the images side by side (host/batch.py).
    images = []
    for image in batch:
        tensors = {name: values for name, (values, _) in program.constants.items()}
        tensors[graph_input.name] = _input_value(image[None], graph_input)
        images.append(tensors)
    for index, (step, report) in enumerate(zip(program.steps, reports)):
        start = time.perf_counter()
        if step.kind == "hardware":
            _run_hardware(step, images, runner, check, report,
                          None if on_pass is None else
                          (lambda done, total, i=index, s=step: on_pass(i, s, done, total)))
        else:
            for tensors in images:
                _run_host(step, tensors)
            if on_pass:
                on_pass(index, step, 1, 1)
        report.wall_seconds += time.perf_counter() - start
        if images:
            report.outputs = {name: images[0][name] for name in step.outputs}
    outputs = {tensor.name: np.concatenate([_output_value(tensors[tensor.name], tensor)
                                            for tensors in images], axis=0)
               for tensor in program.outputs}
    return outputs, reports


def _input_value(value: np.ndarray, tensor) -> np.ndarray:
    """A graph input as the steps take it: float32, or int8-domain integers."""
    if tensor.quant is None:
        return np.asarray(value, dtype=np.float32)
    return np.asarray(value, dtype=np.int64) - tensor.quant.offset


def _output_value(value: np.ndarray, tensor) -> np.ndarray:
    """A tensor as the graph returns it: float32, or the quantized storage type."""
    if tensor.quant is None:
        return np.asarray(value, dtype=np.float32)
    return (np.asarray(value, dtype=np.int64) + tensor.quant.offset).astype(tensor.dtype)

