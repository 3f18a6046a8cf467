"""AccelConfig: validation messages, derived widths, presets and JSON."""

import dataclasses
import json

import numpy as np
import pytest

from convaccel.golden import conv2d
from convaccel.hw.config import _INT_LIMITS, PRESETS, AccelConfig, signed_width


@pytest.mark.parametrize("low, high, width", [
    (-128, 127, 8), (-128, 128, 9), (-129, 127, 9), (0, 0, 1), (-1, 0, 1), (0, 1, 2),
    (-(2 ** 31), 2 ** 31 - 1, 32),
])
def test_signed_width_hand_examples(low, high, width):
    assert signed_width(low, high) == width


def test_default_accumulator_width_worked_by_hand():
    cfg = AccelConfig()
    # 64 channels * 7 * 7 = 3136 products of at most (-128)*(-128) = 16384,
    # plus a bias up to 2**31 - 1: 51 380 224 + 2 147 483 647 = 2 198 863 871,
    # which needs 33 signed bits (2**32 = 4 294 967 296).
    assert cfg.max_reduction == 3136
    assert cfg.acc_high == 3136 * 16384 + 2 ** 31 - 1
    assert cfg.acc_low == 3136 * (-128 * 127) - 2 ** 31
    assert cfg.acc_width == 33
    assert cfg.product_width == 16


def test_small_bias_accumulator_width_worked_by_hand():
    cfg = AccelConfig(bias_width=2, max_in_channels=4, max_kernel=3, array_rows=4)
    # 36 * 16384 + 1 = 589 825 < 2**20 = 1 048 576 -> 21 signed bits.
    assert cfg.acc_width == 21


def test_reduction_counts_channels_in_whole_array_row_groups():
    # 5 channels fed 4 per cycle occupy 2 groups = 8 lanes: 8 * 3 * 3 = 72.
    assert AccelConfig(max_in_channels=5, max_kernel=3, array_rows=4).max_reduction == 72


@pytest.mark.parametrize("name", list(PRESETS))
def test_accumulator_width_is_exact_for_the_worst_layer(name):
    """The golden model's worst-case layer fits acc_width and not one bit less."""
    cfg = PRESETS[name]
    shape = (cfg.max_in_channels, cfg.max_kernel, cfg.max_kernel)
    worst_positive = conv2d(np.full(shape, cfg.act_min), np.full((1,) + shape, cfg.weight_min),
                            bias=np.array([cfg.bias_max]))
    worst_negative = conv2d(np.full(shape, cfg.act_min), np.full((1,) + shape, cfg.weight_max),
                            bias=np.array([cfg.bias_min]))
    top, bottom = int(worst_positive.max()), int(worst_negative.min())
    w = cfg.acc_width
    assert -(2 ** (w - 1)) <= bottom and top <= 2 ** (w - 1) - 1
    assert not (-(2 ** (w - 2)) <= bottom and top <= 2 ** (w - 2) - 1)


@pytest.mark.parametrize("name, low, high", [(n, lo, hi) for n, lo, hi, _ in _INT_LIMITS])
def test_out_of_range_values_name_the_parameter(name, low, high):
    for bad in (low - 1, high + 1):
        with pytest.raises(ValueError, match=rf"AccelConfig\.{name} .* got {bad}$"):
            AccelConfig(**{name: bad})


@pytest.mark.parametrize("bad", [True, 8.0, "8", None])
def test_non_integer_values_are_rejected(bad):
    with pytest.raises(ValueError, match=r"AccelConfig\.act_width .*must be an integer"):
        AccelConfig(act_width=bad)


def test_pool_support_must_be_a_bool():
    with pytest.raises(ValueError, match="pool_support must be True or False, got 1"):
        AccelConfig(pool_support=1)


def test_requant_product_wider_than_64_bits_is_rejected():
    # 3136 products of up to 2**30 (16 x 16 bits) plus a bias need 43 bits.
    with pytest.raises(ValueError, match=r"acc_width \(43, derived from .*mult_width \(32\)"):
        AccelConfig(mult_width=32, act_width=16, weight_width=16)


@pytest.mark.parametrize("name, value", [("array_rows", np.int64(4)), ("max_width", np.uint16(9)),
                                         ("act_width", np.int8(6))])
def test_numpy_integers_are_integers(name, value):
    cfg = AccelConfig(**{name: value})
    assert getattr(cfg, name) == value and type(getattr(cfg, name)) is int
    assert AccelConfig.from_json(cfg.to_json()) == cfg
    assert AccelConfig(pool_support=np.bool_(True)).pool_support is True


def test_designs_the_top_cannot_build_are_refused_by_the_config():
    with pytest.raises(ValueError, match="need pool_support=True, got False"):
        AccelConfig(pool_support=False)
    with pytest.raises(ValueError, match=r"bias_width <= 32 for its 32-bit .* got 40"):
        AccelConfig(bias_width=40)
    with pytest.raises(ValueError, match=r"array_cols \(8\) must not exceed max_out_channels \(2"):
        AccelConfig(array_cols=8, max_out_channels=2)


def test_memories_of_the_default_build_worked_by_hand():
    cfg = AccelConfig()
    # Window ring: (7 - 1) * 3 + 1 = 19 rows of 64 pixels x 8 groups of 8 lanes.
    assert cfg.memories["window line buffer"] == (19 * 64 * 8, 8 * 8)
    # Pooling ring: 3 rows of 64 pixels x 8 groups of 8 output lanes.
    assert cfg.memories["pooling line buffer"] == (3 * 64 * 8, 8 * 8)
    # Partial sums: 64 positions x 8 output tiles of 8 lanes x 33 bits.
    assert cfg.memories["engine accumulator buffer"] == (64 * 8, 8 * 33)
    assert cfg.memory_bits == sum(words * bits for words, bits in cfg.memories.values())


@pytest.mark.parametrize("changes, message", [
    (dict(max_in_channels=4096, max_width=4096), r"window line buffer would have 39845888 words"),
    (dict(max_out_channels=4096, array_cols=1, max_width=4096), r"pooling line buffer would have"),
    (dict(array_block=2048, max_out_channels=4096, array_cols=64, act_width=16, weight_width=16),
     r"memories would hold \d+ bits .* above the limit of 16777216 bits"),
])
def test_configs_too_large_to_build_are_refused_at_once(changes, message):
    with pytest.raises(ValueError, match=message):
        AccelConfig(**changes)


def test_a_file_names_itself_in_errors_and_lists_what_it_leaves_out(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"array_rows": 4,')
    with pytest.raises(ValueError, match=r"^.*broken\.json is not valid JSON"):
        AccelConfig.load(broken)
    bad = tmp_path / "bad.json"
    bad.write_text('{"array_rows": 0}')
    with pytest.raises(ValueError, match=r"bad\.json: AccelConfig\.array_rows"):
        AccelConfig.load(bad)
    partial = tmp_path / "partial.json"
    partial.write_text('{"array_rows": 4, "array_cols": 4}')
    config, left_out = AccelConfig.read_file(partial)
    assert config == PRESETS["default"].replace(array_rows=4, array_cols=4)
    assert len(left_out) == len(dataclasses.fields(AccelConfig)) - 2
    assert "array_rows" not in left_out and "act_width" in left_out


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        AccelConfig().act_width = 4


@pytest.mark.parametrize("name", list(PRESETS))
def test_json_round_trip(name, tmp_path):
    cfg = PRESETS[name]
    assert AccelConfig.from_json(cfg.to_json()) == cfg
    path = tmp_path / "cfg.json"
    path.write_text(cfg.to_json())
    assert AccelConfig.load(path) == cfg
    assert AccelConfig.load(name) == cfg


def test_json_with_unknown_key_names_it():
    text = json.dumps({"act_width": 8, "array_size": 4})
    with pytest.raises(ValueError, match=r"unknown configuration parameter\(s\) 'array_size'"):
        AccelConfig.from_json(text)


def test_json_with_bad_value_names_the_parameter():
    with pytest.raises(ValueError, match=r"AccelConfig\.array_rows .* got 0"):
        AccelConfig.from_json(json.dumps({"array_rows": 0}))


def test_invalid_json_and_unknown_preset_are_explained(tmp_path):
    with pytest.raises(ValueError, match="not valid JSON"):
        AccelConfig.from_json("{")
    with pytest.raises(ValueError, match=r"unknown preset 'huge'; choose one of default, large, tiny"):
        AccelConfig.preset("huge")
    with pytest.raises(ValueError, match="neither a preset"):
        AccelConfig.load("huge")


def test_digest_changes_with_any_parameter():
    base = AccelConfig()
    assert base.digest() == AccelConfig().digest()
    assert base.replace(array_rows=4).digest() != base.digest()


def test_presets_are_ordered_by_size():
    tiny, default, large = PRESETS["tiny"], PRESETS["default"], PRESETS["large"]
    assert tiny.array_rows * tiny.array_cols < default.array_rows * default.array_cols
    assert default.array_rows * default.array_cols < large.array_rows * large.array_cols
