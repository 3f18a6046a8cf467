"""Compare a program's outputs with onnxruntime's own int8 execution of the same model.

onnxruntime runs the quantized graph as the graph says: a QDQ model's
``DequantizeLinear -> Conv -> QuantizeLinear`` in float with ties to even
(its basic optimization level; the extended levels fuse such groups into
its integer kernels, whose 16-bit intermediate sums saturate on x86 CPUs
without VNNI, so their results depend on the machine), a QOperator model's
``QLinearConv`` and friends with those integer kernels (exact everywhere
only for models quantized with ``reduce_range``). The accelerator computes
with fixed-point ``M0 / 2**sh`` and ties towards +infinity, so single
outputs can differ by one quantization step. :func:`agreement` counts, per output
and over all values, how many are identical, off by one step and worse, and
how often the largest value (top-1) is the same.

Needs ``onnxruntime`` (``pip install 'convaccel[onnx]'``).
"""

from __future__ import annotations

import numpy as np

from .host_ops import QuantParams
from .program import Program

__all__ = ["agreement", "onnxruntime_outputs", "output_quantization"]


def onnxruntime_outputs(model_path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """onnxruntime's outputs (CPU, basic graph optimizations: see the module), image by image."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    # Not the fused integer kernels: the same result on every CPU.
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
    session = onnxruntime.InferenceSession(str(model_path), options,
                                           providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    (name, batch), = feeds.items()
    runs = [session.run(None, {name: batch[i:i + 1]}) for i in range(len(batch))]
    return {out: np.concatenate([run[k] for run in runs], axis=0) for k, out in enumerate(names)}


def output_quantization(program: Program, name: str) -> QuantParams | None:
    """The quantization behind graph output ``name``: its own, or that of the tensor its
    final dequantization step reads; None for a float output computed in float."""
    for tensor in program.outputs:
        if tensor.name == name and tensor.quant is not None:
            return tensor.quant
    for step in program.steps:
        if step.kind == "host" and name in step.outputs and step.op == "DequantizeLinear":
            return step.in_params[0]
    return None


def agreement(program: Program, ours: dict[str, np.ndarray],
              theirs: dict[str, np.ndarray]) -> dict[str, dict]:
    """Per graph output: ``identical``, ``off_by_one``, ``worse`` (counts of values, in
    quantization steps), ``values``, ``max_steps``, ``top1_same`` and ``images``."""
    report = {}
    for tensor in program.outputs:
        a, b = np.asarray(ours[tensor.name]), np.asarray(theirs[tensor.name])
        if a.shape != b.shape or a.dtype != b.dtype:
            raise ValueError(f"output {tensor.name!r}: ours {a.dtype}{list(a.shape)}, "
                             f"onnxruntime's {b.dtype}{list(b.shape)}")
        params = output_quantization(program, tensor.name)
        if params is not None and tensor.quant is None:      # dequantized: back to steps
            steps = np.abs(np.rint(a.astype(np.float64) / params.scale)
                           - np.rint(b.astype(np.float64) / params.scale))
        elif params is not None:
            steps = np.abs(a.astype(np.int64) - b.astype(np.int64))
        else:
            steps = None
        flat_a, flat_b = a.reshape(len(a), -1), b.reshape(len(b), -1)
        entry = {"values": int(a.size), "images": int(len(a)),
                 "top1_same": int(np.sum(flat_a.argmax(axis=1) == flat_b.argmax(axis=1)))}
        if steps is None:
            entry["max_abs_difference"] = float(np.max(np.abs(a - b))) if a.size else 0.0
        else:
            entry.update(identical=int(np.sum(steps == 0)), off_by_one=int(np.sum(steps == 1)),
                         worse=int(np.sum(steps > 1)), max_steps=int(steps.max(initial=0)))
        report[tensor.name] = entry
    return report
