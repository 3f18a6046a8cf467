"""Generated stream docs (hw/stream_format.py) and the driver written only from them.

The fast tests check the generated orders two ways against the cocotb
driver's packing code (``ConvLayer``): through :class:`StreamFormat`'s own
Python and through :mod:`convaccel.sim.json_driver`, which evaluates the
JSON's formulas and loop nests. The cocotb test runs that JSON-only driver on
the ``conv_accel`` RTL.
"""

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from convaccel.hw import PRESETS
from convaccel.hw.conv_accel import conv_accel_register_map
from convaccel.hw.stream_format import STREAMS, Element, StreamFormat, StreamLayer
from convaccel.scripts.cli import main
from convaccel.sim.benches.conv_core_bench import layer_from
from convaccel.sim.json_driver import Registers, Streams, evaluate
from convaccel.sim.regression import REGRESSION_CONFIGS

DOCS = Path(__file__).resolve().parents[1] / "docs" / "conv_accel_streams.md"


def register_settings(layer) -> dict:
    """A ConvLayer's layer registers, as a host writes them."""
    fields = layer.layer_fields()
    conv = fields["conv"]
    return {
        "shape": {"height": conv["height"], "width": conv["width"]},
        "channels": {"in_channels": conv["channels"], "out_channels": fields["out_channels"]},
        "kernel": {name: conv[name] for name in ("kernel_h", "kernel_w", "stride_h",
                                                 "stride_w", "dilation_h", "dilation_w")},
        "padding": {side: conv[f"pad_{side}"] for side in ("top", "bottom", "left", "right")},
        "groups": {"groups": fields["groups"]},
        "mode": {name: fields[name] for name in ("pool_enable", "pool_kernel", "pool_stride")},
    }


def stream_layer(settings: dict) -> StreamLayer:
    flat = {name: value for register in settings.values() for name, value in register.items()}
    for side in ("top", "bottom", "left", "right"):
        flat[f"pad_{side}"] = flat.pop(side)
    return StreamLayer(**flat)


def words(beats, bits: int) -> list[int]:
    """Lane lists (lane 0 first) as tdata words."""
    return [sum((int(value) & ((1 << bits) - 1)) << (lane * bits)
                for lane, value in enumerate(beat)) for beat in beats]


def sample_layers(cfg):
    """Dense, strided, dilated + pooled, depthwise and 2-group layers, scaled to ``cfg``."""
    rng = np.random.default_rng(5)
    k = min(3, cfg.max_kernel)
    layers = [
        layer_from(cfg, rng, "dense same", 3, 7, 11, 5, k, k, padding=(1, 1, 1, 1)),
        layer_from(cfg, rng, "strided", 2, 8, 8, 3, k, k, stride=(2, 2)),
        layer_from(cfg, rng, "dilated + avg pool", 2, 8, 8, 3, k, k, dilation=(2, 1),
                   padding=(0, 2, 1, 0), pool=("avg", 2, 2), activation="relu"),
        layer_from(cfg, rng, "depthwise", 4, 6, 6, 4, k, k, groups="depthwise"),
        layer_from(cfg, rng, "pointwise", 4, 5, 5, 4, 1, 1),
    ]
    if min(cfg.max_in_channels, cfg.max_out_channels) >= 4:
        layers.append(layer_from(cfg, rng, "2 groups", 4, 6, 6, 4, k, 1, groups=2))
    return layers


@pytest.mark.parametrize("name", list(REGRESSION_CONFIGS))
def test_orders_match_the_cocotb_driver_packing(name):
    """Python orders and JSON loop nests both give the beats ConvLayer sends and expects."""
    cfg = REGRESSION_CONFIGS[name]
    fmt = StreamFormat(cfg)
    streams = Streams(fmt.to_json())
    for layer in sample_layers(cfg):
        settings = register_settings(layer)
        y = layer.golden(cfg.act_width, cfg.weight_width)
        arrays = {"x": layer.x, "w": layer.w, "y": y}
        reference = {
            "pixels": words((beat["data"] for beat in layer.pixel_beats(cfg)), cfg.act_width),
            "weights": words(layer.weight_beats(cfg), cfg.weight_width),
            "out": words((beat["data"] for beat in layer.expected_beats(cfg)), cfg.act_width),
        }
        shape = stream_layer(settings)
        assert fmt.beat_counts(shape) == {s: len(beats) for s, beats in reference.items()}
        for stream in STREAMS:
            python = [fmt.tdata(stream, [int(arrays[lane.array][lane.index])
                                         if isinstance(lane, Element) else 0 for lane in lanes])
                      for _, lanes in fmt.beats(stream, shape)]
            assert python == reference[stream], (name, layer.name, stream)
        names = streams.names(settings)
        for stream in STREAMS:
            assert streams.beat_count(stream, names) == len(reference[stream]), (
                name, layer.name, stream)
        for stream in ("pixels", "weights"):
            packed = [beat["data"] for beat in streams.pack(stream, names, arrays)]
            assert packed == reference[stream], (name, layer.name, stream)
        beats = [{"data": word, "last": int(index == len(reference["out"]) - 1)}
                 for index, word in enumerate(reference["out"])]
        unpacked, problems = streams.unpack("out", names, beats, {"y": y.shape})
        assert not problems and (unpacked["y"] == y).all(), (name, layer.name, problems)


def test_unpacking_reports_broken_layout_rules():
    cfg = PRESETS["tiny"]
    streams = Streams(StreamFormat(cfg).to_json())
    layer = layer_from(cfg, np.random.default_rng(1), "odd M", 2, 3, 3, 3, 1, 1)
    names = streams.names(register_settings(layer))
    y = layer.golden(cfg.act_width, cfg.weight_width)
    good = words((beat["data"] for beat in layer.expected_beats(cfg)), cfg.act_width)
    beats = [{"data": word, "last": 0} for word in good]
    beats[1]["data"] |= 5 << 8     # lane 1 of group 1 is channel 3 >= M: must read 0
    _, problems = streams.unpack("out", names, beats, {"y": y.shape})
    assert problems == ["out beat 1 lane 1: 5, the JSON says 0",
                        f"out beat {len(beats) - 1}: tlast 0"]


def test_grouped_layers_skip_the_all_zero_tiles():
    """Depthwise 3x3, C = M = 16 on the 8x8 build: each chunk feeds one tile of two."""
    fmt = StreamFormat(dataclasses.replace(PRESETS["default"], weight_buffer_depth=0))
    layer = StreamLayer(height=4, width=4, in_channels=16, out_channels=16, kernel_h=3,
                        kernel_w=3, groups=16)
    assert [fmt.tile_range(layer, g) for g in range(2)] == [(0, 0), (1, 1)]
    # P = Q = 2: one block per output row (blocks end at row ends), each 9 taps x 2
    # chunks x 1 tile x 8 rows; a dense layer would send 2 tiles per chunk.
    assert fmt.beat_counts(layer)["weights"] == 2 * 9 * 2 * 1 * 8
    example = fmt.to_dict()["example"]["grouped"]
    assert example["weight_beats"] * 2 == example["weight_beats_if_dense"]


@pytest.mark.parametrize("depth, beats", [
    (0, 2 * 144),           # no buffer: both blocks send their 144 beats
    (4608, 144),            # the default buffer holds the block: sent once
    (100, 144 + 44),        # a 100-beat buffer: the second block sends beats 100 ... 143
])
def test_the_weight_buffer_leaves_out_what_it_replays(depth, beats):
    """Depthwise 3x3, C = M = 16 on the 8x8 build: 144 weight beats per block, 2 blocks."""
    cfg = dataclasses.replace(PRESETS["default"], weight_buffer_depth=depth)
    fmt = StreamFormat(cfg)
    layer = StreamLayer(height=4, width=4, in_channels=16, out_channels=16, kernel_h=3,
                        kernel_w=3, groups=16)
    assert fmt.beat_counts(layer)["weights"] == beats
    sent = list(fmt.beats("weights", layer))
    assert len(sent) == beats
    # The second block (row p = 1) starts at its beat 0, at its beat 100 (tile 12 =
    # tap 6, chunk 0, so output tile 0; row 4), or is not sent.
    first_of_second = {0: [(1, 0, 0, 0)], 4608: [], 100: [(1, 12, 0, 4)]}[depth]
    assert [(b["p"], b["kt"], b["mt"], b["i"]) for b, _ in sent[144:145]] == first_of_second
    names = Streams(fmt.to_json()).names({
        "shape": {"height": 4, "width": 4}, "channels": {"in_channels": 16, "out_channels": 16},
        "kernel": {"kernel_h": 3, "kernel_w": 3, "stride_h": 1, "stride_w": 1,
                   "dilation_h": 1, "dilation_w": 1},
        "padding": dict.fromkeys(("top", "bottom", "left", "right"), 0),
        "groups": {"groups": 16}, "mode": {"pool_enable": 0, "pool_kernel": 1, "pool_stride": 1}})
    assert Streams(fmt.to_json()).beat_count("weights", names) == beats


def test_formulas_refuse_anything_but_integer_arithmetic():
    assert evaluate("ceil_div(C, rows) * 2", {"C": 5, "rows": 2}) == 6
    assert evaluate("sum(g for g in range(n))", {"n": 4}) == 6
    for text in ("__import__('os')", "C.real", "'text'", "[1, 2]", "lambda: 1"):
        with pytest.raises(ValueError, match="not allowed"):
            evaluate(text, {"C": 1})


@pytest.mark.parametrize("name", ["tiny", "default"])
def test_json_refers_to_registers_that_exist(name):
    """Every symbol's register field exists; build values equal the build registers."""
    cfg = PRESETS[name]
    registers = Registers(conv_accel_register_map(cfg).to_json())
    image = StreamFormat(cfg).to_dict()
    for symbol, about in image["symbols"].items():
        register, field = about["register"].split(".")
        assert field in registers.field_names(register), symbol
        if "value" in about:
            assert registers.reset(register, field) == about["value"], symbol
    layouts = {stream: (s["tdata_bits"], s["lanes"], s["lane_bits"])
               for stream, s in image["streams"].items()}
    assert layouts == {"pixels": (-(-cfg.array_rows * cfg.act_width // 8) * 8,
                                  cfg.array_rows, cfg.act_width),
                       "weights": (-(-cfg.array_cols * cfg.weight_width // 8) * 8,
                                   cfg.array_cols, cfg.weight_width),
                       "out": (-(-cfg.array_cols * cfg.act_width // 8) * 8,
                               cfg.array_cols, cfg.act_width)}


def test_worked_example_is_reproduced_by_the_json_driver():
    """The example's tdata column, packed again by the JSON driver from its fill rule."""
    cfg = REGRESSION_CONFIGS["odd"]   # 6-bit activations, 5-bit weights: fill values wrap
    image = StreamFormat(cfg).to_dict()
    example = image["example"]
    layer = example["layer"]

    def wrap(value, bits):
        return (value + (1 << bits - 1)) % (1 << bits) - (1 << bits - 1)

    c, iy, ix = np.indices((layer["C"], layer["H"], layer["W"]))
    m, ci, r, s = np.indices((layer["M"], layer["C"], layer["R"], layer["S"]))
    arrays = {"x": wrap(16 * c + 4 * iy + ix - 20, cfg.act_width),
              "w": wrap(27 * m + 9 * ci + 3 * r + s - 40, cfg.weight_width)}
    streams = Streams(StreamFormat(cfg).to_json())
    settings = {"shape": {"height": layer["H"], "width": layer["W"]},
                "channels": {"in_channels": layer["C"], "out_channels": layer["M"]},
                "kernel": {"kernel_h": layer["R"], "kernel_w": layer["S"], "stride_h": 1,
                           "stride_w": 1, "dilation_h": 1, "dilation_w": 1},
                "padding": {side: layer["pt"] for side in ("top", "bottom", "left", "right")},
                "groups": {"groups": 1},
                "mode": {"pool_enable": 0, "pool_kernel": 1, "pool_stride": 1}}
    names = streams.names(settings)
    for stream in ("pixels", "weights"):
        listed = example["streams"][stream]
        packed = streams.pack(stream, names, arrays)
        assert len(packed) == listed["beats"]
        assert [f"{beat['data']:#x}" for beat in packed[:len(listed["first"])]] == [
            hex(int(entry["tdata"], 16)) for entry in listed["first"]]
    first = example["streams"]["pixels"]["first"][0]
    assert first["indices"] == {"iy": 0, "ix": 0, "g": 0}
    assert first["lanes"] == ["x[0][0][0]", "x[1][0][0]", "x[2][0][0]"]


def test_markdown_has_every_section_and_the_example():
    text = StreamFormat(PRESETS["tiny"]).to_markdown()
    for heading in ("## Protocol", "## Symbols", "## Beat layout", "## Order: pixels",
                    "## Order: weights", "## Order: out", "## Worked example"):
        assert heading in text, heading
    assert "for mt in range(lo(g), hi(g) + 1):" in text
    assert "| 0 | 0 | 0 | 0 | 0 | 0 | `w[0][0][0][0]` | `w[1][0][0][0]` |" in text


def test_generate_writes_the_streams_files(tmp_path):
    assert main(["generate", "--preset", "tiny", "--out", str(tmp_path),
                 "--design", "conv_accel"]) == 0
    assert (tmp_path / "conv_accel_streams.md").read_text() == \
        StreamFormat(PRESETS["tiny"]).to_markdown()
    assert Streams((tmp_path / "conv_accel_streams.json").read_text()).build["rows"] == 2


def test_committed_streams_doc_is_current():
    """docs/conv_accel_streams.md (linked from the README) is the default build's."""
    assert DOCS.read_text() == StreamFormat(PRESETS["default"]).to_markdown(), (
        "regenerate: convaccel generate --preset default --out build/verilog "
        "&& cp build/verilog/conv_accel_streams.md docs/")


@pytest.mark.cocotb
@pytest.mark.parametrize("name", ["tiny", "default"])
def test_json_only_driver_runs_layers_bit_exact_on_the_rtl(request, tmp_path, name):
    """The driver written from the generated JSON alone, on the conv_accel RTL, seed 1.

    Same Verilator build as the conv_accel regression (cached by design and config).
    """
    from convaccel.sim.build import build, run

    cfg = REGRESSION_CONFIGS[name]
    registers = tmp_path / "conv_accel_registers.json"
    streams = tmp_path / "conv_accel_streams.json"
    registers.write_text(conv_accel_register_map(cfg).to_json())
    streams.write_text(StreamFormat(cfg).to_json())
    run(build("conv_accel", cfg), "json_driver_bench", seed=1, pytest_id=request.node.nodeid,
        name=f"json_driver-{name}",
        extra_env={"CONVACCEL_REGISTERS_JSON": str(registers),
                   "CONVACCEL_STREAMS_JSON": str(streams)})
