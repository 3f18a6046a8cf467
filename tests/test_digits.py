"""The digits CNN: committed parameters, the training script, and images on the RTL."""

import numpy as np
import pytest

from convaccel.golden.digits import LAYERS, digits_layers, load_digits_cnn, predict
from convaccel.hw import PRESETS

#: Integer (golden) accuracy may trail the float model by at most this much.
ACCURACY_MARGIN = 0.02


def test_committed_network_is_accurate_and_within_the_contract():
    net = load_digits_cnn()
    cfg = PRESETS["default"]
    for name in LAYERS:
        assert np.abs(net[f"{name}_w"]).max() <= 127
        assert np.abs(net[f"{name}_b"]).max() < 2 ** 31
        assert net[f"{name}_m"].min() >= 0 and net[f"{name}_m"].max() <= cfg.max_multiplier
        assert net[f"{name}_sh"].min() >= 0 and net[f"{name}_sh"].max() <= cfg.max_shift
    images, labels = net["test_x"].astype(np.int64), net["test_y"].astype(np.int64)
    assert images.shape == (360, 1, 8, 8) and images.min() >= 0 and images.max() <= 127
    accuracy = float((predict(net, images) == labels).mean())
    assert accuracy == pytest.approx(float(net["integer_accuracy"]))
    assert accuracy > 0.90
    assert accuracy >= float(net["float_accuracy"]) - ACCURACY_MARGIN


def test_layer_shapes_of_the_golden_network():
    net = load_digits_cnn()
    shapes = [out.shape for out in digits_layers(net, net["test_x"][0])]
    assert shapes == [(8, 4, 4), (16, 2, 2), (10, 1, 1)]


def test_training_script_is_deterministic_and_accurate(tmp_path):
    pytest.importorskip("sklearn", reason="the train extra (scikit-learn) is not installed")
    from convaccel.scripts.digits import main

    first, second = tmp_path / "a.npz", tmp_path / "b.npz"
    assert main(["--out", str(first)]) == 0
    assert main(["--out", str(second)]) == 0
    a, b = load_digits_cnn(first), load_digits_cnn(second)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert float(a["float_accuracy"]) > 0.90
    assert float(a["integer_accuracy"]) >= float(a["float_accuracy"]) - ACCURACY_MARGIN


@pytest.mark.cocotb
def test_digits_on_the_rtl_match_the_golden_network(tmp_path):
    from convaccel.scripts.digits_demo import plot_digits, run_digits, summarize

    net = load_digits_cnn()
    results = run_digits(4, PRESETS["default"], progress=False)
    assert [r["index"] for r in results] == [0, 1, 2, 3]
    expected = predict(net, net["test_x"][:4].astype(np.int64))
    assert [r["prediction"] for r in results] == expected.tolist()
    for r in results:
        golden = digits_layers(net, net["test_x"][r["index"]])
        for layer, want in zip(r["layers"], golden):
            assert np.array_equal(np.array(layer["output"]), want)   # every layer bit-exact
    summary = summarize(results, pes=64, fmax_mhz=50.0)
    assert summary["images"] == 4 and summary["bit_exact_images"] == 4
    assert summary["cycles_per_image"] == pytest.approx(
        sum(layer["cycles"] for layer in summary["layers"]))
    assert summary["microseconds_per_image"] == pytest.approx(summary["cycles_per_image"] / 50)
    assert plot_digits(results, tmp_path / "digits.png").read_bytes()[:4] == b"\x89PNG"
