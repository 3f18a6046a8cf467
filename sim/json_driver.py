"""A minimal host driver written only from the generated JSON files.

``convaccel generate`` writes ``conv_accel_registers.json`` (the register
map) and ``conv_accel_streams.json`` (the stream formats). This module reads
those two files and nothing else of the project: it builds register words
from the field positions, evaluates the stream formulas, and walks the loop
nests of the streams JSON to pack pixel and weight beats and to unpack
output beats. On purpose it imports none of the project's own packing code
(``sim/conv_driver.py``, ``sim/engine_streams.py``, ``sim/window_streams.py``,
``sim/driver.py``, ``hw/``): the bench ``sim/benches/json_driver_bench.py``
runs it on the hardware, which shows that the generated files are enough to
write a driver from.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Callable, Iterator

import numpy as np

__all__ = ["Registers", "Streams", "evaluate"]

# Python syntax the streams JSON may use (see its "syntax" entry).
_ALLOWED_NODES = (
    ast.Expression, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.IfExp, ast.Call,
    ast.Name, ast.Constant, ast.GeneratorExp, ast.comprehension, ast.Load, ast.Store,
    ast.Add, ast.Sub, ast.Mult, ast.FloorDiv, ast.Mod, ast.USub, ast.Not, ast.And, ast.Or,
    ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE,
)
_HELPERS = {"min": min, "max": max, "sum": sum, "range": range,
            "ceil_div": lambda a, b: -(-a // b)}
_compiled: dict[str, object] = {}


def evaluate(text: str, names: dict) -> int:
    """Value of one formula of the streams JSON with the given names bound.

    Raises
    ------
    ValueError
        If the formula uses syntax outside the documented integer subset.
    """
    code = _compiled.get(text)
    if code is None:
        tree = ast.parse(text, mode="eval")
        for node in ast.walk(tree):
            if not isinstance(node, _ALLOWED_NODES) or (
                    isinstance(node, ast.Constant) and not isinstance(node.value, int)):
                raise ValueError(f"formula {text!r}: {type(node).__name__} is not allowed")
        code = _compiled[text] = compile(tree, "<conv_accel_streams.json>", "eval")
    # Names go in as globals so generator expressions see them too.
    return eval(code, {"__builtins__": {}, **_HELPERS, **names})  # the AST was checked above


class Registers:
    """Register offsets and field positions from ``conv_accel_registers.json``."""

    def __init__(self, text: str):
        image = json.loads(text)
        self.registers = {reg["name"]: reg for reg in image["registers"]}

    def _field(self, register: str, name: str) -> dict:
        for item in self.registers[register]["fields"]:
            if item["name"] == name:
                return item
        raise KeyError(f"register {register!r} has no field {name!r}")

    def offset(self, register: str) -> int:
        return self.registers[register]["offset"]

    def width(self, register: str, field: str) -> int:
        return self._field(register, field)["width"]

    def reset(self, register: str, field: str) -> int:
        return self._field(register, field)["reset"]

    def field_names(self, register: str) -> list[str]:
        return [item["name"] for item in self.registers[register]["fields"]]

    def word(self, register: str, **fields) -> int:
        """The 32-bit word that writes ``fields`` (others 0)."""
        word = 0
        for name, value in fields.items():
            item = self._field(register, name)
            mask = (1 << item["width"]) - 1
            if not 0 <= value <= mask:
                raise ValueError(f"{register}.{name} = {value} does not fit "
                                 f"{item['width']} bits")
            word |= value << item["lsb"]
        return word

    def fields(self, register: str, word: int) -> dict[str, int]:
        """Split a read word into its fields."""
        return {item["name"]: word >> item["lsb"] & ((1 << item["width"]) - 1)
                for item in self.registers[register]["fields"]}


class Streams:
    """Beat packing and unpacking from ``conv_accel_streams.json``."""

    def __init__(self, text: str):
        self.image = json.loads(text)
        self.build = self.image["build"]
        self.streams = self.image["streams"]

    def names(self, settings: dict[str, dict[str, int]]) -> dict:
        """Every symbol, derived size and function of one layer.

        ``settings`` holds the layer's register fields as the host writes them:
        ``{"shape": {"height": 8, "width": 8}, ...}``.
        """
        names = {}
        for symbol, about in self.image["symbols"].items():
            if "value" in about:
                names[symbol] = about["value"]
            else:
                register, field = about["register"].split(".")
                names[symbol] = settings[register][field]
        for derived in self.image["derived"]:
            names[derived["name"]] = evaluate(derived["expr"], names)
        for function, about in self.image["functions"].items():
            names[function] = self._function(about, names)
        return names

    @staticmethod
    def _function(about: dict, names: dict) -> Callable[..., int]:
        def call(*args):
            return evaluate(about["expr"], {**names, **dict(zip(about["args"], args))})
        return call

    def beat_count(self, stream: str, names: dict) -> int:
        return evaluate(self.streams[stream]["beats"], names)

    def _walk(self, stream: str, names: dict) -> Iterator[dict]:
        """The loop nest: the bound names of every beat, in order."""
        loops = self.streams[stream]["loops"]

        def level(depth: int, bound: dict):
            if depth == len(loops):
                yield bound
                return
            loop = loops[depth]
            if "let" in loop:
                yield from level(depth + 1, {**bound, loop["let"]: evaluate(loop["expr"], bound)})
                return
            if "skip_if" in loop:
                if not evaluate(loop["skip_if"], bound):
                    yield from level(depth + 1, bound)
                return
            for value in range(*(evaluate(part, bound) for part in loop["range"])):
                yield from level(depth + 1, {**bound, loop["index"]: value})

        yield from level(0, names)

    def _lanes(self, stream: str, bound: dict) -> Iterator[tuple[dict, dict]]:
        """``(case, names)`` of each lane of one beat: the first case whose ``when`` holds."""
        about = self.streams[stream]
        lane = about["lane"]
        for j in range(about["lanes"]):
            names = {**bound, lane["index"]: j}
            for name, expr in lane["let"]:
                names[name] = evaluate(expr, names)
            yield next(case for case in lane["cases"]
                       if case["when"] is None or evaluate(case["when"], names)), names

    def pack(self, stream: str, names: dict, arrays: dict[str, np.ndarray],
             rng: np.random.Generator | None = None) -> list[dict]:
        """The beats of an input stream: ``{"data": tdata, "last": tlast}`` each.

        With ``rng``, everything the JSON calls ignored (lanes, padding bits,
        ``tlast`` of a stream that ignores it) carries random junk.
        """
        about = self.streams[stream]
        bits, tdata_bits = about["lane_bits"], about["tdata_bits"]
        used = about["lanes"] * bits
        junk = (lambda width: int(rng.integers(0, 1 << width))) if rng is not None else (
            lambda width: 0)
        beats = []
        for bound in self._walk(stream, names):
            word = 0
            for j, (case, lane_names) in enumerate(self._lanes(stream, bound)):
                if "element" in case:
                    element = case["element"]
                    index = tuple(evaluate(part, lane_names) for part in element["index"])
                    value = int(arrays[element["array"]][index])
                elif case["value"] is None:
                    value = junk(bits)
                else:
                    value = evaluate(case["value"], lane_names)
                word |= (value & ((1 << bits) - 1)) << (j * bits)
            if about["padding_bits"]["rule"] == "ignored" and tdata_bits > used:
                word |= junk(tdata_bits - used) << used
            beats.append({"data": word, "last": junk(1) if about["tlast"]["rule"] == "ignored"
                          else 0})
        if about["tlast"]["rule"] == "final_beat" and beats:
            beats[-1]["last"] = 1
        return beats

    def unpack(self, stream: str, names: dict, beats: list[dict],
               shapes: dict[str, tuple]) -> tuple[dict[str, np.ndarray], list[str]]:
        """Arrays from the beats of an output stream, and every broken layout rule.

        ``shapes`` gives each array's shape; the rules checked are the lane
        values the JSON fixes (e.g. 0), the padding bits and ``tlast``.
        """
        about = self.streams[stream]
        bits, used = about["lane_bits"], about["lanes"] * about["lane_bits"]
        arrays = {name: np.zeros(shape, dtype=np.int64) for name, shape in shapes.items()}
        problems = []
        walk = list(self._walk(stream, names))
        if len(walk) != len(beats):
            problems.append(f"{stream}: {len(beats)} beats, the JSON says {len(walk)}")
        for number, (bound, beat) in enumerate(zip(walk, beats)):
            word = beat["data"]
            if about["padding_bits"]["rule"] == "zero" and word >> used:
                problems.append(f"{stream} beat {number}: padding bits {word >> used:#x}")
            want_last = int(number == len(walk) - 1)
            if about["tlast"]["rule"] == "final_beat" and beat["last"] != want_last:
                problems.append(f"{stream} beat {number}: tlast {beat['last']}")
            for j, (case, lane_names) in enumerate(self._lanes(stream, bound)):
                raw = word >> (j * bits) & ((1 << bits) - 1)
                value = raw - (1 << bits) if raw >> (bits - 1) else raw
                if "element" in case:
                    element = case["element"]
                    index = tuple(evaluate(part, lane_names) for part in element["index"])
                    arrays[element["array"]][index] = value
                elif case["value"] is not None and value != evaluate(case["value"], lane_names):
                    problems.append(f"{stream} beat {number} lane {j}: {value}, the JSON says "
                                    f"{case['value']}")
        return arrays, problems
