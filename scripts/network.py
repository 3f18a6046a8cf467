"""``convaccel compile``, ``convaccel run`` and ``convaccel demo onnx``: networks on a build.

* :func:`load_program` - a program file, or an ONNX model compiled on the fly;
* :func:`execute` - run a program on a backend (``fast``: the RTL in the
  compiled testbench; ``cocotb``: the RTL under Verilator through the cocotb
  transport; ``golden``: the golden model, no hardware) with a progress bar
  per layer;
* :func:`steps_table`, :func:`program_table` - the reports;
* :func:`plot_feature_maps` - the demo's picture.
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from ..hw.config import AccelConfig
from ..host.program import Program

__all__ = ["BACKENDS", "execute", "load_program", "plot_feature_maps", "program_table",
           "steps_table"]

#: Where hardware steps can run, the default first.
BACKENDS = ("fast", "cocotb", "golden")


def is_program_file(path: Path) -> bool:
    """True for a program file (a zip archive); False for anything else, e.g. ONNX."""
    if not Path(path).is_file():
        raise FileNotFoundError(2, "No such file", str(path))
    with open(path, "rb") as handle:
        return handle.read(4) == b"PK\x03\x04"


def load_program(path, config: AccelConfig | None) -> Program:
    """``path`` as a program: read a program file, or compile an ONNX model for ``config``.

    Raises
    ------
    ValueError
        For a file that is neither, a model the importer refuses (the message
        names the node), or a program made for another configuration than
        an explicitly given one.
    """
    path = Path(path)
    if is_program_file(path):
        program = Program.load(path)
        if config is not None and program.config != config:
            raise ValueError(f"{path} was compiled for another configuration; compile the "
                             "model again for this one")
        return program
    from ..hw.config import PRESETS
    from ..host.onnx_import import compile_onnx

    return compile_onnx(path, config or PRESETS["default"])


class _Progress:
    """One progress bar per hardware layer, counting its passes over all images."""

    def __init__(self, program: Program, images: int, enabled: bool):
        self.images, self.enabled = images, enabled
        self.bars, self.done = {}, {}

    def __call__(self, index: int, step, done: int, total: int) -> None:
        from .bench import progress_bar

        if not self.enabled or step.kind != "hardware":
            return
        if index not in self.bars:
            self.bars[index] = progress_bar(True, total * self.images, f"{step.name[:28]:28s}",
                                            "pass")
        # `done` counts the passes of this step for the current image.
        last = self.done.get(index, 0)
        self.bars[index].update(done - last if done > last else done)
        self.done[index] = done % total

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


def execute(program: Program, feeds: dict, backend: str, *, seed: int = 1, stalls: float = 0.0,
            progress: bool = True) -> tuple[dict, list[dict], float]:
    """Run ``program`` on ``feeds``; returns ``(outputs, step reports as dicts, seconds)``.

    ``stalls``: the chance per cycle of a gap on each input stream and of
    back-pressure on the output (seeded by ``seed``; 0 measures the
    hardware's own cycles). Every hardware layer is checked bit for bit
    against the golden model (a mismatch raises
    :class:`~convaccel.host.runtime.MismatchError`).
    """
    images = len(next(iter(feeds.values())))
    bars = _Progress(program, images, progress and sys.stderr.isatty())
    start = time.perf_counter()
    try:
        if backend == "cocotb":
            outputs, reports = _run_cocotb(program, feeds, seed, stalls, bars)
        elif backend == "fast":
            from ..host.device import Accelerator
            from ..host.runtime import AcceleratorRunner
            from ..sim.fast_transport import FastTransport
            from ..sim.program import Stalls

            transport = FastTransport(program.config, stalls=Stalls.random(stalls), seed=seed)
            accelerator = Accelerator(transport)
            accelerator.check_build(program.config)
            outputs, reports = _run_here(program, feeds, AcceleratorRunner(accelerator, "fast"),
                                         bars)
        elif backend == "golden":
            from ..host.runtime import GoldenRunner

            outputs, reports = _run_here(program, feeds, GoldenRunner(), bars)
        else:
            raise ValueError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    finally:
        bars.close()
    return outputs, reports, time.perf_counter() - start


def _run_here(program: Program, feeds: dict, runner, bars: _Progress):
    """The program in this process, hardware steps on ``runner``."""
    from ..host.runtime import run_program

    outputs, steps = run_program(program, feeds, runner, on_pass=bars)
    pes = program.config.array_rows * program.config.array_cols
    return outputs, [report.to_dict(pes) for report in steps]


def _run_cocotb(program: Program, feeds: dict, seed: int, stalls: float, bars: _Progress):
    """The program inside one cocotb simulation of the build (``host_bench.host_program``)."""
    from ..sim.build import build, run

    built = build("conv_accel", program.config)
    with tempfile.TemporaryDirectory(prefix="convaccel-run-") as folder:
        folder = Path(folder)
        program.save(folder / "program.npz")
        np.savez(folder / "input.npz", **feeds)
        progress = folder / "progress.jsonl"
        progress.touch()
        env = {"CONVACCEL_HOST_PROGRAM": str(folder / "program.npz"),
               "CONVACCEL_HOST_INPUT": str(folder / "input.npz"),
               "CONVACCEL_HOST_OUTPUT": str(folder / "output.npz"),
               "CONVACCEL_HOST_PROGRESS": str(progress),
               "CONVACCEL_HOST_STALLS": str(stalls)}
        failure = []

        def simulate():
            try:
                run(built, "host_bench", testcase="host_program", seed=seed,
                    name=f"program-{program.name}", extra_env=env)
            except BaseException as error:      # reported in the caller's thread
                failure.append(error)

        worker = threading.Thread(target=simulate, daemon=True)
        worker.start()
        seen = 0
        while worker.is_alive():
            worker.join(0.2)
            seen = _follow(progress, seen, program, bars)
        _follow(progress, seen, program, bars)
        if failure:
            raise failure[0]
        with np.load(folder / "output.npz") as data:
            outputs = {key: data[key] for key in data.files}
        reports = json.loads((folder / "output.npz.json").read_text())
    return outputs, reports


def _follow(path: Path, seen: int, program: Program, bars: _Progress) -> int:
    """Feed the progress lines the simulation wrote since the last call to the bars."""
    lines = path.read_text().splitlines()
    for line in lines[seen:]:
        try:
            entry = json.loads(line)
        except ValueError:
            return seen         # a line still being written
        bars(entry["step"], program.steps[entry["step"]], entry["done"], entry["total"])
        seen += 1
    return seen


def program_table(program: Program) -> str:
    """What runs where: one row per step, with passes, the scale error and host reasons."""
    lines = ["| step | runs on | operators | passes | notes |", "| --- | --- | --- | ---: | --- |"]
    for step in program.steps:
        if step.kind == "hardware":
            notes = "; ".join(step.notes[1:])
            lines.append(f"| {step.name} | accelerator | {step.notes[0]} | {len(step.passes)} "
                         f"| {notes} |")
        else:
            lines.append(f"| {step.name} | host (NumPy) | {step.op} | - | {step.reason} |")
    return "\n".join(lines)


def steps_table(reports: list[dict], images: int) -> str:
    """The run's per-layer table: passes, cycles, utilization, bytes, check, wall time."""
    lines = ["| step | runs on | passes | cycles | MACs | utilization | bytes | check | wall s |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |"]
    for r in reports:
        if r["kind"] == "hardware":
            utilization = (f"{100 * r['utilization']:.1f} %" if r["utilization"] is not None
                           else "-")
            check = "bit-exact" if r["bit_exact"] else "golden model" if r["bit_exact"] is None \
                else "MISMATCH"
            lines.append(f"| {r['name']} | accelerator | {r['passes'] // images} | "
                         f"{r['cycles'] // images if r['cycles'] else '-'} | "
                         f"{r['macs'] // images if r['macs'] else '-'} | {utilization} | "
                         f"{r['bytes'] // images if r['bytes'] else '-'} | {check} | "
                         f"{r['wall_seconds'] / images:.2f} |")
        else:
            lines.append(f"| {r['name']} | host: {r['op']} | - | - | - | - | - | "
                         f"{r['reason']} | {r['wall_seconds'] / images:.2f} |")
    totals = [r for r in reports if r["kind"] == "hardware"]
    cycles = sum(r["cycles"] for r in totals) // images
    if cycles:
        lines.append(f"| **per image** | | {sum(r['passes'] for r in totals) // images} | "
                     f"{cycles} | {sum(r['macs'] for r in totals) // images} | | "
                     f"{sum(r['bytes'] for r in totals) // images} | | |")
    return "\n".join(lines)


def plot_feature_maps(image: np.ndarray, maps: list[tuple[str, np.ndarray]], path: Path,
                      channels: int = 6) -> Path:
    """The input image and the first ``channels`` feature maps of each listed layer."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .bench import save_figure

    rows = len(maps) + 1
    fig, axes = plt.subplots(rows, channels, figsize=(1.6 * channels, 1.7 * rows),
                             squeeze=False)
    shown = image.transpose(1, 2, 0) if image.shape[0] == 3 else image[0]
    shown = (shown - shown.min()) / max(float(shown.max() - shown.min()), 1e-9)
    for axis in axes.ravel():
        axis.set_xticks([])
        axis.set_yticks([])
        axis.axis("off")
    axes[0, 0].imshow(shown, cmap=None if shown.ndim == 3 else "gray")
    axes[0, 0].set_title(f"input {image.shape[1]}x{image.shape[2]}", fontsize=7)
    for row, (name, values) in enumerate(maps, start=1):
        values = np.asarray(values).reshape(-1, *np.asarray(values).shape[-2:])
        for column in range(min(channels, len(values))):
            axes[row, column].imshow(values[column], cmap="viridis")
            axes[row, column].set_title(f"{name} ch {column}", fontsize=7)
    return save_figure(fig, path, dpi=100)


# -- commands -------------------------------------------------------------------------


def _explicit_config(args) -> AccelConfig | None:
    """The configuration the user named with --preset or --config, if any."""
    from .cli import _config

    if getattr(args, "config", None) or getattr(args, "preset", None):
        return _config(args)
    return None


def cmd_compile(args) -> int:
    """``convaccel compile MODEL.onnx -o PROGRAM``."""
    from ..host.onnx_import import compile_onnx
    from .cli import writable_file

    out = writable_file(args.output)
    config = _explicit_config(args)
    program = compile_onnx(args.model, config)
    program.save(out)
    hardware = program.hardware_steps()
    print(f"{args.model}: {len(hardware)} layers on the accelerator "
          f"({sum(len(s.passes) for s in hardware)} passes), {len(program.host_steps())} "
          f"host steps, for a {config.array_rows}x{config.array_cols} build")
    print(program_table(program))
    print(f"wrote {out}")
    return 0


def _outputs_to_file(outputs: dict, path: Path) -> None:
    if len(outputs) == 1:
        np.save(path, next(iter(outputs.values())))
    else:
        np.savez(path, **outputs)


def cmd_run(args) -> int:
    """``convaccel run MODEL.onnx|PROGRAM --input X.npy --output Y.npy``."""
    from .cli import UserError, writable_file

    out = writable_file(args.output)
    if args.report:
        writable_file(args.report)
    program = load_program(args.model, _explicit_config(args))
    if len(program.outputs) > 1 and out.suffix != ".npz":
        raise UserError(f"the model has {len(program.outputs)} outputs: give --output "
                        "FILE.npz")
    try:
        x = np.load(args.input, allow_pickle=False)
    except ValueError as error:
        raise UserError(f"{args.input} is not a .npy array ({error})") from None
    feeds = {program.inputs[0].name: x}
    if args.compare and is_program_file(Path(args.model)):
        raise UserError("--compare runs onnxruntime on the model: give the .onnx file, not a "
                        "program")
    outputs, reports, seconds = execute(program, feeds, args.backend, seed=args.seed,
                                        stalls=args.stalls)
    _outputs_to_file(outputs, out)
    images = len(x)
    print(steps_table(reports, images))
    print(f"{images} image(s) on the {args.backend} backend in {seconds:.1f} s; every hardware "
          "layer " + ("bit-exact with the golden model" if args.backend != "golden"
                      else "computed by the golden model"))
    host = sorted({r["op"] for r in reports if r["kind"] == "host"})
    if host:
        print(f"on the host (NumPy): {', '.join(host)}")
    summary = {"backend": args.backend, "images": images, "seconds": seconds,
               "steps": reports}
    if args.compare:
        from ..host.onnx_check import agreement, onnxruntime_outputs

        figures = agreement(program, outputs, onnxruntime_outputs(args.model, feeds))
        summary["onnxruntime"] = figures
        for name, f in figures.items():
            if "identical" in f:
                print(f"against onnxruntime, output {name!r}: {f['identical']} identical, "
                      f"{f['off_by_one']} off by one step, {f['worse']} worse (of "
                      f"{f['values']}); top-1 the same on {f['top1_same']} of {f['images']}")
            else:
                print(f"against onnxruntime, output {name!r}: largest difference "
                      f"{f['max_abs_difference']:.3g}; top-1 the same on {f['top1_same']} of "
                      f"{f['images']}")
    if args.report:
        Path(args.report).write_text(json.dumps(summary, indent=2) + "\n")
        print(f"wrote {args.report}")
    print(f"wrote {out}")
    return 0


def cmd_demo_onnx(args) -> int:
    """``convaccel demo onnx``: build, quantize and run an example model, per-layer table."""
    import logging

    from ..hw.conv_accel import conv_accel_register_map
    from ..host.layer import hardware_zero_points
    from ..host.onnx_check import agreement, onnxruntime_outputs
    from ..host.onnx_import import compile_onnx
    from . import onnx_models
    from .cli import UserError, _config, _label, writable_folder

    logging.getLogger().setLevel(logging.ERROR)      # the quantizer's advice
    config = _config(args)
    which, size, backend = args.model or "mobilenet", args.size or 96, args.backend or "fast"
    out = writable_folder(args.out if args.out is not None else "build/onnx_demo").resolve()
    out.mkdir(parents=True, exist_ok=True)
    count = args.images or 1
    # Asymmetric activations (onnxruntime's default) need the zero_points register.
    zero_points = hardware_zero_points(conv_accel_register_map(config))
    if args.activations == "asymmetric" and not zero_points:
        raise UserError("--activations asymmetric needs the zero_points register (register "
                        "map 2.1); this build has none")
    symmetric = (args.activations == "symmetric" if args.activations else not zero_points)
    if which == "digits":
        model = onnx_models.digits_model()
        calibration, _, test, _ = onnx_models.digits_data()
        calibration, test = calibration[:200], test[:count]
    else:
        model = onnx_models.mobilenet_model(size=size)
        calibration = onnx_models.mobilenet_images(16, size, seed=1)
        test = onnx_models.mobilenet_images(count, size, seed=2)
    path = onnx_models.quantize(model, out / f"{which}.onnx", calibration, symmetric=symmetric)
    print(f"convaccel demo onnx: {path.name} ({which}, float model built here, quantized "
          f"by onnxruntime: QDQ, per-channel int8 weights, "
          f"{'symmetric' if symmetric else 'asymmetric'} int8 activations) on the "
          f"{_label(args)!r} build, {backend} backend, {count} image(s)")
    program = compile_onnx(path, config)
    program.save(out / f"{which}.program.npz")
    print(program_table(program))
    feeds = {program.inputs[0].name: test}
    outputs, reports, seconds = execute(program, feeds, backend, seed=args.seed)
    print(steps_table(reports, count))
    figures = agreement(program, outputs, onnxruntime_outputs(path, feeds))
    for name, f in figures.items():
        print(f"{count} image(s) in {seconds:.1f} s; against onnxruntime ({name}): "
              f"{f['identical']} identical, {f['off_by_one']} off by one, {f['worse']} worse "
              f"of {f['values']}; top-1 the same on {f['top1_same']} of {f['images']}")
    (out / "report.json").write_text(json.dumps({"steps": reports, "onnxruntime": figures,
                                                 "seconds": seconds}, indent=2) + "\n")
    try:
        picture = _demo_picture(program, test[0], out / "feature_maps.png")
        print(f"feature maps: {picture}")
    except ImportError:
        print("feature maps: skipped (matplotlib is not installed: pip install "
              "'convaccel[bench]')")
    print(f"model, program and report: {out}")
    return 0


def _demo_picture(program: Program, image: np.ndarray, path: Path) -> Path:
    """Feature maps of the first image after a few hardware layers (golden = hardware:
    every layer was checked bit for bit)."""
    from ..host.runtime import GoldenRunner, run_program

    _, steps = run_program(program, {program.inputs[0].name: image[None]}, GoldenRunner())
    maps = [(step.name, next(iter(report.outputs.values()))[0])
            for step, report in zip(program.steps, steps)
            if step.kind == "hardware" and next(iter(report.outputs.values())).ndim == 4
            and next(iter(report.outputs.values())).shape[-1] > 1]
    chosen = maps[:1] + maps[len(maps) // 2:len(maps) // 2 + 1] + maps[-1:]
    return plot_feature_maps(image, chosen, path)
