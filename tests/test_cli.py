"""The `convaccel` command line: in-process checks, the installed entry point, the demos."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from convaccel import __version__
from convaccel.hw import DESIGNS, PRESETS, AccelConfig
from convaccel.scripts.cli import PUBLISHED_SYNTH, _published_fmax, main
from convaccel.sim.waves import vcd_signals

#: The console script pip installed next to this Python (what a user runs).
ENTRY = Path(sys.executable).with_name("convaccel")


def convaccel(*args, cwd=None, env=None, timeout=60) -> subprocess.CompletedProcess:
    """Run the real ``convaccel`` entry point; return the finished process."""
    return subprocess.run([str(ENTRY), *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env={**os.environ, **(env or {})}, timeout=timeout)


def assert_one_line_error(result, *phrases):
    """Non-zero exit, one line on stderr naming the problem, no traceback."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0, result
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for phrase in phrases:
        assert phrase in lines[0], lines[0]


def test_console_script_help_lists_the_subcommands():
    result = convaccel("--help")
    assert result.returncode == 0
    for command in ("generate", "simulate", "demo", "lint", "bench", "config", "clean"):
        assert command in result.stdout


def test_version_from_the_script_the_module_and_the_package():
    assert __version__ == "0.1.0"
    assert convaccel("--version").stdout.strip() == f"convaccel {__version__}"
    module = subprocess.run([sys.executable, "-m", "convaccel", "--version"],
                            capture_output=True, text=True, cwd="/")
    assert module.returncode == 0 and module.stdout.strip() == f"convaccel {__version__}"


@pytest.mark.parametrize("preset", ["tiny", "default"])
def test_generate_writes_verilog_for_every_design(preset, tmp_path, capsys):
    assert main(["generate", "--preset", preset, "--out", str(tmp_path)]) == 0
    for design in DESIGNS:
        text = (tmp_path / f"{design}.v").read_text()
        assert f"module {design}(" in text
    assert AccelConfig.from_json((tmp_path / "config.json").read_text()) == PRESETS[preset]
    # Only the outputs: the staging folder is gone.
    assert not [p for p in tmp_path.parent.iterdir() if p.name.startswith(f".{tmp_path.name}-")]


def test_generate_from_a_config_file(tmp_path):
    custom = PRESETS["tiny"].replace(act_width=6, weight_width=4)
    path = tmp_path / "mine.json"
    path.write_text(custom.to_json())
    out = tmp_path / "out"
    assert main(["generate", "--config", str(path), "--out", str(out), "--design", "mac_pe"]) == 0
    text = (out / "mac_pe.v").read_text()
    # 6-bit activations; weight-load beat = 4-bit weight + 1-bit row + valid.
    assert "input [5:0] act_in;" in text and "input [5:0] wload_in;" in text
    assert not (out / "requant_activation.v").exists()


def test_bad_preset_and_bad_design_are_clear_errors(tmp_path, capsys):
    assert main(["generate", "--preset", "huge", "--out", str(tmp_path)]) == 2
    assert "invalid choice: 'huge' (choose from 'default', 'large', 'tiny')" in \
        capsys.readouterr().err
    assert main(["generate", "--out", str(tmp_path), "--design", "fft"]) == 2
    assert "unknown design 'fft'" in capsys.readouterr().err


def test_config_prints_json(capsys):
    assert main(["config", "--preset", "tiny"]) == 0
    assert AccelConfig.from_dict(json.loads(capsys.readouterr().out)) == PRESETS["tiny"]


def test_partial_config_names_what_comes_from_the_preset(tmp_path):
    partial = tmp_path / "partial.json"
    partial.write_text('{"array_rows": 4, "array_cols": 4}')
    result = convaccel("config", "--config", partial)
    assert result.returncode == 0
    assert AccelConfig.from_json(result.stdout) == PRESETS["default"].replace(array_rows=4,
                                                                              array_cols=4)
    assert "leaves 18 of 20 parameters to the default preset: act_width," in result.stderr


def write_config(folder: Path, name: str, data: dict) -> Path:
    path = folder / name
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("data, phrases", [
    ({"pool_support": False}, ["need pool_support=True, got False"]),
    ({"bias_width": 40}, ["bias_width <= 32", "got 40"]),
    ({"array_cols": 8, "max_out_channels": 2}, ["array_cols (8) must not exceed"]),
    ({"max_in_channels": 4096, "max_width": 4096}, ["window line buffer would have"]),
])
def test_generate_refuses_a_config_it_cannot_build_and_writes_nothing(tmp_path, data, phrases):
    config = write_config(tmp_path, "bad.json", data)
    started = time.monotonic()
    result = convaccel("generate", "--config", config, "--out", tmp_path / "out")
    assert time.monotonic() - started < 10
    assert_one_line_error(result, "convaccel generate: error: ", "bad.json", *phrases)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.json"]


def test_output_paths_are_checked_before_the_work(tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("")
    assert_one_line_error(convaccel("generate", "--out", blocker), "afile is a file, not a folder")
    assert_one_line_error(convaccel("generate", "--out", blocker / "sub"),
                          "cannot create", "afile is a file")
    # The bench would run for minutes before writing its JSON: refused at once.
    assert_one_line_error(convaccel("bench", "layers", "--json", blocker / "x.json"),
                          "convaccel bench layers: error: cannot write", "afile is a file")
    assert_one_line_error(convaccel("demo", "--out", blocker), "afile is a file")
    assert_one_line_error(convaccel("bench", "layers", "--synth-json", tmp_path / "none.json"),
                          "cannot read synthesis results", "No such file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into read-only folders")
def test_a_read_only_output_folder_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    assert_one_line_error(convaccel("generate", "--out", locked / "out"), "permission denied")


@pytest.mark.parametrize("args, phrases", [
    (["demo", "digits", "--images", "0"], ["--images: must be at least 1, got 0"]),
    (["demo", "digits", "--images", "-3"], ["must be at least 1, got -3"]),
    (["demo", "digits", "--fmax", "-5"], ["--fmax: must be a positive number of MHz, got -5"]),
    (["demo", "digits", "--fmax", "0"], ["got 0"]),
    (["demo", "digits", "--fmax", "nan"], ["got nan"]),
    (["demo", "--images", "3", "--fmax", "100"], ["--images and --fmax apply only to 'demo "
                                                  "digits'"]),
    (["demo", "lenet", "--images", "3"], ["--images applies only to 'demo digits'"]),
    (["demo", "digits", "--activations", "symmetric"],
     ["--activations apply only to 'demo onnx'"]),
    (["bench", "windows", "--preset", "nope"], ["unrecognized arguments: --preset nope"]),
    (["bench", "array", "--preset", "tiny"], ["unrecognized arguments: --preset tiny"]),
    (["bench", "layers", "--fmax", "100", "--synth-json", "x.json"], ["not allowed with"]),
    (["bench", "layers", "--spec", "c=1,h=8,w=8,m=2,q=3"],
     ["layer spec 'c=1,h=8,w=8,m=2,q=3': 'q=3' is not KEY=VALUE"]),
    (["bench", "layers", "--spec", "c=1,h=8,w=8,m=2"], ["missing k (or r and s)"]),
    (["config", "--preset", "tiny", "--config", "default"],
     ["argument --config: not allowed with argument --preset"]),
    (["config", "--config", "tiny"], ["'tiny' is a preset: use --preset tiny"]),
    (["demo", "digits", "--preset", "tiny"],
     ["layer 'digits conv1' does not fit the build (2x2 array): output channels 8 > "
      "max_out_channels 4"]),
])
def test_options_that_do_not_apply_or_do_not_fit_are_refused_in_one_line(args, phrases,
                                                                          tmp_path):
    started = time.monotonic()
    result = convaccel(*args, cwd=tmp_path)
    assert time.monotonic() - started < 20
    assert_one_line_error(result, *phrases)
    assert list(tmp_path.iterdir()) == []    # nothing written, nothing built


def test_malformed_json_names_the_file(tmp_path):
    config = tmp_path / "broken.json"
    config.write_text('{"array_rows": 4,')
    assert_one_line_error(convaccel("config", "--config", config),
                          f"{config} is not valid JSON")


def test_a_layer_that_does_not_fit_is_refused_before_anything_is_built(tmp_path):
    # A 2x2 image cannot hold LeNet's kernel, even scaled to 3x3 without padding.
    config = write_config(tmp_path, "small.json", {**PRESETS["tiny"].to_dict(),
                                                   "max_height": 2, "max_width": 2})
    for args in (["demo"], ["bench", "layers", "--layer", "lenet_conv1"]):
        result = convaccel(*args, "--config", config, cwd=tmp_path)
        assert_one_line_error(result, "does not fit the build", "larger than the padded input")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.json"]


def test_fmax_comes_only_from_the_row_of_the_build_that_ran(tmp_path):
    # Hand-made rows: each build's own ECP5 row counts, an iCE40 row or a row
    # of another build never does. Values are made up so none can be a
    # published figure that happens to match.
    rows = [{"family": "ecp5", "config": PRESETS["tiny"].to_dict(), "fmax_mhz": 11.5},
            {"family": "ice40", "config": PRESETS["default"].to_dict(), "fmax_mhz": 99.0},
            {"family": "ecp5", "config": {"array_rows": -1}, "fmax_mhz": 98.0},
            {"family": "ecp5", "config": PRESETS["default"].to_dict(), "fmax_mhz": 22.25}]
    both = tmp_path / "both.json"
    both.write_text(json.dumps(rows))
    assert _published_fmax(PRESETS["default"], both) == 22.25
    assert _published_fmax(PRESETS["tiny"], both) == 11.5
    assert _published_fmax(PRESETS["large"], both) is None
    path = write_config(tmp_path, "tiny_synth.json", rows[:3])
    assert_one_line_error(convaccel("bench", "layers", "--synth-json", path),
                          "has no ECP5 Fmax for this build (default, 8x8)")


def test_the_published_synthesis_file_has_an_ecp5_row_for_tiny_and_default():
    for preset in ("tiny", "default"):
        assert (_published_fmax(PRESETS[preset], PUBLISHED_SYNTH) or 0) > 0, preset


def _default_sigint():
    # As from a shell: SIGINT at its default and not blocked. An ignored or
    # blocked SIGINT is inherited across exec, and a test worker that has
    # run other tests (native libraries with their own threads) may hand
    # one down: the command then never sees Ctrl-C and runs to the end,
    # which is how this test failed in whole-suite runs.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_ends_in_one_line_and_leaves_no_partial_output(tmp_path):
    # Ctrl-C in a terminal signals the whole process group: here while
    # Verilator builds (make and the compiler are interrupted too).
    work = tmp_path / "work"
    work.mkdir()
    process = subprocess.Popen([str(ENTRY), "simulate", "--design", "mac_pe"], cwd=work,
                               env={**os.environ, "CONVACCEL_CACHE": str(tmp_path / "cache")},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True, preexec_fn=_default_sigint)
    assert process.stderr.readline().startswith("building mac_pe with Verilator")
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert stderr.strip() == "convaccel simulate: interrupted"
    assert list(work.iterdir()) == []


def test_an_interrupted_write_leaves_no_output_folder(tmp_path, monkeypatch):
    from convaccel.scripts.cli import write_folder

    write_text = Path.write_text

    def interrupted_at_b(path, text, *args, **kwargs):   # Ctrl-C while writing b.v
        if path.name == "b.v":
            raise KeyboardInterrupt
        return write_text(path, text, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", interrupted_at_b)
    with pytest.raises(KeyboardInterrupt):
        write_folder(tmp_path / "out", {"a.v": "one", "b.v": "two"})
    assert list(tmp_path.iterdir()) == []
    write_folder(tmp_path / "out", {"a.v": "one"})
    with pytest.raises(KeyboardInterrupt):
        write_folder(tmp_path / "out", {"a.v": "changed", "b.v": "two"})
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["a.v"]
    assert (tmp_path / "out" / "a.v").read_text() == "one"


def test_debug_shows_the_traceback(tmp_path):
    result = convaccel("--debug", "config", "--config", tmp_path / "missing.json")
    assert result.returncode != 0 and "Traceback" in result.stderr
    assert_one_line_error(convaccel("config", "--config", tmp_path / "missing.json"),
                          "cannot read configuration file", "No such file or directory")


def test_clean_removes_the_cache_and_the_default_outputs(tmp_path):
    cache = tmp_path / "cache"
    (cache / "mac_pe-0123").mkdir(parents=True)
    (cache / "mac_pe-0123" / "Vtop").write_bytes(b"x" * 2_000_000)
    (tmp_path / "build" / "demo").mkdir(parents=True)
    (tmp_path / "keep.txt").write_text("user file")
    env = {"CONVACCEL_CACHE": str(cache)}
    dry = convaccel("clean", "--dry-run", cwd=tmp_path, env=env)
    assert dry.returncode == 0 and f"would remove {cache} (2 MB)" in dry.stdout
    assert cache.exists()
    done = convaccel("clean", cwd=tmp_path, env=env)
    assert done.returncode == 0 and "freed 2 MB" in done.stdout
    assert not cache.exists() and not (tmp_path / "build" / "demo").exists()
    assert (tmp_path / "keep.txt").exists()


#: Large enough for the digits CNN (16 channels, 8x8), small enough to build fast.
DIGITS_SIZED = PRESETS["tiny"].replace(max_in_channels=16, max_out_channels=16, max_height=8,
                                       max_width=8)

#: Per unit of the core: its streams' handshakes and its FSM state, as the VCD names them.
UNIT_SIGNALS = [f"conv_accel.core.{unit}.{name}" for unit, names in {
    "window": ["state_state", "i__valid", "i__ready", "o__valid", "o__ready", "o__payload"],
    "engine": ["running", "act__valid", "act__ready", "weights__valid", "result__valid",
               "result__payload"],
    "requant": ["i__valid", "o__valid", "o__ready", "o__payload"],
    "pool": ["state_state", "i__valid", "i__ready", "o__valid", "o__payload"],
}.items() for name in names] + ["conv_accel.core.state", "conv_accel.m_axis_out_tvalid",
                                "conv_accel.s_axil_awvalid"]


def check_waveform(vcd, gtkw):
    """Each unit's streams and state, readable by two common VCD readers; a relative view."""
    from vcd.reader import tokenize   # pyvcd
    import vcdvcd

    declared = vcd_signals(vcd)
    assert [name for name in UNIT_SIGNALS if name not in declared] == []
    assert not any(name.rsplit(".", 1)[1].startswith("$") for name in declared)
    assert not any(".array." in name for name in declared)      # no PE internals
    with open(vcd, "rb") as handle:
        assert sum(1 for _ in tokenize(handle)) > 1000
    parsed = vcdvcd.VCDVCD(str(vcd))
    assert {value for _, value in parsed["conv_accel.core.window.o__valid"].tv} == {"0", "1"}
    lines = gtkw.read_text().splitlines()
    assert lines[0] == f'[dumpfile] "{vcd.name}"'
    assert "conv_accel.core.engine.result__valid" in lines


@pytest.mark.cocotb
def test_demo_and_digits_on_a_custom_build(tmp_path):
    pytest.importorskip("vcdvcd", reason="the test extra (vcdvcd) is not installed")
    from convaccel.sim.build import cache_root

    config = tmp_path / "digits_sized.json"
    config.write_text(DIGITS_SIZED.to_json())
    env = {"CONVACCEL_CACHE": str(cache_root())}
    demo = convaccel("demo", "--config", config, "--out", tmp_path / "demo", env=env,
                     timeout=900)
    assert demo.returncode == 0, demo.stderr
    # The layer that ran, not the one the name promises at full size.
    assert ("layer: LeNet-5 conv1 (1->6, 5x5, 32x32) + ReLU + 2x2 max-pool, scaled to the "
            "build: 1->6, 3x3, 8x8, 2x2/2 max-pool") in demo.stdout
    saved = json.loads((tmp_path / "demo" / "lenet_conv1.json").read_text())
    assert saved["output_beats"] == 3 * 3 * 3      # 6x6 conv -> 3x3 pool, 6 channels / 2 lanes
    assert "bit-exact PASS" in demo.stdout and "demo PASS" in demo.stdout
    # The top that ran and its register map; not every design regenerated.
    written = {p.name for p in (tmp_path / "demo" / "verilog").iterdir()}
    assert {name for name in written if name.endswith(".v")} == {"conv_accel.v"}
    assert {"config.json", "conv_accel_registers.md", "conv_accel_registers.h"} <= written
    run_dir = tmp_path / "demo" / "waves" / "lenet_conv1"
    check_waveform(run_dir / "lenet_conv1.vcd", run_dir / "lenet_conv1.gtkw")

    again = convaccel("demo", "--config", config, "--out", tmp_path / "demo", env=env)
    assert again.returncode == 0 and "reused cached build" in again.stdout

    # Without matplotlib the picture is skipped with a note; no Fmax of this
    # build is published, so no time is printed.
    hidden = tmp_path / "no_matplotlib" / "matplotlib"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('matplotlib hidden by the test')\n")
    # The cocotb backend here (it shares the demo's build); the fast one: test_fast_sim.py.
    digits = convaccel("demo", "digits", "--config", config, "--images", "2", "--waves",
                       "--backend", "cocotb", "--out", tmp_path / "digits",
                       env={**env, "PYTHONPATH": str(hidden.parent)}, timeout=900)
    assert digits.returncode == 0, digits.stderr
    assert "every layer of all 2 images bit-exact" in digits.stdout
    assert "no time: no ECP5 Fmax of this build is known" in digits.stdout
    assert "pictures: skipped (matplotlib is not installed" in digits.stdout
    vcd = tmp_path / "digits" / "waves" / "digits_first_image" / "digits_first_image.vcd"
    assert f"waveform: {vcd}" in digits.stdout
    check_waveform(vcd, vcd.with_suffix(".gtkw"))
