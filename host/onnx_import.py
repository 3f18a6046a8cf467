"""Quantized ONNX models as network programs.

:func:`compile_onnx` reads an int8 model from onnxruntime's
``quantize_static`` - QDQ format (``QuantizeLinear``/``DequantizeLinear``
around float operators) or QOperator format (``QLinearConv``,
``QLinearMatMul``, ``QGemm``, ...), per-tensor or per-channel weights,
symmetric or asymmetric, int8 or uint8 activations - and makes a
:class:`~convaccel.host.program.Program` for one build:

* on the accelerator: ``Conv`` (with a following ``Relu``, or ``Clip`` from
  0, as its activation, and a following ``MaxPool``/``AveragePool`` as its
  pooling when the pooling unit can do it), ``Gemm``/``MatMul`` as a fully
  connected layer (a 1x1 convolution over the flattened input), and
  ``GlobalAveragePool`` (a depthwise convolution with a kernel of ones over
  the whole map); any of them larger than the build runs in several passes
  (:mod:`convaccel.host.tiling`);
* on the host, in NumPy: everything else the model needs - quantizing the
  input and dequantizing the output, ``Add``, ``Softmax``, ``Flatten`` /
  ``Reshape``, pooling the pooling unit cannot do, ... (see
  :data:`convaccel.host.host_ops.FLOAT_OPS`); each is named in the
  compile report with the reason.

Anything else is refused with a :class:`ModelError` whose one-line message
names the node and the reason: nothing is computed wrongly in silence.

uint8 activations become int8 ones exactly (values and zero points minus
128, docs/arithmetic.md "Zero points"). Scales become ``(M0, sh)`` pairs
(:mod:`convaccel.host.scales`); each hardware step's notes give the largest
relative error.

Needs the ``onnx`` package (``pip install 'convaccel[onnx]'``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..hw.config import AccelConfig
from .host_ops import FLOAT_OPS, QuantParams, quantize
from .layer import ConvLayer
from .program import HostStep, Program, TensorInfo, hardware_step
from .scales import ScaleError, multiplier_shift, onnx_scale
from .tiling import TilingError

__all__ = ["ModelError", "compile_onnx"]


class ModelError(ValueError):
    """A model the importer cannot run faithfully; the message names the node and why."""


# -- a small intermediate form: every operator on quantized (or float) tensors ------------


@dataclass
class Ref:
    """A tensor operand: its name and, for a quantized tensor, its quantization."""

    name: str
    params: QuantParams | None = None


@dataclass
class Const:
    """A constant operand: integer values with their quantization, or float values."""

    values: np.ndarray
    params: QuantParams | None = None
    scales: np.ndarray | None = None      # per-channel scales (weights)
    zero_points: np.ndarray | None = None
    axis: int = 0


@dataclass
class Op:
    """One operator of the model in quantized form."""

    op: str
    name: str
    inputs: list
    outputs: list
    attrs: dict = field(default_factory=dict)
    source: list = field(default_factory=list)


#: Operators that keep the quantization of their input (they only move or pick values).
_TRANSPARENT = {"MaxPool", "Flatten", "Reshape", "Identity"}
#: QOperator-format operators (com.microsoft and ONNX): float operator and the input
#: positions of (tensor, scale, zero point) triples, then the output (scale, zero point).
_QLINEAR = {
    "QLinearAdd": ("Add", [(0, 1, 2), (3, 4, 5)], (6, 7)),
    "QLinearMul": ("Mul", [(0, 1, 2), (3, 4, 5)], (6, 7)),
    "QLinearAveragePool": ("AveragePool", [(0, 1, 2)], (3, 4)),
    "QLinearGlobalAveragePool": ("GlobalAveragePool", [(0, 1, 2)], (3, 4)),
    "QLinearSoftmax": ("Softmax", [(0, 1, 2)], (3, 4)),
    "QLinearSigmoid": ("Sigmoid", [(0, 1, 2)], (3, 4)),
}


def _onnx():
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise ModelError("reading ONNX models needs the onnx package: "
                         "pip install 'convaccel[onnx]'") from None
    return onnx, numpy_helper


class _Graph:
    """The model's graph with constants, shapes and consumers at hand.

    Nodes without a name are named after their first output, so every
    message can name the node.
    """

    def __init__(self, model):
        onnx, numpy_helper = _onnx()
        self.onnx = onnx
        graph = model.graph
        for node in graph.node:
            if not node.name:
                node.name = node.output[0] if node.output else node.op_type
        self.opset = {o.domain or "ai.onnx": o.version for o in model.opset_import}
        self.inits = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
        self.nodes = []
        for node in graph.node:
            if node.op_type == "Constant" and not node.domain:
                self.inits[node.output[0]] = numpy_helper.to_array(
                    onnx.helper.get_attribute_value(node.attribute[0]))
            else:
                self.nodes.append(node)
        initializer_names = set(self.inits)
        self.inputs = [i for i in graph.input if i.name not in initializer_names]
        self.outputs = list(graph.output)
        self.output_names = {o.name for o in graph.output}
        self.consumers = defaultdict(list)
        for node in self.nodes:
            for name in node.input:
                self.consumers[name].append(node)
        self.shapes = self._infer_shapes(model)

    def _infer_shapes(self, model) -> dict[str, tuple]:
        """Every tensor's shape with a batch of one (symbolic batch sizes fixed to 1)."""
        onnx = self.onnx
        fixed = onnx.ModelProto()
        fixed.CopyFrom(model)
        for value in list(fixed.graph.input) + list(fixed.graph.output):
            dims = value.type.tensor_type.shape.dim
            if dims and not dims[0].HasField("dim_value"):
                dims[0].Clear()
                dims[0].dim_value = 1
        try:
            inferred = onnx.shape_inference.infer_shapes(fixed, strict_mode=False)
        except Exception as error:     # onnx raises its own exception types
            raise ModelError(f"shape inference failed: {error}".splitlines()[0]) from None
        shapes = {}
        for value in (list(inferred.graph.input) + list(inferred.graph.value_info)
                      + list(inferred.graph.output)):
            dims = value.type.tensor_type.shape.dim
            if all(d.HasField("dim_value") for d in dims):
                shapes[value.name] = tuple(int(d.dim_value) for d in dims)
        for name, value in self.inits.items():
            shapes[name] = tuple(value.shape)
        return shapes

    def attrs(self, node) -> dict:
        return {a.name: self.onnx.helper.get_attribute_value(a) for a in node.attribute}

    def shape(self, name: str, op) -> tuple:
        if name not in self.shapes:
            raise ModelError(f"node {op.name!r} ({op.op}): the shape of tensor {name!r} "
                             "is unknown (give the model static shapes)")
        return self.shapes[name]

    def complete_shapes(self, ops: list) -> None:
        """Shapes onnx's inference leaves out (com.microsoft operators), from the inputs'."""
        for op in ops:
            out = op.outputs[0].name
            if out in self.shapes:
                continue
            shapes = [self.shapes.get(x.name) if isinstance(x, Ref) else tuple(x.values.shape)
                      for x in op.inputs]
            if shapes and shapes[0] is not None:
                shape = _output_shape(op, shapes)
                if shape is not None:
                    self.shapes[out] = shape


def _output_shape(op: Op, shapes: list) -> tuple | None:
    """Output shape of the operators the QOperator format adds, or None if unknown."""
    x = shapes[0]
    attrs = op.attrs
    if op.op == "GlobalAveragePool":
        return x[:2] + (1,) * (len(x) - 2)
    if op.op in ("AveragePool", "MaxPool", "Conv"):
        kernel = (attrs["kernel_shape"] if op.op != "Conv" else shapes[1][2:])
        strides = attrs.get("strides", [1] * len(kernel))
        dilations = attrs.get("dilations", [1] * len(kernel))
        pads = attrs.get("pads", [0] * 2 * len(kernel))
        sizes = []
        for axis, (size, k, u, d) in enumerate(zip(x[2:], kernel, strides, dilations)):
            extent = size + pads[axis] + pads[axis + len(kernel)] - d * (k - 1) - 1
            sizes.append((-(-extent // u) if attrs.get("ceil_mode", 0) else extent // u) + 1)
        return (x[0], shapes[1][0] if op.op == "Conv" else x[1]) + tuple(sizes)
    if op.op == "Gemm" and shapes[1] is not None:
        return (x[0], shapes[1][0] if attrs.get("transB", 0) else shapes[1][1])
    if op.op == "MatMul" and shapes[1] is not None:
        return x[:-1] + shapes[1][-1:]
    if op.op == "Flatten":
        axis = attrs.get("axis", 1) % len(x)
        return (int(np.prod(x[:axis])), int(np.prod(x[axis:])))
    if op.op == "Reshape" and isinstance(op.inputs[1], Const):
        target = [x[i] if v == 0 else int(v) for i, v in enumerate(op.inputs[1].values)]
        if -1 in target:
            known = int(np.prod([v for v in target if v != -1]))
            target[target.index(-1)] = int(np.prod(x)) // known
        return tuple(target)
    if op.op in ("Add", "Mul") and all(s is not None for s in shapes):
        return tuple(np.broadcast_shapes(*shapes))
    if op.op in ("Softmax", "Sigmoid", "Relu", "Clip", "Identity"):
        return x
    return None


def _params(graph: _Graph, node, scale_name: str, zero_name: str | None) -> QuantParams:
    """Per-tensor quantization from initializers (int8 domain; no zero point: uint8, 0)."""
    scale = graph.inits.get(scale_name)
    if scale is None or scale.size != 1:
        raise ModelError(f"node {node.name!r} ({node.op_type}): scale {scale_name!r} must be a "
                         "constant scalar (per-tensor activation quantization)")
    zero = graph.inits.get(zero_name) if zero_name else None
    dtype = str(zero.dtype) if zero is not None else "uint8"
    if dtype not in ("int8", "uint8"):
        raise ModelError(f"node {node.name!r} ({node.op_type}): {dtype} activations are not "
                         "supported (int8 and uint8 are)")
    zero_value = int(zero.reshape(-1)[0]) if zero is not None else 0
    offset = 128 if dtype == "uint8" else 0
    return QuantParams(float(np.float32(scale.reshape(-1)[0])), zero_value - offset, dtype)


def _weights(graph: _Graph, node, values: str, scale: str, zero: str | None, axis: int) -> Const:
    """A quantized constant (weights or bias) with per-tensor or per-channel scales."""
    if values not in graph.inits or scale not in graph.inits:
        raise ModelError(f"node {node.name!r} ({node.op_type}): weights {values!r} must be "
                         "constant")
    q = graph.inits[values].astype(np.int64)
    zeros = (graph.inits[zero].astype(np.int64) if zero and zero in graph.inits
             else np.zeros(1, dtype=np.int64))
    return Const(q, scales=np.atleast_1d(graph.inits[scale]).astype(np.float32),
                 zero_points=np.atleast_1d(zeros), axis=axis)


# -- QDQ and QOperator graphs to operators on quantized tensors --------------------------


def _normalize(graph: _Graph) -> list[Op]:
    """The model as :class:`Op` s: QDQ pairs folded into their operators' operands."""
    dequantized = {}        # DequantizeLinear output -> (input name, params or Const)
    absorbed = set()        # QuantizeLinear nodes folded into the operator before them
    alias = {}              # extra QuantizeLinear outputs of one tensor -> the first
    quant = {}              # quantized tensor -> QuantParams
    ops = []

    def operand(name, node):
        name = alias.get(name, name)
        if name in dequantized:
            source, params = dequantized[name]
            return params if isinstance(params, Const) else Ref(source, params)
        if name in graph.inits:
            return Const(graph.inits[name])
        return Ref(name, quant.get(name))

    def output_ref(node, name):
        """The operator's output: quantized when only QuantizeLinear nodes read it."""
        readers = graph.consumers[name]
        if (readers and name not in graph.output_names
                and all(r.op_type == "QuantizeLinear" and not r.domain for r in readers)):
            targets = [(r, _params(graph, r, r.input[1], r.input[2] if len(r.input) > 2 else
                                   None)) for r in readers]
            first = targets[0]
            for reader, params in targets:
                if params != first[1]:
                    raise ModelError(f"node {node.name!r} ({node.op_type}): its output is "
                                     "quantized twice with different parameters")
                absorbed.add(id(reader))
                alias[reader.output[0]] = first[0].output[0]
            quant[first[0].output[0]] = first[1]
            return Ref(first[0].output[0], first[1])
        if node.op_type in _TRANSPARENT and not node.domain:
            source = operand(node.input[0], node)
            if isinstance(source, Ref) and source.params is not None:
                quant[name] = source.params     # same values, same quantization
        return Ref(name, quant.get(name))

    for node in graph.nodes:
        kind = node.op_type
        if kind == "DequantizeLinear":
            source = node.input[0]
            attrs = graph.attrs(node)
            if source in graph.inits:          # weights or bias
                dequantized[node.output[0]] = (source, _weights(
                    graph, node, source, node.input[1],
                    node.input[2] if len(node.input) > 2 else None, attrs.get("axis", 1)))
            else:
                params = _params(graph, node, node.input[1],
                                 node.input[2] if len(node.input) > 2 else None)
                source = alias.get(source, source)
                dequantized[node.output[0]] = (source, params)
                if node.output[0] in graph.output_names:
                    ops.append(Op("DequantizeLinear", node.name, [Ref(source, params)],
                                  [Ref(node.output[0])], source=[node.name]))
            continue
        if kind == "QuantizeLinear":
            if id(node) in absorbed:
                continue
            params = _params(graph, node, node.input[1],
                             node.input[2] if len(node.input) > 2 else None)
            quant[node.output[0]] = params
            ops.append(Op("QuantizeLinear", node.name, [operand(node.input[0], node)],
                          [Ref(node.output[0], params)], source=[node.name]))
            continue
        if node.domain not in ("", "ai.onnx", "com.microsoft"):
            raise ModelError(f"node {node.name!r} ({node.op_type}): operator domain "
                             f"{node.domain!r} is not supported")
        if kind.startswith("Q"):        # QLinearConv, QGemm, QLinearAdd, ...
            ops.append(_qoperator(graph, node, quant))
        else:
            ops.append(Op(kind, node.name, [operand(i, node) for i in node.input if i],
                          [output_ref(node, node.output[0])], graph.attrs(node), [node.name]))
        if len(node.output) > 1 and any(node.output[1:]):
            raise ModelError(f"node {node.name!r} ({kind}): only single-output operators are "
                             "supported")
    return ops


def _qoperator(graph: _Graph, node, quant: dict) -> Op:
    """A QOperator-format node (QLinearConv, QLinearMatMul, QGemm, QLinear*) as an Op."""
    kind, inputs = node.op_type, list(node.input)
    attrs = graph.attrs(node)

    def ref(i, s, z):
        params = _params(graph, node, inputs[s], inputs[z] if len(inputs) > z else None)
        return Ref(inputs[i], params)

    def out(s, z):
        params = _params(graph, node, inputs[s], inputs[z] if len(inputs) > z else None)
        quant[node.output[0]] = params
        return [Ref(node.output[0], params)]

    def bias(index, x, w):
        if len(inputs) <= index or not inputs[index]:
            return []
        return [Const(graph.inits[inputs[index]].astype(np.int64),
                      scales=onnx_scale(x.params.scale, w.scales, 1.0))]

    if kind == "QLinearConv":
        x = ref(0, 1, 2)
        w = _weights(graph, node, inputs[3], inputs[4], inputs[5], 0)
        return Op("Conv", node.name, [x, w] + bias(8, x, w), out(6, 7), attrs, [node.name])
    if kind == "QLinearMatMul":
        x = ref(0, 1, 2)
        w = _weights(graph, node, inputs[3], inputs[4], inputs[5], 1)
        return Op("MatMul", node.name, [x, w], out(6, 7), attrs, [node.name])
    if kind == "QGemm":
        x = ref(0, 1, 2)
        w = _weights(graph, node, inputs[3], inputs[4], inputs[5],
                     0 if attrs.get("transB", 0) else 1)
        if len(inputs) < 9:
            raise ModelError(f"node {node.name!r} (QGemm): a float output is not supported")
        return Op("Gemm", node.name, [x, w] + bias(6, x, w), out(7, 8), attrs, [node.name])
    if kind in _QLINEAR:
        op, triples, (s, z) = _QLINEAR[kind]
        attrs.pop("channels_last", None)
        if attrs.pop("opset", None) is not None and op == "Softmax":
            attrs["opset"] = graph.opset.get("ai.onnx", 13)
        return Op(op, node.name, [ref(*t) for t in triples], out(s, z), attrs, [node.name])
    raise ModelError(f"node {node.name!r} ({kind}): quantized operator not supported")


# -- operators to program steps -----------------------------------------------------------


def _fail(op: Op, reason: str) -> ModelError:
    return ModelError(f"node {op.name!r} ({op.op}): {reason}")


def _conv_padding(op: Op, attrs: dict, shape_in, kernel, strides, dilations):
    """ONNX ``pads``/``auto_pad`` as ``(top, bottom, left, right)``."""
    auto = attrs.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto in ("NOTSET", ""):
        pads = list(attrs.get("pads", [0, 0, 0, 0]))
        return (pads[0], pads[2], pads[1], pads[3])
    if auto == "VALID":
        return (0, 0, 0, 0)
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        pads = []
        for size, k, u, d in zip(shape_in, kernel, strides, dilations):
            total = max(0, (-(-size // u) - 1) * u + d * (k - 1) + 1 - size)
            small, large = total // 2, total - total // 2
            pads.append((small, large) if auto == "SAME_UPPER" else (large, small))
        return (pads[0][0], pads[0][1], pads[1][0], pads[1][1])
    raise _fail(op, f"auto_pad {auto!r} is not supported")


def _int_weights(op: Op, w: Const, config: AccelConfig) -> np.ndarray:
    """Weight values minus their zero points, checked against weight_width."""
    if not isinstance(w, Const) or w.scales is None:
        raise _fail(op, "weights must be quantized constants (a DequantizeLinear of an "
                        "initializer, or QLinear operator inputs)")
    values = w.values.astype(np.int64)
    zeros = w.zero_points
    if zeros.size > 1:
        shape = [1] * values.ndim
        shape[w.axis] = -1
        zeros = zeros.reshape(shape)
    values = values - zeros
    if values.size and (values.min() < config.weight_min or values.max() > config.weight_max):
        raise _fail(op, f"weights minus zero point span {int(values.min())}..{int(values.max())}"
                        f", outside weight_width {config.weight_width} bits")
    return values


class _Builder:
    """Turns the :class:`Op` list into program steps, fusing what one layer can do."""

    def __init__(self, graph: _Graph, ops: list[Op], config: AccelConfig):
        self.graph, self.ops, self.config = graph, ops, config
        self.readers = defaultdict(list)
        for op in ops:
            for operand in op.inputs:
                if isinstance(operand, Ref):
                    self.readers[operand.name].append(op)
        self.consumed: set[int] = set()
        self.constants: dict[str, tuple[np.ndarray, QuantParams | None]] = {}

    def only_reader(self, ref: Ref) -> Op | None:
        """The one operator that reads ``ref``, if exactly one does and it is no graph output."""
        readers = self.readers[ref.name]
        if len(readers) == 1 and ref.name not in self.graph.output_names:
            return readers[0]
        return None

    def build(self) -> list:
        steps = []
        for op in self.ops:
            if id(op) in self.consumed:
                continue
            if op.op == "Conv":
                steps.append(self.conv(op))
            elif op.op in ("Gemm", "MatMul"):
                steps.append(self.fully_connected(op))
            elif op.op == "GlobalAveragePool" and self.global_pool_fits(op):
                steps.append(self.global_pool(op))
            else:
                steps.append(self.host(op))
        return steps

    # -- hardware ---------------------------------------------------------------------

    def _quantized_io(self, op: Op) -> tuple[Ref, Ref]:
        x, out = op.inputs[0], op.outputs[0]
        if not isinstance(x, Ref) or x.params is None:
            raise _fail(op, "its input is not quantized (float layers are not supported: "
                            "quantize the model with onnxruntime's quantize_static)")
        if out.params is None:
            raise _fail(op, "its output is not quantized (no QuantizeLinear after it)")
        if self.config.act_width < 8:
            raise _fail(op, f"8-bit activations need act_width >= 8, the build has "
                            f"{self.config.act_width}")
        return x, out

    def _requant(self, op: Op, x: Ref, w: Const, out: Ref, channels: int, extra=1.0):
        scales = np.broadcast_to(onnx_scale(x.params.scale, w.scales, out.params.scale),
                                 (channels,)) / np.float32(extra)
        try:
            multiplier, shift, error = multiplier_shift(scales, self.config)
        except ScaleError as problem:
            raise _fail(op, str(problem)) from None
        return multiplier, shift, (f"requantization x_scale*w_scale/y_scale as M0/2**sh: "
                                   f"largest relative error {error:.2e} (mult_width "
                                   f"{self.config.mult_width})")

    def _bias(self, op: Op, operands: list, x: Ref, w: Const, channels: int):
        if len(operands) < 3 or operands[2] is None:
            return None
        b = operands[2]
        expected = np.broadcast_to(onnx_scale(x.params.scale, w.scales, 1.0), (channels,))
        if not isinstance(b, Const):
            raise _fail(op, "the bias must be a constant")
        if b.scales is None:        # a float bias: quantize it as onnxruntime would
            return np.rint(b.values.astype(np.float64) / expected).astype(np.int64)
        if not np.allclose(np.broadcast_to(b.scales, (channels,)), expected, rtol=1e-5):
            raise _fail(op, "the bias scale is not input scale x weight scale")
        zeros = 0 if b.zero_points is None else np.broadcast_to(b.zero_points, (channels,))
        return b.values.astype(np.int64).reshape(channels) - zeros

    def _fuse_activation_and_pool(self, out: Ref):
        """What a layer can absorb after it: ``(activation, clamp_high, pool, last, ops)``."""
        activation, high, pool, fused = "none", None, None, []
        nxt = self.only_reader(out)
        if nxt is not None and nxt.op in ("Relu", "Clip") and nxt.outputs[0].params == out.params:
            zero = out.params.zero_point
            if nxt.op == "Relu":
                activation = "relu"
            else:
                low, top = self._clip_bounds(nxt)
                if low is not None and int(quantize(np.float32(low), out.params)) == zero:
                    activation = "clamp"
                    high = None if top is None else int(quantize(np.float32(top), out.params))
                    if high is None:
                        activation = "relu"
            if activation != "none":
                fused.append(nxt)
                out = nxt.outputs[0]
                nxt = self.only_reader(out)
        if nxt is not None and nxt.op in ("MaxPool", "AveragePool") \
                and nxt.outputs[0].params == out.params:
            attrs = nxt.attrs
            kernel = list(attrs.get("kernel_shape", []))
            strides = list(attrs.get("strides", [1, 1]))
            cfg = self.config
            if (len(kernel) == 2 and kernel[0] == kernel[1] and strides[0] == strides[1]
                    and not any(attrs.get("pads", [0] * 4)) and not attrs.get("ceil_mode", 0)
                    and list(attrs.get("dilations", [1, 1])) == [1, 1]
                    and attrs.get("auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET", b"VALID",
                                                              "VALID")
                    and kernel[0] <= cfg.max_pool_kernel and strides[0] <= cfg.max_pool_stride):
                pool = ("max" if nxt.op == "MaxPool" else "avg", int(kernel[0]), int(strides[0]))
                fused.append(nxt)
                out = nxt.outputs[0]
        return activation, high, pool, out, fused

    def _clip_bounds(self, op: Op):
        if "min" in op.attrs or "max" in op.attrs:      # opset < 11
            return op.attrs.get("min"), op.attrs.get("max")
        bounds = []
        for operand in op.inputs[1:3]:
            if isinstance(operand, Const):
                bounds.append(float(operand.values.reshape(-1)[0]))
            elif operand is None:
                bounds.append(None)
            else:
                return None, None
        bounds += [None] * (2 - len(bounds))
        return bounds[0], bounds[1]

    def _layer_step(self, op: Op, x: Ref, out: Ref, weights: np.ndarray, bias, multiplier,
                    shift, notes, *, in_shape, stride=(1, 1), padding=(0, 0, 0, 0),
                    dilation=(1, 1), groups=1, fuse=True):
        activation, high, pool, last, fused = (self._fuse_activation_and_pool(out) if fuse
                                               else ("none", None, None, out, []))
        for extra in fused:
            self.consumed.add(id(extra))
        layer = ConvLayer(
            x=None, input_shape=tuple(in_shape), w=weights, bias=bias, multiplier=multiplier,
            shift=shift, stride=tuple(stride), padding=tuple(padding), dilation=tuple(dilation),
            groups=groups, activation=activation, clamp_high=high, pool=pool, name=op.name,
            input_zero_point=x.params.zero_point, output_zero_point=out.params.zero_point)
        names = [op.op] + [extra.op for extra in fused]
        try:
            return hardware_step(op.name, layer, self.config, input=x.name, output=last.name,
                                 out_shape=self.graph.shape(last.name, op),
                                 source=op.source + [s for extra in fused for s in extra.source],
                                 notes=[" + ".join(names)] + notes)
        except (TilingError, ValueError) as problem:
            message = str(problem)
            prefix = f"layer {op.name!r}"
            if message.startswith(prefix):
                message = message[len(prefix):].lstrip(": ")
            raise _fail(op, message) from None

    def conv(self, op: Op):
        x, out = self._quantized_io(op)
        w_const = op.inputs[1]
        weights = _int_weights(op, w_const, self.config)
        if weights.ndim != 4:
            raise _fail(op, f"only 2-D convolutions are supported, weights have shape "
                            f"{weights.shape}")
        shape = self.graph.shape(x.name, op)
        if len(shape) != 4 or shape[0] != 1:
            raise _fail(op, f"input shape {shape} is not (1, C, H, W)")
        attrs = op.attrs
        kernel = tuple(weights.shape[2:])
        strides = tuple(attrs.get("strides", [1, 1]))
        dilations = tuple(attrs.get("dilations", [1, 1]))
        padding = _conv_padding(op, attrs, shape[2:], kernel, strides, dilations)
        channels = weights.shape[0]
        multiplier, shift, note = self._requant(op, x, w_const, out, channels)
        return self._layer_step(op, x, out, weights, self._bias(op, op.inputs, x, w_const,
                                                                channels),
                                multiplier, shift, [note], in_shape=shape[1:], stride=strides,
                                padding=padding, dilation=dilations,
                                groups=int(attrs.get("group", 1)))

    def fully_connected(self, op: Op):
        x, out = self._quantized_io(op)
        w_const = op.inputs[1]
        attrs = op.attrs
        if op.op == "Gemm":
            if attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0 or \
                    attrs.get("beta", 1.0) != 1.0:
                raise _fail(op, "only Gemm with transA=0, alpha=1 and beta=1 is supported")
            transposed = bool(attrs.get("transB", 0))
        else:
            transposed = False
        weights = _int_weights(op, w_const, self.config)
        if weights.ndim != 2:
            raise _fail(op, f"weights of shape {weights.shape} are not a matrix")
        weights = weights if transposed else weights.T        # (N, K)
        channel_axis = 0 if transposed else 1
        if w_const.scales.size > 1 and w_const.axis != channel_axis:
            raise _fail(op, "per-channel weight scales must run along the output features")
        shape = self.graph.shape(x.name, op)
        if len(shape) != 2 or shape[0] != 1:
            raise _fail(op, f"input shape {shape} is not (1, K)")
        features = weights.shape[0]
        multiplier, shift, note = self._requant(op, x, w_const, out, features)
        bias = self._bias(op, op.inputs, x, w_const, features)
        return self._layer_step(op, x, out, weights.reshape(features, -1, 1, 1), bias,
                                multiplier, shift,
                                [note, "fully connected: a 1x1 convolution over the "
                                       f"{shape[1]} flattened inputs"],
                                in_shape=(shape[1], 1, 1))

    def global_pool_fits(self, op: Op) -> bool:
        x, out = op.inputs[0], op.outputs[0]
        if not isinstance(x, Ref) or x.params is None or out.params is None:
            return False
        shape = self.graph.shape(x.name, op)
        return len(shape) == 4 and max(shape[2:]) <= self.config.max_kernel

    def global_pool(self, op: Op):
        """The mean over the map as a depthwise convolution with a kernel of ones."""
        x, out = self._quantized_io(op)
        _, c, h, w = self.graph.shape(x.name, op)
        ones = Const(np.ones((c, 1, h, w), dtype=np.int64), scales=np.float32([1.0]),
                     zero_points=np.zeros(1, dtype=np.int64))
        multiplier, shift, note = self._requant(op, x, ones, out, c, extra=h * w)
        return self._layer_step(op, x, out, ones.values, None, multiplier, shift,
                                [note.replace("w_scale", f"(1/{h * w})"),
                                 f"global average pool: a {h}x{w} depthwise convolution with "
                                 "weights 1"],
                                in_shape=(c, h, w), groups=c, fuse=False)

    # -- host ----------------------------------------------------------------------------

    def host(self, op: Op) -> HostStep:
        kind = op.op
        if kind not in FLOAT_OPS:
            raise _fail(op, "not supported: the accelerator has no such operator and the "
                            "host runtime does not implement it")
        attrs = self._host_attrs(op)
        inputs, in_params = [], []
        data_inputs = op.inputs[:1] if kind in ("Reshape", "Clip") else op.inputs
        for operand in data_inputs:
            if isinstance(operand, Const):
                name = f"{op.name}/const{len(self.constants)}"
                self.constants[name] = self._constant(op, operand)
                inputs.append(name)
                in_params.append(self.constants[name][1])
            else:
                inputs.append(operand.name)
                in_params.append(operand.params)
        out = op.outputs[0]
        reason = self._host_reason(op)
        return HostStep(op.name, kind, inputs, [out.name], in_params, out.params, attrs,
                        op.source, reason)

    def _host_reason(self, op: Op) -> str:
        if op.op in ("QuantizeLinear", "DequantizeLinear"):
            return "the model's input and output are float"
        if op.op == "GlobalAveragePool":
            return (f"the map is larger than max_kernel {self.config.max_kernel}"
                    if op.outputs[0].params is not None else "float tensors")
        if op.op in ("MaxPool", "AveragePool"):
            return "not after a layer, or padding / window the pooling unit does not do"
        if op.op in ("Reshape", "Flatten"):
            return "moves no values"
        if op.op in ("Relu", "Clip"):
            return "not fused into a layer (other quantization, or another reader)"
        return "the accelerator has no such operator"

    def _constant(self, op: Op, const: Const):
        if const.scales is None:
            return const.values.astype(np.float32), None
        if const.scales.size != 1:
            raise _fail(op, "per-channel quantized constants are only supported as weights")
        dtype = str(const.values.dtype)
        if dtype not in ("int8", "uint8", "int32"):
            raise _fail(op, f"{dtype} constants are not supported")
        offset = 128 if dtype == "uint8" else 0
        params = QuantParams(float(const.scales[0]), int(const.zero_points[0]) - offset,
                             dtype if dtype != "int32" else "int32")
        return const.values.astype(np.int64) - offset, params

    def _host_attrs(self, op: Op) -> dict:
        a, kind = op.attrs, op.op
        if kind in ("MaxPool", "AveragePool"):
            if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET", b"VALID", "VALID"):
                raise _fail(op, "auto_pad SAME is not supported")
            kernel = [int(v) for v in a["kernel_shape"]]
            if len(kernel) != 2:
                raise _fail(op, "only 2-D pooling is supported")
            common = {"kernel": kernel, "strides": [int(v) for v in a.get("strides", [1, 1])],
                      "pads": [int(v) for v in a.get("pads", [0, 0, 0, 0])],
                      "ceil_mode": int(a.get("ceil_mode", 0))}
            if kind == "MaxPool":
                return {**common, "dilations": [int(v) for v in a.get("dilations", [1, 1])]}
            return {**common, "count_include_pad": int(a.get("count_include_pad", 0))}
        if kind == "Softmax":
            opset = a.get("opset", self.graph.opset.get("ai.onnx", 13))
            return {"axis": int(a.get("axis", 1 if opset < 13 else -1)), "legacy": opset < 13}
        if kind in ("Reshape", "Flatten"):
            return {"shape": list(self.graph.shape(op.outputs[0].name, op))}
        if kind == "Clip":
            low, high = self._clip_bounds(op)
            return {"low": low, "high": high}
        return {}


def _tensor_info(graph: _Graph, value, params: QuantParams | None) -> TensorInfo:
    onnx = graph.onnx
    dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "N")
            for d in value.type.tensor_type.shape.dim]
    dtype = onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type).name
    return TensorInfo(value.name, dims, dtype, params)


def compile_onnx(model, config: AccelConfig, *, name: str | None = None) -> Program:
    """A program for ``config`` from a quantized ONNX model (a path or a ``ModelProto``).

    Raises
    ------
    ModelError
        For anything the program could not compute faithfully; the message
        (one line) names the node and the reason.
    """
    onnx, _ = _onnx()
    if isinstance(model, (str, Path)):
        path = Path(model)
        try:
            model = onnx.load(str(path))
        except OSError:
            raise
        except Exception as error:      # protobuf decode errors
            raise ModelError(f"{path} is not an ONNX model ({error})".splitlines()[0]) from None
        name = name or path.stem
    graph = _Graph(model)
    if len(graph.inputs) != 1:
        raise ModelError(f"the model has {len(graph.inputs)} inputs "
                         f"({', '.join(i.name for i in graph.inputs)}); one is supported")
    ops = _normalize(graph)
    graph.complete_shapes(ops)
    builder = _Builder(graph, ops, config)
    steps = builder.build()
    quant = {out.name: out.params for op in ops for out in op.outputs if out.params}
    outputs = []
    for value in graph.outputs:
        produced = any(value.name in step.outputs for step in steps)
        if not produced:
            raise ModelError(f"graph output {value.name!r} is not computed by any operator")
        outputs.append(_tensor_info(graph, value, quant.get(value.name)))
    return Program(config, [_tensor_info(graph, graph.inputs[0], None)], outputs, steps,
                   name or model.graph.name or "network", constants=builder.constants)
