"""Minimal VCD reader and GTKWave save files for tests and tools.

The builds leave out what common VCD readers stumble on (a ``$rootio``
scope, references starting with ``$``; see :func:`convaccel.sim.build.trace_config`),
so any reader opens the files; this one only needs the ``$var``
declarations and value changes, which is all the waveform checks use.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["read_vcd", "vcd_signals", "write_gtkw"]


def read_vcd(path: Path, names: set[str] | None = None) -> dict[str, list[tuple[int, str]]]:
    """Value changes of the signals in a VCD file.

    Parameters
    ----------
    path : Path
        The VCD file.
    names : set of str, optional
        Hierarchical names (``scope.signal``, e.g. ``requant_activation.o__valid``)
        to keep; all when omitted.

    Returns
    -------
    dict
        Name -> list of ``(time, value)`` with ``value`` the VCD text
        (``"0"``, ``"1"`` or a binary string for vectors).
    """
    codes: dict[str, list[str]] = {}
    changes: dict[str, list[tuple[int, str]]] = {}
    scope: list[str] = []
    time = 0
    with open(path) as handle:
        in_header = True
        for line in handle:
            words = line.split()
            if not words:
                continue
            if in_header:
                if words[0] == "$scope":
                    scope.append(words[2])
                elif words[0] == "$upscope":
                    scope.pop()
                elif words[0] == "$var":
                    name = ".".join(scope + [words[4]])
                    if names is None or name in names:
                        codes.setdefault(words[3], []).append(name)
                        changes[name] = []
                elif words[0] == "$enddefinitions":
                    in_header = False
                continue
            head = words[0]
            if head.startswith("#"):
                time = int(head[1:])
            elif head[0] in "bB":
                for name in codes.get(words[1], ()):
                    changes[name].append((time, head[1:]))
            elif head[0] in "01xXzZ":
                for name in codes.get(head[1:], ()):
                    changes[name].append((time, head[0]))
    return changes


def vcd_signals(path: Path) -> dict[str, int]:
    """Hierarchical name -> width of every signal a VCD file declares."""
    signals: dict[str, int] = {}
    scope: list[str] = []
    with open(path) as handle:
        for line in handle:
            words = line.split()
            if not words:
                continue
            if words[0] == "$scope":
                scope.append(words[2])
            elif words[0] == "$upscope":
                scope.pop()
            elif words[0] == "$var":
                signals[".".join(scope + [words[4]])] = int(words[2])
            elif words[0] == "$enddefinitions":
                break
    return signals


def write_gtkw(vcd: Path, save: Path, groups: dict[str, list[str]]) -> Path:
    """Write a GTKWave save file that opens ``vcd`` with ``groups`` of signals.

    ``groups`` maps a group title to signal names (``scope.name``) as they
    appear in the VCD; names the file does not declare are skipped. The dump
    path is relative to the save file, so the pair can be moved together.
    """
    declared = vcd_signals(vcd)
    dumpfile = os.path.relpath(Path(vcd).resolve(), Path(save).resolve().parent)
    lines = [f'[dumpfile] "{dumpfile}"', "[timestart] 0", "[size] 1600 900"]
    for title, names in groups.items():
        present = [name for name in names if name in declared]
        if not present:
            continue
        lines += ["@800200", f"-{title}"]
        for name in present:
            width = declared[name]
            lines.append("@28" if width == 1 else "@22")
            lines.append(name if width == 1 else f"{name}[{width - 1}:0]")
        lines += ["@1000200", f"-{title}"]
    Path(save).write_text("\n".join(lines) + "\n")
    return Path(save)
