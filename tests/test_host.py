"""The host runtime without hardware: streams, lowering, passes, programs, the register-level
runtime on a scripted transport. Expected values come from the golden model, the generated
stream formats (hw/stream_format.py) and hand counts."""

import dataclasses

import numpy as np
import pytest

from convaccel.golden import conv_layer
from convaccel.hw import PRESETS
from convaccel.hw.conv_accel import MAGIC, conv_accel_register_map
from convaccel.hw.register_map import RegisterMap
from convaccel.hw.stream_format import Element, StreamFormat, StreamLayer
from convaccel.host import (Accelerator, ConvLayer, DeviceError, TilingError, assemble, lower,
                            pass_layer, plan_passes)
from convaccel.host.layer import hardware_zero_points
from convaccel.host.program import Program, TensorInfo, hardware_step
from convaccel.host.runtime import GoldenRunner, run_program
from convaccel.host.scales import ScaleError, multiplier_shift
from convaccel.host.streams import pack, raster_lanes, unpack, unraster
from convaccel.host.tiling import pass_input
from convaccel.sim.regression import REGRESSION_CONFIGS

TINY, DEFAULT = PRESETS["tiny"], PRESETS["default"]


def random_layer(rng, cfg, c, h, w, m, k=3, groups=1, **kwargs) -> ConvLayer:
    return ConvLayer(
        x=rng.integers(cfg.act_min, cfg.act_max + 1, (c, h, w)),
        w=rng.integers(cfg.weight_min, cfg.weight_max + 1, (m, c // groups, k, k)),
        bias=rng.integers(-3000, 3000, m), multiplier=rng.integers(1, 1 << 12, m),
        shift=rng.integers(10, 18, m), groups=groups, **kwargs)


# -- streams -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(REGRESSION_CONFIGS))
def test_stream_bytes_match_the_generated_stream_format(name):
    """Pixel, weight and output bytes: tdata words of StreamFormat's own beat orders."""
    cfg = REGRESSION_CONFIGS[name]
    fmt = StreamFormat(cfg)
    rng = np.random.default_rng(1)
    c, m = min(3, cfg.max_in_channels), min(3, cfg.max_out_channels)
    layer = random_layer(rng, cfg, c, 6, 7, m, k=min(3, cfg.max_kernel), padding=(1, 0, 0, 1),
                         pool=("max", 2, 2))
    geometry = layer.geometry()
    spec = StreamLayer(
        height=6, width=7, in_channels=c, out_channels=m, kernel_h=geometry["kernel_h"],
        kernel_w=geometry["kernel_w"], pad_top=1, pad_right=1, pool_enable=1, pool_kernel=2,
        pool_stride=2)
    arrays = {"x": layer.x, "w": layer.w, "y": layer.golden(cfg.act_width, cfg.weight_width)}

    def words(stream):
        size = fmt.layout(stream)["tdata_bits"] // 8
        return b"".join(fmt.tdata(stream, [int(arrays[lane.array][lane.index])
                                            if isinstance(lane, Element) else 0
                                            for lane in lanes]).to_bytes(size, "little")
                        for _, lanes in fmt.beats(stream, spec))

    assert pack(cfg, "pixels", layer.pixel_lanes(cfg)) == words("pixels")
    assert pack(cfg, "weights", layer.weight_lanes(cfg)) == words("weights")
    assert pack(cfg, "out", layer.expected_lanes(cfg)) == words("out")


@pytest.mark.parametrize("name", list(REGRESSION_CONFIGS))
def test_pack_and_unpack_are_inverse(name):
    cfg = REGRESSION_CONFIGS[name]
    rng = np.random.default_rng(2)
    y = rng.integers(cfg.act_min, cfg.act_max + 1, (5, 3, 4))
    lanes = raster_lanes(y, cfg.array_cols)
    data = pack(cfg, "out", lanes)
    assert len(data) == len(lanes) * StreamFormat(cfg).layout("out")["tdata_bits"] // 8
    np.testing.assert_array_equal(unraster(unpack(cfg, "out", data), 5, 3, 4), y)
    with pytest.raises(ValueError, match="do not fit"):
        pack(cfg, "out", lanes + (1 << cfg.act_width))


# -- one layer -----------------------------------------------------------------------------


def test_the_input_zero_point_folds_into_the_bias():
    # bias 10, zx = 3, weights summing to 1 + 2 + 3 + 4 = 10: 10 - 3 * 10 = -20.
    layer = ConvLayer(x=None, input_shape=(1, 4, 4), w=np.array([[[[1, 2], [3, 4]]]]),
                      bias=np.array([10]), input_zero_point=3)
    assert layer.folded_bias().tolist() == [-20]
    assert layer.param_writes()[0][1]["bias"] == -20
    # The hardware's sum with padding zx plus the folded bias is the golden layer's sum.
    rng = np.random.default_rng(3)
    x = rng.integers(-128, 128, (2, 5, 5))
    layer = random_layer(rng, DEFAULT, 2, 5, 5, 3, padding=1, input_zero_point=-37)
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1)), constant_values=-37)
    hardware_sum = conv_layer(padded, layer.w, layer.folded_bias(), 1, 0, bits=32,
                              return_intermediates=True)["acc"]
    golden_sum = conv_layer(x, layer.w, layer.bias, 1, 0, padding=1, bits=32,
                            input_zero_point=-37, return_intermediates=True)["acc"]
    np.testing.assert_array_equal(hardware_sum, golden_sum)


def test_a_folded_bias_outside_bias_width_is_refused():
    layer = ConvLayer(x=np.zeros((1, 3, 3), dtype=np.int64), w=np.full((1, 1, 3, 3), 127),
                      bias=np.array([2 ** 31 - 10]), input_zero_point=-128)
    assert any("bias with the input zero point folded in" in problem
               for problem in layer.misfits(DEFAULT))


def test_zero_points_register_is_written_when_the_build_has_one():
    regmap = conv_accel_register_map(TINY)
    layer = ConvLayer(x=None, input_shape=(1, 4, 4), w=np.ones((1, 1, 1, 1), dtype=np.int64),
                      activation="clamp", clamp_high=-3, input_zero_point=-5,
                      output_zero_point=-100)
    # The build's register: two's complement act_width-bit fields side by side.
    assert hardware_zero_points(regmap)
    register = regmap.register("zero_points")
    assert register.offset == 0x48
    assert [(f.name, f.lsb, f.width) for f in register.fields] == [("input", 0, 8),
                                                                     ("output", 8, 8)]
    assert regmap.field("mode", "clamp_high").width == TINY.act_width
    fields = layer.register_fields(regmap)
    assert fields["zero_points"] == {"input": 251, "output": 156}
    assert fields["mode"]["clamp_high"] == 253
    assert register.pack(fields["zero_points"]) == 0x9CFB
    # A map without the register (before version 2.1) gets no zero_points write.
    without = RegisterMap(regmap.name, tuple(r for r in regmap.registers
                                             if r.name != "zero_points"))
    assert "zero_points" not in layer.register_fields(without)


def test_lowering_writes_the_layer_registers_and_every_channel():
    rng = np.random.default_rng(4)
    layer = random_layer(rng, TINY, 2, 5, 6, 3, padding=(1, 0, 2, 1), stride=(2, 1),
                         pool=("avg", 2, 1), activation="relu", name="lowered")
    lowered = lower(layer, TINY)
    regmap = conv_accel_register_map(TINY)
    written = {}
    for register, offset, word in lowered.writes:
        assert regmap.register(register).offset == offset
        written.setdefault(register, []).append(regmap.register(register).unpack(word))
    assert written["shape"] == [{"height": 5, "width": 6}]
    assert written["channels"] == [{"in_channels": 2, "out_channels": 3}]
    assert written["padding"] == [{"top": 1, "bottom": 0, "left": 2, "right": 1}]
    assert written["mode"][0]["pool_mode"] == 1 and written["mode"][0]["activation"] == 1
    assert [w["channel"] for w in written["param_channel"]] == [0, 1, 2]
    assert [w["shift"] for w in written["param_shift"]] == layer.shift.tolist()
    assert len(written["param_write"]) == 3
    # 5x6 pixels, one 2-lane group per 2 channels; 3 channels in 2 output groups.
    assert lowered.pixel_bytes == 5 * 6 * 1 * 2
    p, q = layer.out_size()
    assert lowered.out_bytes == p * q * 2 * 2
    assert lowered.pixels(TINY, layer.x) == pack(TINY, "pixels", layer.pixel_lanes(TINY))
    np.testing.assert_array_equal(
        lowered.decode(TINY, pack(TINY, "out", layer.expected_lanes(TINY))), layer.golden())


# -- passes ----------------------------------------------------------------------------------


def random_big_layer(rng, cfg):
    """A random layer up to 4x beyond ``cfg``'s image size, channels and padding."""
    groups = int(rng.choice([1, 1, 2, 3 * cfg.max_in_channels]))
    if groups > 3:
        c = m = groups
    else:
        c = groups * int(rng.integers(1, cfg.max_in_channels // groups + 1))
        m = groups * int(rng.integers(1, 2 * cfg.max_out_channels // groups + 2))
    k = int(rng.integers(1, min(3, cfg.max_kernel) + 1))
    pool = None
    if rng.random() < 0.5:
        pool = (str(rng.choice(["max", "avg"])), int(rng.integers(1, cfg.max_pool_kernel + 1)),
                int(rng.integers(1, cfg.max_pool_stride + 1)))
    activation = str(rng.choice(["none", "relu", "clamp"]))
    return random_layer(
        rng, cfg, c, int(rng.integers(k, 4 * cfg.max_height)),
        int(rng.integers(k, 4 * cfg.max_width)), m, k=k, groups=groups,
        stride=tuple(int(v) for v in rng.integers(1, min(2, cfg.max_stride) + 1, 2)),
        dilation=tuple(int(v) for v in rng.integers(1, min(2, cfg.max_dilation) + 1, 2)),
        padding=tuple(int(v) for v in rng.integers(0, cfg.max_padding + 3, 4)), pool=pool,
        activation=activation,
        clamp_high=int(rng.integers(0, cfg.act_max)) if activation == "clamp" else None)


@pytest.mark.parametrize("name", ["tiny", "odd"])
def test_passes_of_layers_beyond_the_maxima_are_bit_exact(name):
    """Each pass fits the build; the assembled passes equal the whole layer's golden output."""
    cfg = REGRESSION_CONFIGS[name]
    rng = np.random.default_rng(5)
    checked = 0
    while checked < 60:
        layer = random_big_layer(rng, cfg)
        try:
            want = layer.golden(cfg.act_width, cfg.weight_width)
        except ValueError:
            continue            # kernel or pooling window larger than the image
        passes = plan_passes(layer, cfg)
        outputs = []
        for part in passes:
            single = pass_layer(layer, part, layer.x)
            assert single.misfits(cfg) == [], (single.name, single.misfits(cfg))
            outputs.append(single.golden(cfg.act_width, cfg.weight_width))
        np.testing.assert_array_equal(assemble(layer, passes, outputs), want)
        checked += 1


def test_hand_counted_passes():
    # 100x100 3x3 same on default (64x64 at most): 62 rows need 64 input rows, the other
    # 38 the rest: 2 row x 2 column stripes; 100 output channels: 64 + 36.
    rng = np.random.default_rng(6)
    layer = random_layer(rng, DEFAULT, 3, 100, 100, 100, padding=1)
    passes = plan_passes(layer, DEFAULT)
    assert len(passes) == 2 * 2 * 2
    assert sorted({p.out_rows for p in passes}) == [(0, 63), (63, 100)]
    assert sorted({p.in_rows for p in passes}) == [(0, 64), (62, 100)]
    assert sorted({p.out_channels for p in passes}) == [(0, 64), (64, 100)]
    first = [p for p in passes if p.out_rows == (0, 63) and p.out_cols == (0, 63)][0]
    assert first.padding == (1, 0, 1, 0)
    # Depthwise with 200 channels: groups of 64 input and output channels at a time.
    depthwise = random_layer(rng, DEFAULT, 200, 8, 8, 200, groups=200)
    assert [p.groups for p in plan_passes(depthwise, DEFAULT)] == [64, 64, 64, 8]


@pytest.mark.parametrize("changes, parameter", [
    (dict(c=65, m=4), "raise max_in_channels to at least 65"),
    (dict(c=4, m=4, k=9), "raise max_kernel"),
    (dict(c=4, m=4, stride=(5, 1)), "raise max_stride"),
])
def test_what_passes_cannot_split_is_refused_with_the_parameter(changes, parameter):
    rng = np.random.default_rng(7)
    layer = random_layer(rng, DEFAULT, changes.pop("c"), 20, 20, changes.pop("m"),
                         k=changes.pop("k", 3), name="big", **changes)
    with pytest.raises(TilingError, match=rf"layer 'big': .*{parameter}"):
        plan_passes(layer, DEFAULT)


def test_padding_beyond_the_build_is_sent_as_zero_point_rows():
    rng = np.random.default_rng(8)
    layer = random_layer(rng, TINY, 2, 5, 5, 2, padding=(4, 0, 0, 3), input_zero_point=0)
    (part,) = plan_passes(layer, TINY)
    assert part.padding == (0, 0, 0, 0) and part.in_rows == (-4, 5) and part.in_cols == (0, 8)
    x = pass_input(layer, part, layer.x)
    assert x.shape == (2, 9, 8) and not x[:, :4].any() and not x[:, :, 5:].any()


# -- programs ---------------------------------------------------------------------------------


def two_layer_program(rng, cfg) -> tuple[Program, list[ConvLayer]]:
    first = random_layer(rng, cfg, 2, 30, 20, 4, padding=1, activation="relu", name="first")
    second = random_layer(rng, cfg, 4, 30, 20, 3, pool=("max", 2, 2), name="second")
    steps = []
    for name, source, target, layer in (("first", "x", "a", first), ("second", "a", "y", second)):
        template = dataclasses.replace(layer, x=None, input_shape=layer.in_shape)
        out_shape = (1, layer.out_channels, *template.out_size())
        steps.append(hardware_step(name, template, cfg, input=source, output=target,
                                   out_shape=out_shape))
    program = Program(cfg, [TensorInfo("x", [1, 2, 30, 20], "int8")],
                      [TensorInfo("y", [1, 3, 14, 9], "int8")], steps)
    return program, [first, second]


def test_a_program_runs_and_survives_save_and_load(tmp_path):
    rng = np.random.default_rng(9)
    program, (first, second) = two_layer_program(rng, TINY)
    from convaccel.host.host_ops import QuantParams
    program.inputs[0].quant = program.outputs[0].quant = QuantParams(1.0, 0, "int8")
    # 30x20 on a 12x12 build: 3 row x 2 column stripes each (halos and pooling windows).
    assert [len(step.passes) for step in program.steps] == [3 * 2, 3 * 2]
    x = first.x[None]
    outputs, reports = run_program(program, {"x": x}, GoldenRunner())
    want = conv_layer(first.golden(), second.w, second.bias, second.multiplier, second.shift,
                      pool=("max", 2, 2))
    np.testing.assert_array_equal(outputs["y"][0], want)
    assert outputs["y"].dtype == np.int8
    loaded = Program.load(program.save(tmp_path / "two.program"))
    again, _ = run_program(loaded, {"x": x}, GoldenRunner())
    np.testing.assert_array_equal(again["y"], outputs["y"])
    for ours, theirs in zip(program.hardware_steps(), loaded.hardware_steps()):
        assert [lowered.writes for lowered in ours.lowered] == [
            [tuple(w) for w in lowered.writes] for lowered in theirs.lowered]
        assert [lowered.weights for lowered in ours.lowered] == [
            lowered.weights for lowered in theirs.lowered]
    with pytest.raises(ValueError, match="is not a convaccel program"):
        (tmp_path / "junk").write_bytes(b"junk")
        Program.load(tmp_path / "junk")


# -- the register-level runtime on a scripted transport -------------------------------------------


class ScriptedTransport:
    """Answers reads from the register map's reset values and a table; keeps what it is sent;
    returns prepared output bytes."""

    def __init__(self, cfg, output: bytes = b"", error: int = 0):
        self.regmap = conv_accel_register_map(cfg)
        self.values = {r.offset: r.reset for r in self.regmap.registers}
        self.values[self.regmap.register("error").offset] = error
        self.writes, self.sent, self.output = [], {}, output

    def write32(self, offset, value):
        self.writes.append((offset, value))

    def read32(self, offset):
        return self.values.get(offset, 0)

    def send(self, stream, data):
        self.sent[stream] = data

    def receive(self, stream, size):
        assert stream == "out" and size == len(self.output)
        return self.output

    def wait_done(self):
        pass


def test_the_accelerator_reads_its_build_and_runs_a_lowered_layer():
    cfg = PRESETS["tiny"]
    rng = np.random.default_rng(10)
    layer = random_layer(rng, cfg, 2, 4, 4, 3)
    lowered = lower(layer, cfg)
    transport = ScriptedTransport(cfg, pack(cfg, "out", layer.expected_lanes(cfg)))
    accelerator = Accelerator(transport)
    assert accelerator.config == cfg
    run = accelerator.run(lowered, layer.x)
    np.testing.assert_array_equal(run.output, layer.golden())
    start = conv_accel_register_map(cfg).register("control")
    assert transport.writes == [(offset, word) for _, offset, word in lowered.writes] + [
        (start.offset, start.pack({"start": 1}))]
    assert transport.sent == {"weights": lowered.weights, "pixels": lowered.pixels(cfg, layer.x)}
    assert transport.values[conv_accel_register_map(cfg).register("id").offset] == MAGIC
    with pytest.raises(DeviceError, match="another build: array_rows 8 \\(device: 2\\)"):
        accelerator.check_build(cfg.replace(array_rows=8, array_cols=8, max_in_channels=8,
                                            max_out_channels=8))
    failing = Accelerator(ScriptedTransport(cfg, b"", error=0b1000_0010), cfg)
    lowered.out_bytes = 0
    with pytest.raises(DeviceError, match="error bits short_frame, exceeds_max"):
        failing.run(lowered, layer.x)


# -- scales ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mult_width", [8, 16, 24])
def test_scales_become_multiplier_and_shift_within_the_stated_error(mult_width):
    cfg = DEFAULT.replace(mult_width=mult_width)
    scales = np.exp(np.random.default_rng(11).uniform(np.log(1e-6), np.log(100), 300))
    multiplier, shift, error = multiplier_shift(scales, cfg)
    real = multiplier / 2.0 ** shift
    assert error == pytest.approx(np.max(np.abs(real - scales) / scales))
    assert error <= 2.0 ** -mult_width
    assert multiplier.max() < 2 ** mult_width and shift.max() <= cfg.max_shift
    with pytest.raises(ScaleError, match="raise shift_width"):
        multiplier_shift([2.0 ** -70], cfg)
    with pytest.raises(ScaleError, match="raise mult_width"):
        multiplier_shift([2.0 ** mult_width], cfg)


def test_the_host_package_never_imports_the_simulator():
    """host/ imports hw (register map, stream formats) and golden (checks), never sim or
    scripts: a board's software runs it without cocotb."""
    import ast
    from pathlib import Path

    for path in (Path(__file__).resolve().parents[1] / "host").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                package = (node.module or "").split(".")[0]
                assert package not in ("sim", "scripts"), f"{path.name} imports {node.module}"
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [node.module] if isinstance(node, ast.ImportFrom) else [
                    alias.name for alias in node.names]
                assert not any(str(n).startswith(("convaccel.sim", "convaccel.scripts", "cocotb"))
                               for n in names), f"{path.name} imports {names}"


# -- fully connected layers on a batch --------------------------------------------------------


@pytest.mark.parametrize("c, side, m, stride", [(16, 4, 10, (1, 1)), (5, 1, 7, (1, 1)),
                                                 (3, 2, 4, (2, 2))])
def test_a_batch_side_by_side_equals_each_input_alone(c, side, m, stride):
    """The golden model of the batched layer, split, equals the layer on each input."""
    from convaccel.host.batch import batched_layer, split_batch
    rng = np.random.default_rng(c + side)
    layer = random_layer(rng, DEFAULT, c, side, side, m, k=side, stride=stride,
                         activation="relu")
    inputs = rng.integers(-128, 128, (6, c, side, side))
    batched = batched_layer(layer, inputs)
    assert batched.in_shape == (c, side, 6 * side) and batched.conv_size() == (1, 6)
    for x, out in zip(inputs, split_batch(batched.golden()), strict=True):
        np.testing.assert_array_equal(out, conv_layer(x, layer.w, layer.bias, layer.multiplier,
                                                      layer.shift, activation="relu"))


def test_batch_limits_come_from_max_width_and_max_stride():
    from convaccel.host.batch import batch_limit, batched_layer
    rng = np.random.default_rng(3)
    fc = random_layer(rng, DEFAULT, 16, 4, 4, 64, k=4)
    assert batch_limit(fc, DEFAULT) == 64 // 4          # max_width 64, 4 wide inputs
    assert batch_limit(random_layer(rng, DEFAULT, 4, 5, 5, 8, k=5), DEFAULT) == 1   # 5 > max_stride
    assert batch_limit(random_layer(rng, DEFAULT, 4, 1, 1, 8, k=1), DEFAULT) == 64
    conv = random_layer(rng, DEFAULT, 4, 6, 6, 8, k=3)
    assert batch_limit(conv, DEFAULT) == 1
    with pytest.raises(ValueError, match="not fully connected"):
        batched_layer(conv, conv.x[None])
    with pytest.raises(ValueError, match="batch must have shape"):
        batched_layer(fc, fc.x)
