"""conv_accel top: register map, generated files, and the cocotb regression via the driver."""

import json
import os
import subprocess

import pytest

from convaccel.hw import PRESETS
from convaccel.hw.conv_accel import (COUNTERS, ERROR_BITS, MAGIC, ConvAccel,
                                    conv_accel_register_map)
from convaccel.scripts.cli import main
from convaccel.sim.driver import decode_error
from convaccel.sim.regression import REGRESSION_CONFIGS


def test_register_map_reads_back_the_build():
    regmap = conv_accel_register_map(PRESETS["default"])
    assert regmap.register("id").reset == MAGIC
    assert regmap.field("build0", "array_rows").reset == 8
    assert regmap.field("build4", "acc_width").reset == PRESETS["default"].acc_width
    assert regmap.field("param_multiplier", "multiplier").width == PRESETS["default"].mult_width


@pytest.mark.parametrize("act_width", [6, 8, 16])
def test_zero_points_register_holds_two_signed_activations(act_width):
    """Map 2.1: zero_points at 0x48, input then output, each act_width bits (two's
    complement, as the host writes them); clamp_high is a signed act_width-bit field."""
    regmap = conv_accel_register_map(PRESETS["tiny"].replace(act_width=act_width))
    register = regmap.register("zero_points")
    assert register.offset == 0x48 and register.reset == 0
    assert [(f.name, f.lsb, f.width, f.access) for f in register.fields] == [
        ("input", 0, act_width, "rw"), ("output", act_width, act_width, "rw")]
    assert regmap.field("mode", "clamp_high").width == act_width
    # zero_points arrived with map version 2.1.
    assert (regmap.field("version", "major").reset, regmap.field("version", "minor").reset) >= (
        2, 1)
    assert regmap.register_at(0x48) is register


def test_wide_bias_is_refused_with_a_clear_message():
    with pytest.raises(ValueError, match="bias_width <= 32 .* got 40"):
        ConvAccel(PRESETS["tiny"].replace(bias_width=40))


def test_error_bits_decode_by_name():
    assert decode_error(0) == []
    assert decode_error(0b1000_0010) == ["short_frame", "exceeds_max"]
    assert decode_error(1 << 8) == ["groups"]
    assert decode_error(0b1110_0000_0000) == ["conv_size", "cancelled", "param_busy"]
    assert len(ERROR_BITS) == 12


def test_register_docs_give_every_error_bit_and_counter_its_meaning():
    regmap = conv_accel_register_map(PRESETS["default"])
    markdown, header = regmap.to_markdown(), regmap.to_c_header()
    fields = {field["name"]: field for register in json.loads(regmap.to_json())["registers"]
              if register["name"] == "error" for field in register["fields"]}
    assert list(fields) == list(ERROR_BITS)
    for bit, (name, meaning) in enumerate(ERROR_BITS.items()):
        assert (fields[name]["lsb"], fields[name]["width"], fields[name]["doc"]) == (
            bit, 1, meaning)
        assert f"| [{bit}] | {name} | ro | 0x0 | {meaning} |" in markdown
        assert f"/* error.{name}: {meaning} */" in header
        assert f"#define CONVACCEL_ERROR_{name.upper()}_SHIFT {bit}u" in header
    for name, (width, meaning) in COUNTERS.items():
        assert regmap.field(name, "count").width == width
        assert meaning in markdown and meaning in header
    assert "hw/conv_accel.py" not in markdown
    assert regmap.field("build5", "array_block").reset == PRESETS["default"].array_block


def test_generate_writes_top_and_register_map_files(tmp_path):
    assert main(["generate", "--preset", "tiny", "--out", str(tmp_path)]) == 0
    assert "module conv_accel(" in (tmp_path / "conv_accel.v").read_text()
    header = (tmp_path / "conv_accel_registers.h").read_text()
    assert "CONVACCEL_CONTROL_OFFSET" in header
    assert "| start |" in (tmp_path / "conv_accel_registers.md").read_text()
    program = tmp_path / "check.c"
    program.write_text('#include "conv_accel_registers.h"\n#include <stdio.h>\n'
                       'int main(void) { printf("%x", (unsigned) CONVACCEL_STATUS_OFFSET); '
                       'return 0; }\n')
    subprocess.run(["gcc", "-o", str(tmp_path / "check"), str(program)], check=True,
                   cwd=tmp_path)
    out = subprocess.run([str(tmp_path / "check")], capture_output=True, text=True, check=True)
    assert out.stdout == "24"


@pytest.mark.cocotb
def test_conv_accel_cocotb_regression(run_bench, sim_config, sim_seed):
    from convaccel.sim.regression import regression_seeds

    # The named layers (the slow part) run with the first seed only.
    others = ["accel_build_registers_read_back", "accel_bad_configurations_then_a_good_layer",
              "accel_reset_in_the_middle_of_a_layer", "accel_interrupt_follows_done",
              "accel_frame_and_parameter_errors", "accel_random_zero_points"]
    first = sim_seed == regression_seeds()[0]
    run_bench("conv_accel", REGRESSION_CONFIGS[sim_config], sim_seed,
              testcase=None if first else others)


@pytest.mark.soak
@pytest.mark.skipif(os.environ.get("SOAK", "0") in ("", "0"),
                    reason="opt-in: SOAK=1 (layers: SOAK_LAYERS, default 300)")
def test_conv_accel_soak(run_bench):
    layers = int(os.environ.get("SOAK_LAYERS", "300"))
    run_dir = run_bench("conv_accel", REGRESSION_CONFIGS["default"], 11,
                        testcase="accel_soak", extra_env={"CONVACCEL_SOAK": str(layers)})
    log = (run_dir / "sim.log").read_text()
    passed = [line for line in log.splitlines() if "random layers passed" in line]
    assert passed, "the soak did not report"
    print(passed[-1].split("soak:", 1)[1].strip())


@pytest.mark.cocotb
def test_layer_benchmark_reports_consistent_figures(tmp_path):
    """`convaccel bench layers` on one named layer (fast backend): fields, hand-counted MACs,
    counters, plot; the cocotb backend agrees."""
    from convaccel.scripts.bench import layers_table, plot_layers, run_layers
    from convaccel.sim.layer_suite import parse_layer_spec

    config = PRESETS["default"]
    (figures,), built, _ = run_layers(["lenet_conv2"], config, fmax_mhz=100.0, mapping="direct")
    assert figures["key"] == "lenet_conv2" and figures["output_beats"] == 5 * 5 * 2
    assert figures["mapping"] == "direct"
    assert figures["real_macs"] == 10 * 10 * 16 * 6 * 5 * 5    # P Q M C R S by hand
    assert figures["pes"] == 64 and figures["ideal_cycles"] == figures["real_macs"] / 64
    counters = figures["counters"]
    assert figures["cycles"] == counters["busy_cycles"] >= figures["ideal_cycles"]
    assert figures["utilization"] == pytest.approx(figures["ideal_cycles"] / figures["cycles"])
    assert figures["array_issue_utilization"] == pytest.approx(
        counters["active_cycles"] / counters["busy_cycles"])
    assert figures["wall_seconds"] > 0
    # 14x14 pixels, one channel group; 25 taps x 2 output tiles x 8 rows, sent once:
    # the weight buffer (4608 beats) replays them for the other 9 blocks (output rows).
    assert figures["pixel_beats"] == 14 * 14
    assert figures["weight_beats"] == 25 * 2 * 8
    # The hardware's beat counters saw exactly those (and the 50 output beats).
    assert (counters["pixel_beats"], counters["weight_beats"], counters["out_beats"]) == (
        14 * 14, 25 * 2 * 8, 5 * 5 * 2)
    # Bytes at 8 lanes of one byte per beat; the least: input 6x14x14, weights
    # 16x6x5x5, pooled output 16x5x5, one byte each.
    assert figures["stream_bytes"] == (14 * 14 + 25 * 2 * 8 + 5 * 5 * 2) * 8
    assert figures["min_bytes"] == 6 * 14 * 14 + 16 * 6 * 5 * 5 + 16 * 5 * 5
    assert figures["traffic_ratio"] == pytest.approx(figures["stream_bytes"] / figures["min_bytes"])
    assert figures["gops_at_fmax"] == pytest.approx(
        2 * figures["real_macs"] / (figures["cycles"] / 100e6) / 1e9)
    assert figures["peak_gops"] == pytest.approx(2 * 64 * 0.1)
    assert figures["gops_at_fmax"] == pytest.approx(figures["peak_gops"] * figures["utilization"])
    # The cocotb program player gives the same cycles and counters (and is slower).
    (slow,), _, _ = run_layers(["lenet_conv2"], config, backend="cocotb", mapping="direct")
    assert (slow["cycles"], slow["counters"]) == (figures["cycles"], figures["counters"])
    table = layers_table([figures])
    assert "| LeNet-5 conv2" in table and "GOPS @ 100.0 MHz" in table
    assert f"| {figures['stream_bytes']} ({figures['traffic_ratio']:.1f}x) |" in table
    png = plot_layers([figures], tmp_path / "layers.png", config)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # A typed layer gives the same row: LeNet conv2 typed gives its figures.
    typed = parse_layer_spec("c=6,h=14,w=14,m=16,k=5,act=relu,pool=max:2")
    (mine,), _, _ = run_layers([], config, specs={"mine": typed}, mapping="direct")
    assert mine["key"] == "mine" and mine["real_macs"] == figures["real_macs"]
    assert (mine["cycles"], mine["counters"]) == (figures["cycles"], figures["counters"])
    # Mapped (the default): C = 6 of 8 rows, so the 5 width taps fold into 30
    # channels (4 pixel beats per position) over the 10 output columns, an
    # R x 1 kernel: 5 taps x 4 channel groups x 2 output tiles x 8 rows of
    # weights; the layer's own MACs, fewer cycles.
    (folded,), _, _ = run_layers(["lenet_conv2"], config)
    assert folded["mapping"] == "width taps in rows"
    assert folded["pixel_beats"] == 14 * 10 * 4 and folded["weight_beats"] == 5 * 4 * 2 * 8
    assert folded["real_macs"] == figures["real_macs"] and folded["cycles"] < figures["cycles"]
    assert "| width taps in rows |" in layers_table([figures, folded])
