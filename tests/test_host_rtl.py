"""The host runtime on the ``conv_accel`` RTL (cocotb backend): layers in passes, zero points,
and a whole ONNX model through ``convaccel run``. Every stream has seeded random gaps and
back-pressure; every wait a cycle limit (sim/host_transport.py)."""

import json
import logging
import os

import numpy as np
import pytest

from convaccel.hw.conv_accel import conv_accel_register_map
from convaccel.host.layer import hardware_zero_points
from convaccel.sim.regression import REGRESSION_CONFIGS, regression_seeds

pytestmark = pytest.mark.cocotb


def first_seed_only(name, seed):
    """The long cases run with the first seed only (as the conv_accel named layers do)."""
    if seed != regression_seeds()[0]:
        pytest.skip(f"{name}: first seed only")


def run_host_bench(request, name, testcase, seed, extra_env=None):
    from convaccel.sim.build import build, run

    built = build("conv_accel", REGRESSION_CONFIGS[name])
    return run(built, "host_bench", testcase=testcase, seed=seed, pytest_id=request.node.nodeid,
               name=f"host-{testcase}-{name}-seed{seed}", extra_env=extra_env)


def test_layers_beyond_the_maxima_are_bit_exact_on_the_rtl(request, sim_seed):
    """3x the image size, 2.5x the output channels, 3x the depthwise channels, padding
    above max_padding: every pass through the AXI ports (cocotb, tiny), assembled, equals
    the golden layer."""
    first_seed_only("tiny", sim_seed)
    run_host_bench(request, "tiny", "host_beyond_maxima", sim_seed)


def test_layers_beyond_the_maxima_on_the_fast_backend(sim_seed):
    """The same layers on the odd build (6-bit activations, 5-bit weights, a 3x1 array)
    through the compiled testbench's transport, with its seeded stalls."""
    from convaccel.sim.benches.host_bench import beyond_the_maxima, check_on_the_rtl
    from convaccel.sim.fast_transport import FastTransport
    from convaccel.sim.program import Stalls

    first_seed_only("odd", sim_seed)
    cfg = REGRESSION_CONFIGS["odd"]
    transport = FastTransport(cfg, stalls=Stalls.random(0.2), seed=sim_seed)
    check_on_the_rtl(logging.getLogger(), transport,
                     beyond_the_maxima(cfg, np.random.default_rng([sim_seed, 21])))
    assert transport.layers >= 28 and transport.cycles > 0


@pytest.mark.parametrize("name", list(REGRESSION_CONFIGS))
def test_random_zero_points_on_the_rtl(request, name, sim_seed):
    if not hardware_zero_points(conv_accel_register_map(REGRESSION_CONFIGS[name])):
        pytest.skip("the build has no zero_points register yet")
    if name != "tiny":
        first_seed_only(name, sim_seed)
    run_host_bench(request, name, "host_zero_points", sim_seed)


def test_digits_onnx_model_on_both_backends(tmp_path):
    """The digits CNN quantized by onnxruntime, two images through `convaccel run` on the
    cocotb and the fast backend, with random stalls: every layer bit-exact with the golden
    model on both, the same outputs, within a step of onnxruntime."""
    pytest.importorskip("onnxruntime")
    from convaccel.scripts import onnx_models
    from convaccel.scripts.cli import main

    logging.getLogger().setLevel(logging.ERROR)
    zero_points = hardware_zero_points(conv_accel_register_map(REGRESSION_CONFIGS["default"]))
    train_x, _, test_x, _ = onnx_models.digits_data()
    path = onnx_models.quantize(onnx_models.digits_model(epochs=10), tmp_path / "digits.onnx",
                                train_x[:200], symmetric=not zero_points)
    np.save(tmp_path / "x.npy", test_x[:2])
    outputs = []
    for backend in ("cocotb", "fast"):
        report_path = tmp_path / f"{backend}.json"
        assert main(["run", str(path), "--input", str(tmp_path / "x.npy"), "--output",
                     str(tmp_path / f"{backend}.npy"), "--backend", backend, "--stalls", "0.2",
                     "--compare", "--report", str(report_path)]) == 0
        report = json.loads(report_path.read_text())
        hardware = [step for step in report["steps"] if step["kind"] == "hardware"]
        assert [step["bit_exact"] for step in hardware] == [True, True, True]
        assert all(step["cycles"] > 0 and step["macs"] > 0 for step in hardware)
        figures = report["onnxruntime"]["logits"]
        assert figures["worse"] == 0 and figures["top1_same"] == 2
        outputs.append(np.load(tmp_path / f"{backend}.npy"))
    assert outputs[0].shape == (2, 10)
    np.testing.assert_array_equal(outputs[0], outputs[1])


@pytest.mark.skipif(os.environ.get("CONVACCEL_NETWORKS", "0") in ("", "0"),
                    reason="opt-in: CONVACCEL_NETWORKS=1 (a whole 96x96 network on the RTL)")
def test_mobilenet_96_on_the_rtl(tmp_path):
    """The MobileNet-style model at 96x96 on `default`, every pass on the RTL (the backend:
    ``CONVACCEL_NETWORK_BACKEND``, fast by default)."""
    from convaccel.scripts.cli import main

    images = int(os.environ.get("CONVACCEL_NETWORK_IMAGES", "1"))
    backend = os.environ.get("CONVACCEL_NETWORK_BACKEND", "fast")
    assert main(["demo", "onnx", "--images", str(images), "--out", str(tmp_path),
                 "--backend", backend]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    hardware = [step for step in report["steps"] if step["kind"] == "hardware"]
    assert hardware and all(step["bit_exact"] for step in hardware)
    figures = report["onnxruntime"]["logits"]
    assert figures["worse"] == 0 and figures["top1_same"] == images
    print(f"mobilenet 96x96 on the RTL ({backend}): {report['seconds']:.0f} s for {images} "
          f"image(s); "
          f"onnxruntime: {figures}")


def test_a_fully_connected_layer_takes_the_batch_side_by_side_on_the_fast_backend(sim_seed):
    """Five images through conv 3x3 -> fully connected on tiny (12 wide, stride 4 at most):
    the FC layer runs as a batch of 4 side by side plus 1, with random stalls; every output
    equals the golden runner's, and the batched pass costs fewer cycles per image."""
    import dataclasses

    from convaccel.host import Accelerator, ConvLayer
    from convaccel.host.program import Program, TensorInfo, hardware_step
    from convaccel.host.runtime import AcceleratorRunner, GoldenRunner, run_program
    from convaccel.sim.fast_transport import FastTransport
    from convaccel.sim.program import Stalls

    first_seed_only("tiny", sim_seed)
    cfg = REGRESSION_CONFIGS["tiny"]
    rng = np.random.default_rng([sim_seed, 31])

    def layer(c, m, k, name, **kwargs):
        return ConvLayer(x=None, input_shape=None, w=rng.integers(-128, 128, (m, c, k, k)),
                         bias=rng.integers(-3000, 3000, m), multiplier=rng.integers(1, 1 << 12, m),
                         shift=rng.integers(10, 16, m), name=name, **kwargs)

    conv = dataclasses.replace(layer(2, 4, 3, "conv", activation="relu"), input_shape=(2, 5, 5))
    fc = dataclasses.replace(layer(4, 3, 3, "fc"), input_shape=(4, 3, 3))
    steps = [hardware_step("conv", conv, cfg, input="x", output="a", out_shape=(1, 4, 3, 3)),
             hardware_step("fc", fc, cfg, input="a", output="y", out_shape=(1, 3, 1, 1))]
    program = Program(cfg, [TensorInfo("x", [1, 2, 5, 5], "int8")],
                      [TensorInfo("y", [1, 3, 1, 1], "int8")], steps)
    from convaccel.host.host_ops import QuantParams
    program.inputs[0].quant = program.outputs[0].quant = QuantParams(1.0, 0, "int8")
    x = rng.integers(-128, 128, (5, 2, 5, 5))
    want, _ = run_program(program, {"x": x}, GoldenRunner())
    transport = FastTransport(cfg, stalls=Stalls.random(0.2), seed=sim_seed)
    got, reports = run_program(program, {"x": x}, AcceleratorRunner(Accelerator(transport)))
    np.testing.assert_array_equal(got["y"], want["y"])
    conv_report, fc_report = reports
    assert conv_report.passes == 5 and fc_report.passes == 2      # 4 side by side, then 1
    assert fc_report.bit_exact and fc_report.macs == 5 * 3 * 4 * 3 * 3
    # Alone, one image's FC pass takes longer than its share of the batched pass.
    _, alone = run_program(program, {"x": x[:1]}, AcceleratorRunner(Accelerator(
        FastTransport(cfg, stalls=Stalls.random(0.2), seed=sim_seed))))
    assert alone[1].cycles * 5 > fc_report.cycles
