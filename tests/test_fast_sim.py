"""The fast backend: program files, the compiled testbench against the cocotb player,
interrupt-started chains, waveforms, and the exported testbench under Verilator and Icarus."""

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from convaccel.sim.program import (Program, ProgramFailed, Stalls, read_results, stream_states,
                                   xorshift32)
from convaccel.sim.regression import REGRESSION_CONFIGS

TINY = REGRESSION_CONFIGS["tiny"]


def test_xorshift_and_the_stream_generators():
    # Marsaglia's xorshift32 (13, 17, 5) from 1, as the testbench steps it.
    state, seen = 1, []
    for _ in range(3):
        state = xorshift32(state)
        seen.append(state)
    assert seen[0] == 270369 and seen[1] == 67634689 and seen[2] == 2647435461
    assert stream_states(0) == (0x9E3779B9, 0x3C6EF372, 0xDAA66D2B)
    assert stream_states(0x9E3779B9)[0] == 1      # never the stuck state 0


def test_stall_thresholds_are_packed_per_stream():
    assert Stalls(0.25, 0.5, 0.0).packed() == 64 | 128 << 8
    assert Stalls.random(0.999).packed() == 255 | 255 << 8 | 255 << 16
    with pytest.raises(ValueError, match=r"in \[0, 1\)"):
        Stalls(1.0).packed()


def test_program_files_and_result_records(tmp_path):
    program = Program(TINY, bus_seed=5, bus_delay=0.25)
    program.write("shape", height=3, width=4)
    index = program.read("error")
    layer = program.start([(0, 0x1234), (1, 0xFF)], [(0, 7)], 2, stalls=Stalls(0.5), seed=9,
                          timeout=100)
    program.wait_irq(50)
    files = program.files()
    assert files["program.hex"].splitlines() == [
        "8 5 40", "1 30 40003", "2 28", "3 20 1 2 1 2 80 9 64 0", "4 32", "0"]
    assert files["pixels.hex"] == "0 1234\n1 ff\n" and files["weights.hex"] == "0 7\n"
    assert (index, layer) == (0, 0)
    folder = program.write_files(tmp_path)
    (folder / "out.hex").write_text("0 00ff\n1 8001\n")
    (folder / "results.txt").write_text("R 00000028 00000000\nS 0000000a\n"
                                        "D 00000020 2 1 2\nI 00000024\nE 00000030\n")
    result = read_results(folder, program)
    assert result.reads == [(0x28, 0)] and result.irq_edges == [0x24]
    assert result.layers[0].outputs == [(0, 0xFF), (1, 0x8001)]
    assert result.layers[0].port_cycles == 0x20 - 0x0A and result.edges == 0x30
    assert program.lanes(0x8001) == [1, -128]
    (folder / "results.txt").write_text("R 00000028 00000000\nS 0000000a\nX 04 00000400\n")
    with pytest.raises(ProgramFailed, match="edge 1024: the layer's streams were not through"):
        read_results(folder, program)
    (folder / "results.txt").write_text("R 00000028 00000000\nE 00000030\n")
    with pytest.raises(ProgramFailed, match="stopped early: 0 of 1 layers"):
        read_results(folder, program)


def test_layer_files_keep_the_zero_points(tmp_path):
    from convaccel.scripts.testbench import load_layers, save_layers
    from convaccel.sim.benches.conv_core_bench import random_layer

    layer = random_layer(TINY, np.random.default_rng(5), "asymmetric", zero_points=True)
    path = tmp_path / "layers.npz"
    path.write_bytes(save_layers([layer]))
    (loaded,) = load_layers(path)
    assert (loaded.input_zero_point, loaded.output_zero_point) == (
        layer.input_zero_point, layer.output_zero_point) != (0, 0)
    assert np.array_equal(loaded.golden(TINY.act_width), layer.golden(TINY.act_width))


def _layers(cfg, rng):
    from convaccel.sim.benches.conv_core_bench import named_layers, random_layer

    return named_layers(cfg, rng)[:5] + [random_layer(cfg, rng, f"random {i}") for i in range(4)]


@pytest.mark.cocotb
def test_fast_and_cocotb_backends_give_identical_beats_and_counters():
    """Named and random layers with seeded gaps, back-pressure and bus delays on both
    backends: each bit-exact against golden with exact counters, and the two identical."""
    from convaccel.sim.layer_program import run_layers
    from convaccel.sim.sessions import CocotbSession, FastSession

    layers = _layers(TINY, np.random.default_rng(2026))
    outcomes = {}
    for backend in (FastSession(TINY), CocotbSession(TINY, shallow_trace=False)):
        # run_layers checks every layer against the golden model and its counters.
        outcomes[backend.name], _ = run_layers(backend, layers, stalls=Stalls.random(0.25),
                                               seed=3, bus_delay=0.2)
    for fast, cocotb in zip(outcomes["fast"], outcomes["cocotb"]):
        assert fast["received"] == cocotb["received"], fast["name"]
        assert fast["counters"] == cocotb["counters"], (fast["name"], fast["counters"],
                                                        cocotb["counters"])
        assert fast["port_cycles"] == cocotb["port_cycles"] and fast["error"] == 0
    # The stalls did stall: the engine waited for input in some layer.
    assert any(outcome["counters"]["input_stall"] for outcome in outcomes["fast"])


@pytest.mark.cocotb
def test_fast_layers_started_on_the_interrupt():
    """Chains of random layers with unread edge rows, each started 0-20 cycles after the
    interrupt of the one before: bit-exact, busy_cycles = edges at the ports, exact MACs."""
    from convaccel.scripts.soak import soak_layers
    from convaccel.sim.layer_program import add_chain, check_outcome, layer_outcome
    from convaccel.sim.sessions import FastSession

    rng = np.random.default_rng(12)
    program = Program(TINY, bus_seed=4, bus_delay=0.2)
    jobs = [job for chain in soak_layers(TINY, rng, 24)
            for job in add_chain(program, chain, rng, stalls=Stalls.random(0.2))]
    result = FastSession(TINY).run_program(program)
    for job in jobs:
        check_outcome(layer_outcome(program, result, job), job.layer)
    assert len(result.irq_edges) == 24
    assert any(job.delay == 0 for job in jobs[1:]) and any(job.delay for job in jobs)


@pytest.mark.cocotb
def test_fast_waveform_has_every_unit_and_a_view(tmp_path):
    from convaccel.scripts.cli import demo_gtkw
    from convaccel.sim.benches.conv_core_bench import named_layers
    from convaccel.sim.layer_program import run_layers
    from convaccel.sim.sessions import FastSession
    from convaccel.sim.waves import read_vcd

    vcd = tmp_path / "layer" / "layer.vcd"
    layer = named_layers(TINY, np.random.default_rng(1))[3]
    run_layers(FastSession(TINY), [layer], stalls=Stalls.random(0.2), vcd=vcd)
    scope = "conv_accel_tb.conv_accel"
    changes = read_vcd(vcd, {f"{scope}.core.window.o__valid", f"{scope}.m_axis_out_tvalid"})
    assert {value for _, value in changes[f"{scope}.m_axis_out_tvalid"]} == {"0", "1"}
    assert len(changes[f"{scope}.core.window.o__valid"]) > 4
    view = demo_gtkw(vcd).read_text().splitlines()
    assert view[0] == '[dumpfile] "layer.vcd"'
    assert f"{scope}.core.engine.result__valid" in view
    # The units' job ports, by their Verilog names.
    assert {f"{scope}.core.job__busy", f"{scope}.core.window.job__busy",
            f"{scope}.core.pool.job__done"} <= set(view)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A testbench exported by the command line for a random layer on tiny."""
    out = tmp_path_factory.mktemp("export") / "tb"
    done = subprocess.run([sys.executable, "-m", "convaccel", "testbench", "--preset", "tiny",
                           "--random", "5", "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["README.md", "config.json", "conv_accel.v", "conv_accel_tb.v", "expected_out.hex",
         "layers.npz", "pixels.hex", "program.hex", "run.f", "weights.hex"])
    return out


def _readme_command(folder, program: str) -> list[str]:
    """The README's command line that starts with ``program``."""
    for line in (folder / "README.md").read_text().splitlines():
        if line.startswith(program + " "):
            return line
    raise AssertionError(f"no {program} command in the README")


def _check_passed(folder, stdout: str):
    assert "conv_accel_tb: PASS" in stdout, stdout[-2000:]
    assert (folder / "out.hex").read_text() == (folder / "expected_out.hex").read_text()
    records = (folder / "results.txt").read_text().splitlines()
    assert not [line for line in records if line.startswith("X")]
    assert "R 00000028 00000000" in records      # the error register: no error bit


@pytest.mark.cocotb
def test_exported_testbench_runs_under_verilator_from_an_empty_folder(exported, tmp_path):
    folder = tmp_path / "empty"
    shutil.copytree(exported, folder)        # only the exported files
    # The README's command for the PyPI wheel, as a user with only this environment's
    # bin folder on PATH (and no VERILATOR_ROOT) types it.
    command = _readme_command(folder, "MAKEFLAGS=CFG_CXXFLAGS_PCH_I=-include verilator-cli")
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("VERILATOR", "MAKEFLAGS"))}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), "/usr/bin", "/bin"])
    build = subprocess.run(command, shell=True, cwd=folder, capture_output=True, text=True,
                           env=env, timeout=900)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    run = subprocess.run(["./obj_dir/tb"], cwd=folder, capture_output=True, text=True,
                         timeout=300)
    _check_passed(folder, run.stdout)


@pytest.mark.skipif(shutil.which("iverilog") is None,
                    reason="Icarus Verilog (iverilog) is not installed; .ci/run installs it "
                           "with apt-get where it can")
def test_exported_testbench_runs_under_icarus_and_catches_a_wrong_beat(exported, tmp_path):
    folder = tmp_path / "icarus"
    shutil.copytree(exported, folder)
    command = _readme_command(folder, "iverilog")
    run = subprocess.run(command, shell=True, cwd=folder, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr
    _check_passed(folder, run.stdout)
    # The check can fail: one wrong expected beat.
    lines = (folder / "expected_out.hex").read_text().splitlines()
    last, word = lines[0].split()
    lines[0] = f"{last} {int(word, 16) ^ 1:0{len(word)}x}"
    (folder / "expected_out.hex").write_text("\n".join(lines) + "\n")
    run = subprocess.run("vvp -n tb.vvp", shell=True, cwd=folder, capture_output=True,
                         text=True, timeout=600)
    assert "conv_accel_tb: FAIL, 1 of" in run.stdout


@pytest.mark.cocotb
@pytest.mark.skipif(shutil.which("iverilog") is None,
                    reason="Icarus Verilog (iverilog) is not installed; .ci/run installs it "
                           "with apt-get where it can")
def test_icarus_and_verilator_play_the_export_edge_for_edge(exported, tmp_path):
    """The same seeded bus delays and stream stalls in both simulators: every record of
    results.txt (start, done, interrupt and end edges, registers) and every output beat
    identical under Icarus and under the fast backend's Verilator build of the same files."""
    from convaccel.sim.fast import build_fast

    built = build_fast(TINY)
    assert (exported / "conv_accel_tb.v").read_text() == \
        (built.build_dir / "conv_accel_tb.v").read_text()
    assert (exported / "conv_accel.v").read_text() == built.verilog.read_text()
    assert (exported / "program.hex").read_text().startswith("8 ")    # bus delays drawn
    records = {}
    for simulator in ("icarus", "verilator"):
        folder = tmp_path / simulator
        shutil.copytree(exported, folder)
        command = (_readme_command(folder, "iverilog") if simulator == "icarus"
                   else shlex.quote(str(built.binary)))
        run = subprocess.run(command, shell=True, cwd=folder, capture_output=True, text=True,
                             timeout=600)
        assert run.returncode == 0, run.stderr
        _check_passed(folder, run.stdout)
        records[simulator] = (folder / "results.txt").read_text().splitlines()
    assert records["icarus"] == records["verilator"]


def test_a_saved_layer_file_exports_the_same_program(exported, tmp_path):
    from convaccel.scripts.testbench import load_layers, save_layers

    layers = load_layers(exported / "layers.npz")
    assert save_layers(layers) == (exported / "layers.npz").read_bytes()
    out = tmp_path / "again"
    done = subprocess.run([sys.executable, "-m", "convaccel", "testbench", "--preset", "tiny",
                           "--layer-file", str(exported / "layers.npz"), "--out", str(out)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for name in ("program.hex", "pixels.hex", "weights.hex", "expected_out.hex"):
        assert (out / name).read_text() == (exported / name).read_text(), name
    with pytest.raises(ValueError, match="not a layer file"):
        load_layers(exported / "program.hex")


@pytest.mark.cocotb
def test_digits_and_soak_commands_on_the_fast_backend(tmp_path):
    """demo digits (default build, shared with the layer benchmark test) and a short soak."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    digits = subprocess.run([sys.executable, "-m", "convaccel", "demo", "digits", "--images", "3",
                             "--out", str(tmp_path / "digits")], capture_output=True, text=True,
                            env=env, timeout=900)
    assert digits.returncode == 0, digits.stderr[-3000:]
    assert "3 images on the fast backend" in digits.stdout
    assert "every layer of all 3 images bit-exact" in digits.stdout
    figures = tmp_path / "soak.json"
    soak = subprocess.run([sys.executable, "-m", "convaccel", "soak", "--preset", "tiny",
                           "--layers", "12", "--seed", "4", "--json", str(figures)],
                          capture_output=True, text=True, env=env, timeout=900)
    assert soak.returncode == 0, soak.stderr[-3000:]
    assert "12/12 random layers bit-exact with exact counters" in soak.stdout
    import json
    assert json.loads(figures.read_text())["passed"] == 12


@pytest.mark.soak
@pytest.mark.skipif(os.environ.get("SOAK", "0") in ("", "0"),
                    reason="opt-in: SOAK=1 (layers: SOAK_LAYERS, default 1000; SOAK_SHARDS; "
                           "SOAK_PRESET, default 'default')")
@pytest.mark.parametrize("shard", range(int(os.environ.get("SOAK_SHARDS", "1"))))
def test_fast_soak(shard):
    """SOAK_LAYERS random layers on SOAK_PRESET (default: ``default``), split into
    SOAK_SHARDS seeds that pytest-xdist spreads over its workers: local processes
    (``-n``) or other machines (``--tx ssh=...``, see the README)."""
    from convaccel.hw.config import PRESETS
    from convaccel.scripts.soak import run_soak

    shards = int(os.environ.get("SOAK_SHARDS", "1"))
    layers = int(os.environ.get("SOAK_LAYERS", "1000")) // shards
    preset = os.environ.get("SOAK_PRESET", "default")
    figures = run_soak(PRESETS[preset], layers, seed=11 + shard, progress=False)
    assert figures["passed"] == layers
    print(f"fast soak shard {shard} on {preset}: {figures}")


@pytest.mark.cocotb
def test_soak_shards_over_execnet_gateways():
    """The README's recipe for other machines, with local gateways: pytest-xdist starts one
    worker per ``--tx`` gateway in a scratch folder of the clone and the soak's settings
    reach the workers only through the gateways' ``env:`` entries (as they would over
    ``ssh=``); each worker runs one shard, and nothing lands outside ``build/``."""
    from convaccel.sim.build import cache_root

    root = Path(__file__).resolve().parents[1]
    spec = (f"popen//python={sys.executable}//chdir={root}/build/xdist//env:SOAK=1"
            f"//env:SOAK_SHARDS=2//env:SOAK_LAYERS=8//env:SOAK_PRESET=tiny"
            f"//env:CONVACCEL_CACHE={cache_root()}")
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("SOAK", "PYTEST_XDIST", "CONVACCEL_CACHE"))}
    (root / "build").mkdir(exist_ok=True)      # execnet makes only the last level
    before = sorted(path.name for path in root.iterdir())
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-v",
                           "-rP", "-m", "soak", "-d", "--tx", spec, "--tx", spec,
                           "../../tests/test_fast_sim.py::test_fast_soak"],
                          cwd=root, capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    passed = sorted(line.split()[0] for line in done.stdout.splitlines()
                    if "PASSED tests/test_fast_sim.py::test_fast_soak[" in line)
    assert passed == ["[gw0]", "[gw1]"], done.stdout[-3000:]
    assert "2 passed" in done.stdout
    for shard in (0, 1):     # seeds 11 and 12, 4 layers each, all bit-exact
        figures = f"{{'layers': 4, 'passed': 4, 'seed': {11 + shard}"
        assert f"fast soak shard {shard} on tiny: {figures}" in done.stdout, done.stdout[-3000:]
    # xdist copies pytest into each gateway's folder: there, not into the clone's root.
    assert sorted(path.name for path in root.iterdir()) == before
