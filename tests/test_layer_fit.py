"""Host-side checks of a layer against the build, before any simulation starts."""

import re

import numpy as np
import pytest

from convaccel.hw import PRESETS
from convaccel.sim.conv_driver import ConvLayer
from convaccel.sim.layer_suite import ALL_LAYERS, BENCH_LAYERS, fit_spec, spec_layer

TINY = PRESETS["tiny"]   # 2x2 array, 4 channels, 12x12, kernel 3, padding 2, pool 3/3


def small_layer(**changes) -> ConvLayer:
    """A 2->2 3x3 layer on a 6x6 image with 2x2 max-pool: fits ``tiny``."""
    args = dict(x=np.ones((2, 6, 6), dtype=np.int64), w=np.ones((2, 2, 3, 3), dtype=np.int64),
                pool=("max", 2, 2), name="small")
    args.update(changes)
    return ConvLayer(**args)


def test_a_layer_within_every_maximum_fits():
    assert small_layer().misfits(TINY) == []
    small_layer().check_fits(TINY)


@pytest.mark.parametrize("changes, problem", [
    (dict(x=np.ones((5, 6, 6), dtype=np.int64), w=np.ones((2, 5, 3, 3), dtype=np.int64)),
     "input channels 5 > max_in_channels 4"),
    (dict(w=np.ones((6, 2, 3, 3), dtype=np.int64)), "output channels 6 > max_out_channels 4"),
    (dict(x=np.ones((2, 13, 6), dtype=np.int64)), "height 13 > max_height 12"),
    (dict(x=np.ones((2, 6, 13), dtype=np.int64)), "width 13 > max_width 12"),
    (dict(w=np.ones((2, 2, 3, 5), dtype=np.int64)), "kernel 5 > max_kernel 3"),
    (dict(stride=(1, 5)), "stride 5 > max_stride 4"),
    (dict(dilation=(4, 1), pool=None), "dilation 4 > max_dilation 3"),
    (dict(padding=(0, 3, 0, 0)), "padding 3 > max_padding 2"),
    (dict(pool=("max", 4, 2)), "pooling window 4 > max_pool_kernel 3"),
    (dict(pool=("avg", 2, 4)), "pooling stride 4 > max_pool_stride 3"),
    (dict(pool=("max", (2, 1), 2)), "the pooling unit takes a square window"),
    (dict(x=np.full((2, 6, 6), 128)), "activation values 128..128 outside -128..127"),
    (dict(w=np.full((2, 2, 3, 3), -129)), "weight values -129..-129 outside -128..127"),
    (dict(bias=np.array([2 ** 31, 0])), "bias values 0..2147483648 outside"),
    (dict(multiplier=-1), "multiplier values -1..-1 outside 0..65535"),
    (dict(shift=64), "shift values 64..64 outside 0..63"),
    (dict(activation="clamp", clamp_high=200), "clamp_high 200 outside -128..127"),
    (dict(groups=2, w=np.ones((2, 2, 3, 3), dtype=np.int64)), "groups 2 do not split"),
    (dict(x=np.ones((2, 2, 2), dtype=np.int64), pool=None), "kernel height 3 (dilation 1, "
                                                             "span 3) is larger than the padded"),
    # 12 + 2 + 2 - 1 + 1 = 16 > 12: the conv output is larger than the image maxima.
    (dict(x=np.ones((2, 12, 12), dtype=np.int64), w=np.ones((2, 2, 1, 1), dtype=np.int64),
          padding=2, pool=None), "convolution output height 16 > max_height 12"),
    (dict(x=np.ones((2, 4, 4), dtype=np.int64), pool=("max", 3, 1)),
     "pooling window 3 larger than the 2x2 convolution output"),
])
def test_each_build_limit_is_named(changes, problem):
    layer = small_layer(**changes)
    assert any(problem in text for text in layer.misfits(TINY)), layer.misfits(TINY)
    with pytest.raises(ValueError, match=r"^layer 'small' does not fit the build \(2x2 array\): "):
        layer.check_fits(TINY)


def test_lenet_conv1_unscaled_lists_everything_that_does_not_fit_tiny():
    layer = ConvLayer(x=np.zeros((1, 32, 32), dtype=np.int64),
                      w=np.zeros((6, 1, 5, 5), dtype=np.int64), pool=("max", 2, 2))
    assert layer.misfits(TINY) == ["output channels 6 > max_out_channels 4",
                                   "height 32 > max_height 12", "width 32 > max_width 12",
                                   "kernel 5 > max_kernel 3"]


def test_named_layers_scale_to_tiny_and_say_so():
    spec = fit_spec(BENCH_LAYERS["lenet_conv1"], TINY)
    shape = tuple(spec[key] for key in ("c", "m", "h", "w", "r", "s"))
    assert shape == (1, 4, 12, 12, 3, 3)
    assert spec["name"] == ("LeNet-5 conv1 (1->6, 5x5, 32x32) + ReLU + 2x2 max-pool, scaled to "
                            "the build: 1->4, 3x3, 12x12, 2x2/2 max-pool")
    depthwise = fit_spec(BENCH_LAYERS["mobilenet_dw"], TINY)
    assert depthwise["c"] == depthwise["m"] == depthwise["groups"] == 4
    for key, original in ALL_LAYERS.items():
        fitted = fit_spec(original, TINY)
        spec_layer(fitted, TINY).check_fits(TINY)
        # The default build runs every named layer as it is.
        assert fit_spec(original, PRESETS["default"]) == original, key


def test_a_layer_that_cannot_be_scaled_fails_before_anything_is_built(tmp_path, monkeypatch):
    from convaccel.scripts.bench import run_layers

    monkeypatch.setenv("CONVACCEL_CACHE", str(tmp_path / "cache"))
    # A 2x2 image cannot hold a 3x3 kernel without padding.
    with pytest.raises(ValueError, match=r"kernel height 3 .* larger than the padded input"):
        run_layers(["lenet_conv1"], TINY.replace(max_height=2, max_width=2))
    assert not (tmp_path / "cache").exists()


def test_the_digits_network_is_refused_on_a_build_too_small_for_it(tmp_path, monkeypatch):
    from convaccel.scripts.digits_demo import check_digits_fit, run_digits

    check_digits_fit(PRESETS["default"])
    monkeypatch.setenv("CONVACCEL_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ValueError, match=r"^layer 'digits conv1' does not fit the build .*"
                                         r"output channels 8 > max_out_channels 4$"):
        run_digits(2, TINY)
    with pytest.raises(ValueError, match="at least 1, got 0"):
        run_digits(0, PRESETS["default"])
    assert not (tmp_path / "cache").exists()


def test_typed_layer_specs_parse_with_golden_defaults():
    from convaccel.sim.layer_suite import parse_layer_spec

    spec = parse_layer_spec("c=1, h=28, w=28, m=3, k=5")
    assert {k: spec[k] for k in ("c", "h", "w", "m", "r", "s")} == dict(
        c=1, h=28, w=28, m=3, r=5, s=5)
    assert not {"stride", "dilation", "padding", "groups", "pool", "activation"} & set(spec)
    full = parse_layer_spec("c=4,h=9,w=7,m=8,r=3,s=1,stride=2x1,dilation=2,pad=1x0x2x0,"
                            "groups=2,pool=avg:3:2,act=clamp:96")
    assert (full["r"], full["s"], full["stride"], full["dilation"]) == (3, 1, [2, 1], [2, 2])
    assert full["padding"] == [1, 0, 2, 0] and full["groups"] == 2
    assert full["pool"] == ["avg", 3, 2]
    assert (full["activation"], full["clamp_high"]) == ("clamp", 96)
    assert parse_layer_spec("c=1,h=4,w=4,m=1,k=1,pool=max,pad=1")["pool"] == ["max", 2, 2]
    assert parse_layer_spec("c=1,h=4,w=4,m=1,k=1,pad=1")["padding"] == [1, 1, 1, 1]


@pytest.mark.parametrize("text, phrase", [
    ("c=1,h=4,w=4,m=1", "missing k (or r and s)"),
    ("h=4,w=4,m=1,k=3", "missing c"),
    ("c=1,h=4,w=4,m=1,k=3,r=3", "give k or r and s, not both"),
    ("c=1,h=4,w=4,m=1,k=three", "k='three' is not an integer"),
    ("c=0,h=4,w=4,m=1,k=3", "c=0 is out of range"),
    ("c=1,h=4,w=4,m=1,k=3,stride=1x2x3", "stride='1x2x3': give 1 or 2 numbers"),
    ("c=1,h=4,w=4,m=1,k=3,pool=min", "pool='min': use max or avg"),
    ("c=1,h=4,w=4,m=1,k=3,act=clamp", "act='clamp': use none, relu or clamp:HIGH"),
    ("c=1,h=4,w=4,m=1,k=3,c=2", "'c' given twice"),
    ("c=1,h=4,w=4,m=1,k=3,size=2", "'size=2' is not KEY=VALUE"),
])
def test_typed_layer_spec_errors_name_the_key(text, phrase):
    from convaccel.sim.layer_suite import parse_layer_spec

    with pytest.raises(ValueError, match=re.escape(phrase)):
        parse_layer_spec(text)
