"""``convaccel results``: every published figure, from one command.

Runs, in order: FPGA synthesis and place & route (``tiny`` on ECP5 and
iCE40, ``default`` on ECP5 over three nextpnr seeds, each unit of
``default`` alone, Xilinx 7-series counts; one tool process per core), the
scaling study (array size at 8 bits, data
width on a 4x4 array, ECP5), the systolic-array utilization benchmark and
the layer benchmark (named layers plus the sweep, GOPS at the default
build's Fmax). It writes ``docs/results/results.md`` (tables, commands,
tool versions), JSON for every table and two plots, and replaces the part
of ``README.md`` between the ``results:begin`` / ``results:end`` markers
with the same Markdown. Nothing in those tables is typed by hand.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..hw.config import PRESETS
from .bench import (array_table, bench_array, layers_table, plot_layers, run_layers,
                    save_figure)
from .synth import seed_summary, synth_table, synthesize, xilinx_resources, xilinx_table

__all__ = ["BEGIN", "END", "render_results", "run_results", "splice_readme"]

BEGIN = "<!-- results:begin (written by `convaccel results`; do not edit by hand) -->"
END = "<!-- results:end -->"

#: Extra nextpnr seeds of the ``default`` top (seed 1 is in the main table).
EXTRA_SEEDS = (2, 3)
#: Units synthesized alone (out of context) on ``default``.
UNITS = ("window_generator", "systolic_engine", "requant_activation", "pool_unit", "conv_core")
#: Layer figures measured before the timing work (commit 1c83505, 30.5 MHz):
#: the GOPS the new ones are compared with.
BASELINE_LAYERS = "baseline_layers.json"
#: Cycle counts of the last commit before the timing work (df8c4ed), which
#: counts ``busy_cycles`` as today (from the start write to the last output
#: handshake; 1c83505 counted the engine's busy time only): the cycle
#: reference. Without it the cycles of BASELINE_LAYERS are used.
BASELINE_CYCLES = "baseline_cycles.json"

#: Scaling study: square array sizes at 8 bits, and widths on a 4x4 array.
SCALING_ARRAYS = (4, 8)
SCALING_WIDTHS = (4, 8, 16)
WIDTH_STUDY_ARRAY = 4


def _plot_scaling(rows: list[dict], path: Path, key: str, label: str) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    rows = [r for r in rows if "synth_error" not in r]
    xs = [r[key] for r in rows]
    for field, name in (("luts", "LUT4"), ("ffs", "FF"), ("carry", "CCU2C")):
        left.plot(xs, [r[field] for r in rows], marker="o", label=name)
    left.plot(xs, [r["dsp"] for r in rows], marker="s", label="MULT18X18D")
    left.plot(xs, [r["bram"] for r in rows], marker="^", label="DP16KD")
    left.set_yscale("log")
    left.set_xlabel(label)
    left.set_ylabel("cells")
    left.legend(fontsize=8)
    left.set_title("ECP5 resources")
    right.plot(xs, [r.get("fmax_mhz") or 0 for r in rows], marker="o")
    right.set_xlabel(label)
    right.set_ylabel("Fmax (MHz)")
    right.set_title("ECP5 Fmax (nextpnr, target 150 MHz)")
    return save_figure(fig, path)


def _per_pe(rows: list[dict]) -> str:
    """Totals per PE, and the growth per added PE from the previous array size."""
    lines = ["| array | PEs | LUT4 / PE | FF / PE | DSP / PE | added LUT4 per added PE "
             "| added FF per added PE |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    previous = None
    for r in rows:
        if "synth_error" in r:
            continue
        pes = r["pes"]
        grow = ("-", "-") if previous is None else tuple(
            f"{(r[field] - previous[field]) / (pes - previous['pes']):.0f}"
            for field in ("luts", "ffs"))
        lines.append(f"| {r['array']} | {pes} | {r['luts'] / pes:.0f} | {r['ffs'] / pes:.0f} | "
                     f"{r['dsp'] / pes:.2f} | {grow[0]} | {grow[1]} |")
        previous = r
    return "\n".join(lines)


def machine_description() -> str:
    """Cores, memory and CPU model of this machine, for the record of a timed run."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = ", " + line.split(":", 1)[1].strip()
                break
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        memory = f", {pages / 2 ** 30:.0f} GiB"
    except (OSError, ValueError):
        memory = ""
    return f"{os.cpu_count()} cores{memory}{model}"


def source_commit() -> str | None:
    """The short commit of the source checkout the figures are from (None outside git)."""
    try:
        result = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, cwd=Path(__file__).resolve().parents[1], timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def _dsp_outside_array(units: list[dict]) -> str:
    """Per-unit DSP blocks that are not PE multipliers (the engine's are)."""
    default = PRESETS["default"]
    pes = default.array_rows * default.array_cols
    outside = {r["design"]: r["dsp"] - (pes if r["design"] == "systolic_engine" else 0)
               for r in units
               if r["design"] != "conv_core" and isinstance(r.get("dsp"), int)}
    parts = ", ".join(f"{design} {count}" for design, count in outside.items())
    return (f"{sum(outside.values())} ({parts}; the engine's {pes} PE multipliers "
            "not counted)")


def _before_after(out: Path, layers: list[dict]) -> str:
    """Cycles and GOPS per named layer: the baseline run against this one."""
    path = out / BASELINE_LAYERS
    if not path.exists():
        return f"(no {BASELINE_LAYERS})"
    before = {r["key"]: r for r in json.loads(path.read_text())}
    cycles_path = out / BASELINE_CYCLES
    cycles_before = ({r["key"]: r["cycles"] for r in json.loads(cycles_path.read_text())}
                     if cycles_path.exists() else {})
    lines = ["| layer | cycles before | cycles now | change | GOPS before (MHz) | "
             "GOPS now (MHz) |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in layers:
        old = before.get(r["key"])
        if old is None:
            continue
        reference = cycles_before.get(r["key"], old["cycles"])
        change = 100 * (r["cycles"] - reference) / reference
        now = (f"{r['gops_at_fmax']:.2f} ({r['fmax_mhz']:.1f})"
               if r.get("gops_at_fmax") is not None else "-")
        lines.append(f"| {r['layer']} | {reference} | {r['cycles']} | {change:+.1f} % | "
                     f"{old['gops_at_fmax']:.2f} ({old['fmax_mhz']:.1f}) | {now} |")
    return "\n".join(lines)


def run_results(out: Path, *, log=print) -> str:
    """Run everything; return the Markdown (also written to ``out/results.md``)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    synth_dir = out / "synth"
    started = time.perf_counter()

    def synth_one(config, family, design, seed):
        log(f"synth: {design} {config.array_rows}x{config.array_cols} {config.act_width}-bit, "
            f"{family}, seed {seed}")
        try:
            figures = synthesize(design, config, family, out_dir=synth_dir, seed=seed)
        except RuntimeError as error:     # a tool failure is a result too; keep going
            log(f"  failed: {error}")
            figures = {"design": design, "family": family, "device": family, "seed": seed,
                       "array": f"{config.array_rows}x{config.array_cols}",
                       "act_width": config.act_width, "weight_width": config.weight_width,
                       "fold_ffs": 0, "synth_error": str(error)[-500:],
                       **{field: "-" for field in ("luts", "ffs", "carry", "dsp", "bram",
                                                   "synth_seconds", "pnr_seconds")}}
        figures["pes"] = config.array_rows * config.array_cols
        return figures

    # The tool runs are independent processes: one per core at a time, the
    # longest (the default top's seeds) first.
    pool = ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1))

    def synth(config, family, design="conv_accel", seed=1):
        return pool.submit(synth_one, config, family, design, seed)

    tiny, default = PRESETS["tiny"], PRESETS["default"]
    top = synth(default, "ecp5")
    seed_jobs = [top] + [synth(default, "ecp5", seed=seed) for seed in EXTRA_SEEDS]
    unit_jobs = [synth(default, "ecp5", design=unit) for unit in UNITS]
    main_jobs = [synth(tiny, "ecp5"), synth(tiny, "ice40"), top]
    array_jobs = {size: top if size == default.array_rows == default.array_cols else
                  synth(default.replace(array_rows=size, array_cols=size), "ecp5")
                  for size in SCALING_ARRAYS}
    base = default.replace(array_rows=WIDTH_STUDY_ARRAY, array_cols=WIDTH_STUDY_ARRAY)
    width_jobs = [array_jobs[WIDTH_STUDY_ARRAY]
                  if width == default.act_width == default.weight_width
                  and WIDTH_STUDY_ARRAY in array_jobs else
                  synth(base.replace(act_width=width, weight_width=width), "ecp5")
                  for width in SCALING_WIDTHS]

    def xilinx_one(design):
        try:
            return xilinx_resources(design, default)
        except RuntimeError as error:     # a tool failure is a result too; keep going
            log(f"  synth_xilinx failed for {design}: {error}")
            return {"design": design, "family": "xc7 (synth_xilinx, no P&R)",
                    "array": f"{default.array_rows}x{default.array_cols}",
                    "act_width": default.act_width, "weight_width": default.weight_width,
                    "synth_error": str(error)[-500:]}

    xilinx_jobs = [pool.submit(xilinx_one, design) for design in ("conv_accel",) + UNITS]
    main = [job.result() for job in main_jobs]
    fmax = main[2].get("fmax_mhz")
    seeds = [job.result() for job in seed_jobs]
    units = [job.result() for job in unit_jobs]
    arrays = [array_jobs[size].result() for size in SCALING_ARRAYS]
    widths = [job.result() for job in width_jobs]
    xilinx = [job.result() for job in xilinx_jobs]
    pool.shutdown()

    def save(*tables):
        for name, data in tables:
            (out / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")

    # Saved before the benchmarks, so a failure there keeps an hour of place & route.
    save(("synth", main), ("scaling_arrays", arrays), ("scaling_widths", widths),
         ("seeds", seeds), ("units", units), ("xilinx", xilinx))
    log("bench: systolic array utilization")
    array_figures = bench_array([4, 8, 16])
    log("bench: layers")
    from ..sim.layer_suite import BENCH_LAYERS, SWEEP_LAYERS
    layers, _, _ = run_layers(list(BENCH_LAYERS) + list(SWEEP_LAYERS), default,
                              progress=True, fmax_mhz=fmax)
    save(("array", array_figures), ("layers", layers))
    (out / "meta.json").write_text(json.dumps(
        {"minutes": round((time.perf_counter() - started) / 60, 1),
         "date": datetime.date.today().isoformat(), "machine": machine_description(),
         "commit": source_commit()}) + "\n")
    return render_results(out)


def render_results(out: Path) -> str:
    """Tables and plots from the JSON files of a run (``out/*.json``); write ``results.md``."""
    out = Path(out)

    def load(name):
        return json.loads((out / f"{name}.json").read_text())

    main, arrays, widths = load("synth"), load("scaling_arrays"), load("scaling_widths")
    # Tables added later than the first published run; absent from older runs.
    seeds, units, xilinx = (load(name) if (out / f"{name}.json").exists() else []
                            for name in ("seeds", "units", "xilinx"))
    array_figures, layers = load("array"), load("layers")
    default = PRESETS["default"]
    fmax = next((r.get("fmax_mhz") for r in main
                 if r["family"] == "ecp5" and r["array"] == "8x8"), None)
    plot_layers(layers, out / "layers.png", default)
    _plot_scaling(arrays, out / "scaling_array.png", "pes", "PEs (array size squared)")
    _plot_scaling(widths, out / "scaling_width.png", "act_width", "activation = weight bits")
    meta = json.loads((out / "meta.json").read_text()) if (out / "meta.json").exists() else {}
    machine = meta.get("machine", "the 2-core reference machine")
    when = f" on {meta['date']}" if "date" in meta else ""
    took = f"{meta['minutes']:.0f} minutes on {machine}{when}; " if "minutes" in meta else ""
    commit = f" at commit {meta['commit']}" if meta.get("commit") else ""
    tools = main[0]["tools"]
    markdown = "\n".join([
        f"Produced by `convaccel results`{commit} ({took}tables and plots). Tools: "
        f"{tools['yosys'].split(' (')[0]}, {tools['nextpnr'].split('(')[-1].rstrip(')')}; "
        "ECP5 = LFE5U-85F-6BG381 out of context, iCE40 = UP5K-SG48 with the ports folded "
        "(see `scripts/synth.py`; ECP5 netlists use the block RAM and DSP primitives with "
        "their registers on, hw/fpga_target.py); target clock 150 MHz, nextpnr seed 1 "
        "unless a table says otherwise.",
        "",
        "#### FPGA resources and clock (`conv_accel`)",
        "",
        synth_table(main),
        "",
        "#### `default` top over three place & route seeds (ECP5)",
        "",
        seed_summary(seeds),
        "",
        "#### Each unit alone (`default`, ECP5, out of context, seed 1)",
        "",
        synth_table(units),
        "",
        "DSP blocks outside the PE array: " + _dsp_outside_array(units) + ".",
        "",
        "#### Xilinx 7-series resource counts (`default`, yosys `synth_xilinx`, no P&R)",
        "",
        xilinx_table(xilinx),
        "",
        "#### Scaling with the array size (ECP5, 8-bit, `default` otherwise)",
        "",
        synth_table(arrays),
        "",
        _per_pe(arrays),
        "",
        "![resources and Fmax vs array size](docs/results/scaling_array.png)",
        "",
        f"#### Scaling with the data width (ECP5, {WIDTH_STUDY_ARRAY}x{WIDTH_STUDY_ARRAY} "
        "array)",
        "",
        synth_table(widths),
        "",
        "![resources and Fmax vs width](docs/results/scaling_width.png)",
        "",
        "#### Systolic engine utilization (`N x K x M = 512 x 8*size x 4*size`)",
        "",
        array_table(array_figures),
        "",
        f"#### Layers on the `default` build (GOPS at its ECP5 Fmax, {fmax} MHz)",
        "",
        layers_table(layers),
        "",
        "![utilization and roofline](docs/results/layers.png)",
        "",
        "#### Named layers before and after the timing work",
        "",
        _before_after(out, layers),
        "",
    ])
    (out / "results.md").write_text(markdown)
    return markdown


def splice_readme(readme: Path, markdown: str) -> None:
    """Replace the README text between the results markers with ``markdown``."""
    text = Path(readme).read_text()
    if BEGIN not in text or END not in text:
        raise ValueError(f"{readme} has no results markers ({BEGIN!r} ... {END!r})")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    Path(readme).write_text(f"{head}{BEGIN}\n{markdown}\n{END}{tail}")
