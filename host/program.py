"""A network program: lowered hardware layers and host steps, in one file.

A :class:`Program` is made for one build (its :class:`AccelConfig`); it
lists :class:`HardwareStep` s - a layer, the passes that run it on the build
and each pass lowered to register writes and weight bytes - and
:class:`HostStep` s, NumPy operators the hardware does not have
(:mod:`convaccel.host.host_ops`). Tensors are named; each step reads and
writes tensors by name, quantized ones with their :class:`QuantParams`.

:meth:`Program.save` writes one ``.npz`` file (a JSON manifest plus the
arrays, no pickles); :meth:`Program.load` reads it back.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..hw.config import AccelConfig
from .host_ops import QuantParams
from .layer import ConvLayer
from .lowering import LoweredLayer, lower
from .tiling import Pass, pass_layer, plan_passes

__all__ = ["FORMAT", "HardwareStep", "HostStep", "Program", "TensorInfo", "hardware_step"]

#: Program file format name and version (the manifest's "format").
FORMAT = "convaccel-program/1"

#: Fields of ConvLayer stored as arrays (the rest go into the manifest).
_LAYER_ARRAYS = ("w", "bias", "multiplier", "shift")


@dataclass
class TensorInfo:
    """A graph input or output: ONNX name, shape (batch first) and NumPy dtype name."""

    name: str
    shape: list
    dtype: str
    quant: QuantParams | None = None


@dataclass
class HardwareStep:
    """A layer on the accelerator, in one or more passes.

    Attributes
    ----------
    name : str
    input, output : str
        Tensor names; the input is reshaped to the layer's ``(C, H, W)``
        and the output ``(M, P', Q')`` to ``out_shape`` (ONNX shape, batch 1).
    layer : ConvLayer
        The whole layer (no input: ``input_shape`` set).
    passes : list of Pass
    lowered : list of LoweredLayer
        One per pass.
    out_shape : list
    source : list of str
        The ONNX nodes it came from.
    notes : list of str
        What the compiler wants the user to know (the requantization scale
        error, fused operators).
    """

    name: str
    input: str
    output: str
    layer: ConvLayer
    passes: list[Pass]
    lowered: list[LoweredLayer]
    out_shape: list
    source: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    kind = "hardware"

    @property
    def inputs(self) -> list[str]:
        return [self.input]

    @property
    def outputs(self) -> list[str]:
        return [self.output]


@dataclass
class HostStep:
    """An ONNX operator run on the host in NumPy (see :mod:`convaccel.host.host_ops`)."""

    name: str
    op: str
    inputs: list
    outputs: list
    in_params: list          # QuantParams or None per input
    out_params: QuantParams | None
    attrs: dict = field(default_factory=dict)
    source: list = field(default_factory=list)
    reason: str = ""

    kind = "host"


def hardware_step(name: str, layer: ConvLayer, config: AccelConfig, *, input: str,
                  output: str, out_shape, source=(), notes=()) -> HardwareStep:
    """Plan the passes of ``layer`` on ``config`` and lower each one."""
    passes = plan_passes(layer, config)
    lowered = [lower(pass_layer(layer, step), config) for step in passes]
    return HardwareStep(name, input, output, layer, passes, lowered, list(out_shape),
                        list(source), list(notes))


@dataclass
class Program:
    """A network for one build: inputs, outputs, constants and steps in order.

    ``constants`` maps a tensor name to ``(values, QuantParams or None)``:
    operands of host steps that are part of the model (an ``Add``'s bias).
    """

    config: AccelConfig
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    steps: list
    name: str = "network"
    notes: list = field(default_factory=list)
    constants: dict = field(default_factory=dict)

    def hardware_steps(self) -> list[HardwareStep]:
        return [step for step in self.steps if step.kind == "hardware"]

    def host_steps(self) -> list[HostStep]:
        return [step for step in self.steps if step.kind == "host"]

    # -- file ---------------------------------------------------------------------

    def save(self, path) -> Path:
        """Write the program to ``path`` (one ``.npz``: manifest + arrays, no pickles)."""
        arrays: dict[str, np.ndarray] = {}
        constants = {}
        for number, (name, (values, params)) in enumerate(self.constants.items()):
            arrays[f"constant{number}"] = np.asarray(values)
            constants[name] = {"array": f"constant{number}", "params": _params_dict(params)}
        steps = []
        for index, step in enumerate(self.steps):
            if step.kind == "host":
                steps.append({"kind": "host", "name": step.name, "op": step.op,
                              "inputs": step.inputs, "outputs": step.outputs,
                              "in_params": [_params_dict(p) for p in step.in_params],
                              "out_params": _params_dict(step.out_params),
                              "attrs": _plain(step.attrs), "source": step.source,
                              "reason": step.reason})
                continue
            layer = step.layer
            g = layer.geometry()
            for key in _LAYER_ARRAYS:
                value = getattr(layer, key)
                if value is not None:
                    arrays[f"{index}/{key}"] = np.asarray(value, dtype=np.int64)
            for number, lowered in enumerate(step.lowered):
                arrays[f"{index}/pass{number}/weights"] = np.frombuffer(lowered.weights,
                                                                         dtype=np.uint8)
            steps.append({
                "kind": "hardware", "name": step.name, "input": step.input,
                "output": step.output, "out_shape": step.out_shape, "source": step.source,
                "notes": step.notes,
                "layer": {"name": layer.name, "input_shape": list(layer.in_shape),
                          "stride": [g["stride_h"], g["stride_w"]],
                          "padding": [g["pad_top"], g["pad_bottom"], g["pad_left"],
                                      g["pad_right"]],
                          "dilation": [g["dilation_h"], g["dilation_w"]], "groups": layer.groups,
                          "activation": layer.activation, "clamp_high": layer.clamp_high,
                          "pool": _plain(layer.pool),
                          "input_zero_point": int(layer.input_zero_point),
                          "output_zero_point": int(layer.output_zero_point),
                          "has_bias": layer.bias is not None},
                "passes": [step_pass.to_dict() for step_pass in step.passes],
                "lowered": [{"name": lowered.name, "writes": [list(w) for w in lowered.writes],
                             "in_shape": list(lowered.in_shape),
                             "out_shape": list(lowered.out_shape),
                             "pixel_bytes": lowered.pixel_bytes,
                             "out_bytes": lowered.out_bytes, "real_macs": lowered.real_macs}
                            for lowered in step.lowered],
            })
        manifest = {"format": FORMAT, "name": self.name, "config": self.config.to_dict(),
                    "inputs": [_tensor_dict(t) for t in self.inputs],
                    "outputs": [_tensor_dict(t) for t in self.outputs],
                    "steps": steps, "notes": self.notes, "constants": constants}
        arrays["manifest"] = np.frombuffer(json.dumps(manifest).encode(), dtype=np.uint8)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        path = Path(path)
        path.write_bytes(buffer.getvalue())
        return path

    @classmethod
    def load(cls, path) -> Program:
        """Read a program written by :meth:`save`.

        Raises
        ------
        ValueError
            If the file is not a convaccel program (or of another format version).
        """
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {key: data[key] for key in data.files}
            manifest = json.loads(arrays.pop("manifest").tobytes().decode())
        except (OSError, ValueError, KeyError) as error:
            if isinstance(error, OSError) and error.strerror:
                raise
            raise ValueError(f"{path} is not a convaccel program ({error})") from None
        if manifest.get("format") != FORMAT:
            raise ValueError(f"{path}: program format {manifest.get('format')!r}, this "
                             f"convaccel reads {FORMAT!r}")
        steps = []
        for index, image in enumerate(manifest["steps"]):
            if image["kind"] == "host":
                steps.append(HostStep(image["name"], image["op"], image["inputs"],
                                      image["outputs"],
                                      [_params(p) for p in image["in_params"]],
                                      _params(image["out_params"]), image["attrs"],
                                      image["source"], image["reason"]))
                continue
            spec = dict(image["layer"])
            has_bias = spec.pop("has_bias")
            layer = ConvLayer(
                x=None, w=arrays[f"{index}/w"],
                bias=arrays[f"{index}/bias"] if has_bias else None,
                multiplier=arrays[f"{index}/multiplier"], shift=arrays[f"{index}/shift"],
                **{**spec, "input_shape": tuple(spec["input_shape"]),
                   "stride": tuple(spec["stride"]), "padding": tuple(spec["padding"]),
                   "dilation": tuple(spec["dilation"]),
                   "pool": tuple(spec["pool"]) if spec["pool"] else None})
            lowered = [LoweredLayer(
                name=item["name"], writes=[tuple(w) for w in item["writes"]],
                weights=arrays[f"{index}/pass{number}/weights"].tobytes(),
                in_shape=tuple(item["in_shape"]), out_shape=tuple(item["out_shape"]),
                pixel_bytes=item["pixel_bytes"], out_bytes=item["out_bytes"],
                real_macs=item["real_macs"]) for number, item in enumerate(image["lowered"])]
            steps.append(HardwareStep(image["name"], image["input"], image["output"], layer,
                                      [Pass.from_dict(p) for p in image["passes"]], lowered,
                                      image["out_shape"], image["source"], image["notes"]))
        constants = {name: (arrays[item["array"]], _params(item["params"]))
                     for name, item in manifest["constants"].items()}
        return cls(AccelConfig.from_dict(manifest["config"]),
                   [_tensor(t) for t in manifest["inputs"]],
                   [_tensor(t) for t in manifest["outputs"]], steps, manifest["name"],
                   manifest["notes"], constants)


def _plain(value):
    """Tuples to lists and NumPy scalars to Python numbers, for JSON."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (tuple, list)):
        return [_plain(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def _params_dict(params: QuantParams | None):
    return None if params is None else params.to_dict()


def _params(image) -> QuantParams | None:
    return None if image is None else QuantParams(**image)


def _tensor_dict(tensor: TensorInfo) -> dict:
    return {"name": tensor.name, "shape": _plain(tensor.shape), "dtype": tensor.dtype,
            "quant": _params_dict(tensor.quant)}


def _tensor(image: dict) -> TensorInfo:
    return TensorInfo(image["name"], image["shape"], image["dtype"], _params(image["quant"]))
