"""Minimal VCD reader for tests and tools.

Verilator's VCD names its top scope ``$rootio``, which some Python VCD
parsers reject; this reader only needs the ``$var`` declarations and value
changes, which is all the waveform checks use.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["read_vcd"]


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
