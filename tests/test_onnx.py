"""ONNX models in: compile, run and compare with onnxruntime (golden backend, no RTL).

Every model here is a float graph built with ``onnx.helper`` and quantized by
onnxruntime's ``quantize_static``; the tests call only the public CLI and API.
Expected values are onnxruntime's own int8 outputs of the same file.
"""

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from convaccel.hw import PRESETS  # noqa: E402
from convaccel.hw.conv_accel import conv_accel_register_map  # noqa: E402
from convaccel.host.layer import hardware_zero_points  # noqa: E402
from convaccel.host.onnx_check import agreement, onnxruntime_outputs  # noqa: E402
from convaccel.host.onnx_import import ModelError, compile_onnx  # noqa: E402
from convaccel.host.runtime import GoldenRunner, run_program  # noqa: E402
from convaccel.scripts import onnx_models  # noqa: E402
from convaccel.scripts.cli import main  # noqa: E402

DEFAULT = PRESETS["default"]
#: Asymmetric activations (onnxruntime's default) need the zero_points register.
ZERO_POINTS = hardware_zero_points(conv_accel_register_map(DEFAULT))
needs_zero_points = pytest.mark.skipif(not ZERO_POINTS, reason="the build has no zero_points "
                                       "register yet (asymmetric activations)")
ENTRY = Path(sys.executable).with_name("convaccel")

logging.getLogger().setLevel(logging.ERROR)     # the quantizer's advice to pre-process


def float_model(nodes, initializers, input_shape, output_shape, name="ops"):
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("input", TensorProto.FLOAT, input_shape)],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, output_shape)],
        [numpy_helper.from_array(np.asarray(v, dtype=np.float32), k)
         for k, v in initializers.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    return model


def ops_model(seed=0):
    """Conv + Relu, depthwise + Clip(0, 6), max- and average pooling, a residual Add, global
    average pooling, Flatten, Gemm and Softmax: every operator the importer knows."""
    rng = np.random.default_rng(seed)
    n = helper.make_node
    nodes = [
        n("Conv", ["input", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], strides=[2, 2], name="conv"),
        n("Relu", ["c1"], ["r1"], name="relu"),
        n("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], group=8, name="depthwise"),
        n("Clip", ["c2", "zero", "six"], ["r2"], name="relu6"),
        n("Add", ["r2", "r1"], ["s2"], name="residual"),
        n("MaxPool", ["s2"], ["p2"], kernel_shape=[2, 2], strides=[2, 2], name="maxpool"),
        n("AveragePool", ["p2"], ["a2"], kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1],
          name="avgpool"),
        n("GlobalAveragePool", ["a2"], ["g"], name="gap"),
        n("Flatten", ["g"], ["f"], name="flatten"),
        n("Gemm", ["f", "wf", "bf"], ["logits"], transB=1, name="fc"),
        n("Softmax", ["logits"], ["out"], axis=1, name="softmax"),
    ]
    initializers = {"w1": rng.normal(0, 0.3, (8, 3, 3, 3)), "b1": rng.normal(0, 0.1, 8),
                    "w2": rng.normal(0, 0.3, (8, 1, 3, 3)), "b2": rng.normal(0, 0.1, 8),
                    "zero": np.float32(0), "six": np.float32(6),
                    "wf": rng.normal(0, 0.5, (10, 8)), "bf": rng.normal(0, 0.1, 10)}
    return float_model(nodes, initializers, ["N", 3, 16, 16], ["N", 10])


def check_against_onnxruntime(path, inputs, config=DEFAULT, steps=1):
    program = compile_onnx(path, config)
    ours, _ = run_program(program, {"input": inputs}, GoldenRunner())
    figures = agreement(program, ours, onnxruntime_outputs(path, {"input": inputs}))
    (result,) = figures.values()
    assert result["max_steps"] <= steps, result
    return program, result


VARIANTS = [
    pytest.param(dict(symmetric=True), id="qdq-symmetric-int8"),
    pytest.param(dict(symmetric=True, activations="uint8"), id="qdq-symmetric-uint8"),
    # QOperator models run onnxruntime's integer kernels, exact on every x86 CPU
    # only with 7-bit weights (reduce_range; see onnx_models.quantize).
    pytest.param(dict(symmetric=True, fmt="qoperator", reduce_range=True),
                 id="qoperator-symmetric-int8"),
    pytest.param(dict(symmetric=True, per_channel=False), id="qdq-symmetric-per-tensor"),
    pytest.param(dict(), id="qdq-asymmetric-int8", marks=needs_zero_points),
    pytest.param(dict(activations="uint8"), id="qdq-asymmetric-uint8", marks=needs_zero_points),
    pytest.param(dict(fmt="qoperator", activations="uint8", reduce_range=True),
                 id="qoperator-asymmetric-uint8",
                 marks=needs_zero_points),
]


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_operator_agrees_with_onnxruntime_within_one_step(variant, tmp_path):
    rng = np.random.default_rng(1)
    path = onnx_models.quantize(ops_model(), tmp_path / "ops.onnx",
                                rng.normal(0, 1, (8, 3, 16, 16)).astype(np.float32), **variant)
    program, result = check_against_onnxruntime(
        path, rng.normal(0, 1, (6, 3, 16, 16)).astype(np.float32))
    # conv (+ Relu), depthwise (+ Clip; onnxruntime drops both with asymmetric activations,
    # the zero point's saturation does them), GAP and Gemm on the hardware.
    assert [step.notes[0].split(" + ")[0] for step in program.hardware_steps()] == [
        "Conv", "Conv", "GlobalAveragePool", "Gemm"]
    host = {step.op for step in program.host_steps()}
    assert {"Add", "AveragePool", "Softmax", "Flatten"} <= host
    assert result["top1_same"] == result["images"]


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """The digits CNN: trained here, exported to float ONNX, quantized by onnxruntime."""
    folder = tmp_path_factory.mktemp("digits")
    model = onnx_models.digits_model(epochs=10)
    train_x, _, test_x, test_y = onnx_models.digits_data()
    paths = {name: onnx_models.quantize(model, folder / f"{name}.onnx", train_x[:200],
                                        symmetric=name == "symmetric")
             for name in (["symmetric", "asymmetric"] if ZERO_POINTS else ["symmetric"])}
    np.save(folder / "test_x.npy", test_x)
    return folder, paths, test_y


def test_digits_through_the_cli_agree_with_onnxruntime(digits):
    """360 held-out digits: >= 99.5 % of the int8 logits identical, none off by more than
    one step, the same class every time; compile + run of the program gives the same."""
    folder, paths, labels = digits
    for name, path in paths.items():
        out, report = folder / f"{name}.npy", folder / f"{name}.json"
        assert main(["run", str(path), "--input", str(folder / "test_x.npy"), "--output",
                     str(out), "--backend", "golden", "--compare", "--report",
                     str(report)]) == 0
        figures = json.loads(report.read_text())["onnxruntime"]["logits"]
        assert figures["identical"] >= 0.995 * figures["values"], figures
        assert figures["worse"] == 0 and figures["top1_same"] == figures["images"] == 360
        logits = np.load(out)
        assert logits.dtype == np.float32 and logits.shape == (360, 10)
        assert np.mean(logits.argmax(axis=1) == labels) > 0.9
        program = folder / f"{name}.program"
        assert main(["compile", str(path), "-o", str(program)]) == 0
        again = folder / f"{name}_again.npy"
        assert main(["run", str(program), "--input", str(folder / "test_x.npy"), "--output",
                     str(again), "--backend", "golden"]) == 0
        np.testing.assert_array_equal(np.load(again), logits)


@pytest.fixture(scope="module")
def mobilenet(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mobilenet")
    path = onnx_models.quantize(onnx_models.mobilenet_model(size=96), folder / "mobilenet.onnx",
                                onnx_models.mobilenet_images(16, 96, seed=1),
                                symmetric=not ZERO_POINTS)
    return path, onnx_models.mobilenet_images(12, 96, seed=2)


def test_mobilenet_at_96x96_needs_stripes_and_agrees_with_onnxruntime(mobilenet):
    path, images = mobilenet
    program, result = check_against_onnxruntime(path, images)
    conv0 = program.steps[1]
    # 3x3/2 with padding 1 on 96x96, 64x64 at most: output rows 0..31 read input rows
    # -1 (padding) .. 63, rows 32..47 read 63 .. 95; the same for the columns.
    assert conv0.name == "conv0" and len(conv0.passes) == 4
    assert {(p.out_rows, p.in_rows) for p in conv0.passes} == {((0, 32), (0, 64)),
                                                              ((32, 48), (63, 96))}
    assert result["top1_same"] == result["images"]
    # With a 24-bit multiplier the fixed-point scales match onnxruntime's float ones.
    _, wide = check_against_onnxruntime(path, images, DEFAULT.replace(mult_width=24))
    assert wide["identical"] >= 0.995 * wide["values"] and wide["worse"] == 0, wide


def run_cli(*args):
    return subprocess.run([str(ENTRY), *map(str, args)], capture_output=True, text=True,
                          timeout=120)


def assert_one_line_error(result, *phrases):
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0 and len(lines) == 1 and "Traceback" not in result.stderr, \
        result.stderr
    for phrase in phrases:
        assert phrase in lines[0], lines[0]


def test_an_operator_nothing_runs_is_refused_naming_the_node(tmp_path):
    rng = np.random.default_rng(2)
    model = float_model(
        [helper.make_node("Conv", ["input", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
         helper.make_node("LeakyRelu", ["c"], ["out"], alpha=0.1, name="leaky")],
        {"w": rng.normal(0, 0.3, (4, 3, 3, 3)), "b": np.zeros(4)}, ["N", 3, 8, 8],
        ["N", 4, 8, 8])
    path = onnx_models.quantize(model, tmp_path / "leaky.onnx",
                                rng.normal(0, 1, (4, 3, 8, 8)).astype(np.float32),
                                symmetric=True)
    with pytest.raises(ModelError, match=r"node 'leaky' \(LeakyRelu\): not supported"):
        compile_onnx(path, DEFAULT)
    np.save(tmp_path / "x.npy", np.zeros((1, 3, 8, 8), dtype=np.float32))
    assert_one_line_error(run_cli("run", path, "--input", tmp_path / "x.npy", "--output",
                                  tmp_path / "y.npy", "--backend", "golden"),
                          "node 'leaky' (LeakyRelu)")


def test_too_many_input_channels_name_the_parameter_to_raise(tmp_path):
    rng = np.random.default_rng(3)
    model = float_model(
        [helper.make_node("Conv", ["input", "w", "b"], ["out"], name="wide")],
        {"w": rng.normal(0, 0.1, (4, 80, 1, 1)), "b": np.zeros(4)}, ["N", 80, 4, 4],
        ["N", 4, 4, 4])
    path = onnx_models.quantize(model, tmp_path / "wide.onnx",
                                rng.normal(0, 1, (4, 80, 4, 4)).astype(np.float32),
                                symmetric=True)
    assert_one_line_error(run_cli("compile", path, "-o", tmp_path / "wide.program"),
                          "node 'wide' (Conv)", "raise max_in_channels to at least 80")
    assert not (tmp_path / "wide.program").exists()


def activation_zero_points(path):
    """The zero points of every activation QuantizeLinear in a QDQ model (weights excluded:
    onnxruntime stores them already quantized)."""
    import onnx

    model = onnx.load(str(path))
    values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    return [int(values[node.input[2]].reshape(-1)[0]) for node in model.graph.node
            if node.op_type == "QuantizeLinear" and node.input[0] not in values]


@needs_zero_points
def test_demo_onnx_activations_option_picks_the_quantization(tmp_path):
    """`demo onnx --activations`: asymmetric (onnxruntime's default) gives activation zero
    points other than 0, symmetric gives 0 everywhere; both agree with onnxruntime."""
    figures = {}
    for activations in ("asymmetric", "symmetric"):
        out = tmp_path / activations
        assert main(["demo", "onnx", "--model", "digits", "--images", "20", "--backend",
                     "golden", "--activations", activations, "--out", str(out)]) == 0
        points = activation_zero_points(out / "digits.onnx")
        assert points and (any(points) if activations == "asymmetric" else not any(points))
        report = json.loads((out / "report.json").read_text())
        assert [step["name"] for step in report["steps"] if step["kind"] == "hardware"] == [
            "conv1", "conv2", "fc"]
        figures[activations] = report["onnxruntime"]["logits"]
        assert figures[activations]["worse"] == 0, figures[activations]
        assert figures[activations]["top1_same"] == 20
