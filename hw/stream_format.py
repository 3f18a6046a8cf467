"""The AXI4-Stream formats of the ``conv_accel`` top, generated for one build.

:class:`StreamFormat` describes, for an :class:`~convaccel.hw.config.AccelConfig`,
the three data ports of :class:`~convaccel.hw.conv_accel.ConvAccel`:

* ``s_axis_pixels`` - the input feature map ``x[c][iy][ix]``;
* ``s_axis_weights`` - the weights ``w[m][c % (C/groups)][r][s]`` in the
  systolic engine's tiling order, repeated for every block of output
  positions, all-zero tiles of a grouped layer left out;
* ``m_axis_out`` - the output feature map ``y[m][p][q]``.

For each it gives the beat layout (``tdata`` width, lanes, lane bits, what
unused lanes and padding bits carry, ``tlast``), the number of beats and the
exact beat order as nested loops with their index ranges and the element
every lane carries. The same object writes Markdown (:meth:`StreamFormat.to_markdown`)
and JSON (:meth:`StreamFormat.to_json`), both with a worked example for a
small layer, so a host driver can be written from either without reading
the hardware.

Formulas in the JSON are integer expressions in Python syntax
(:data:`EXPRESSION_SYNTAX`) over the layer's register fields
(:data:`LAYER_SYMBOLS`), the build's stream parameters and derived sizes,
so a driver may evaluate them as they stand. The Python methods
(:meth:`StreamFormat.sizes`, :meth:`StreamFormat.beats`, ...) compute the same
orders for the worked example; the tests check both against the packing
code of the cocotb driver and against the hardware.

Plain Python: no Amaranth here (like :mod:`convaccel.hw.register_map`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import NamedTuple

from .config import AccelConfig, checked_config

__all__ = ["EXPRESSION_SYNTAX", "FORMAT_VERSION", "LAYER_SYMBOLS", "STREAMS", "Element",
           "StreamFormat", "StreamLayer"]

#: Version of the JSON image (bumped when its structure changes).
FORMAT_VERSION = 2

#: The rules a driver needs to evaluate the JSON's formulas.
EXPRESSION_SYNTAX = (
    "Integer expressions in Python syntax: + - * // (floor division) % (modulo), "
    "comparisons, and/or/not, 'a if cond else b', min(), max(), ceil_div(a, b) = "
    "-(-a // b), sum(... for g in range(n)), the functions of 'functions' and the "
    "names of 'symbols' and 'derived'. Array elements are written name[i][j]... "
    "A stream's 'loops' run outermost first: {index, range} is a for loop, {let, expr} "
    "binds a name, {skip_if} leaves out the beats for which it holds.")

#: The three stream ports, in the order the docs list them.
STREAMS = ("pixels", "weights", "out")


class _Symbol(NamedTuple):
    name: str       # as used in the formulas
    field: str      # StreamLayer attribute
    register: str   # "register.field" of the conv_accel register map
    doc: str


#: Layer symbols of the formulas: each is one register field.
LAYER_SYMBOLS = (
    _Symbol("H", "height", "shape.height", "input height"),
    _Symbol("W", "width", "shape.width", "input width"),
    _Symbol("C", "in_channels", "channels.in_channels", "input channels"),
    _Symbol("M", "out_channels", "channels.out_channels", "output channels"),
    _Symbol("R", "kernel_h", "kernel.kernel_h", "kernel height"),
    _Symbol("S", "kernel_w", "kernel.kernel_w", "kernel width"),
    _Symbol("Uh", "stride_h", "kernel.stride_h", "vertical stride"),
    _Symbol("Uw", "stride_w", "kernel.stride_w", "horizontal stride"),
    _Symbol("Dh", "dilation_h", "kernel.dilation_h", "vertical dilation"),
    _Symbol("Dw", "dilation_w", "kernel.dilation_w", "horizontal dilation"),
    _Symbol("pt", "pad_top", "padding.top",
            "padding rows above the input (read as zero_points.input)"),
    _Symbol("pb", "pad_bottom", "padding.bottom",
            "padding rows below the input (read as zero_points.input)"),
    _Symbol("pl", "pad_left", "padding.left",
            "padding columns left of the input (read as zero_points.input)"),
    _Symbol("pr", "pad_right", "padding.right",
            "padding columns right of the input (read as zero_points.input)"),
    _Symbol("groups", "groups", "groups.groups", "channel groups (C for depthwise)"),
    _Symbol("pool", "pool_enable", "mode.pool_enable", "1: pooling on"),
    _Symbol("Kp", "pool_kernel", "mode.pool_kernel", "pooling window (Kp x Kp)"),
    _Symbol("Up", "pool_stride", "mode.pool_stride", "pooling stride"),
)

#: Weight tiles per kernel tap, and weight beats per block (L), as formulas.
_TILES_PER_TAP = "sum(hi(h) - lo(h) + 1 for h in range(G))"
_BLOCK_BEATS = f"R * S * rows * {_TILES_PER_TAP}"

# Build parameters that shape the streams: (symbol, AccelConfig attribute, register, doc).
_BUILD_SYMBOLS = (
    ("rows", "array_rows", "build0.array_rows",
     "array rows: channels per pixel beat, weight beats per weight tile"),
    ("cols", "array_cols", "build0.array_cols",
     "array columns: weights per weight beat, channels per output beat"),
    ("B", "array_block", "build5.array_block",
     "output positions per block; the weights are used again for every block"),
    ("D", "weight_buffer_depth", "build5.weight_buffer_depth",
     "weight beats the accelerator keeps: each block after the first sends only its beats "
     "from D on"),
    ("act_width", "act_width", "build0.act_width", "bits of a pixel or output lane"),
    ("weight_width", "weight_width", "build0.weight_width", "bits of a weight lane"),
)

# Derived sizes, in dependency order: (name, formula, doc).
_DERIVED = (
    ("G", "ceil_div(C, rows)",
     "channel groups per input pixel = input channel chunks of rows channels"),
    ("Go", "ceil_div(M, cols)", "channel groups per output pixel = output tiles"),
    ("Cg", "C // groups", "input channels per group"),
    ("Mg", "M // groups", "output channels per group"),
    ("P", "(H + pt + pb - Dh * (R - 1) - 1) // Uh + 1",
     "convolution output height (floor rule: input rows below the last window are read "
     "and dropped)"),
    ("Q", "(W + pl + pr - Dw * (S - 1) - 1) // Uw + 1",
     "convolution output width (floor rule)"),
    ("Po", "(P - Kp) // Up + 1 if pool else P", "output height (after pooling, floor rule)"),
    ("Qo", "(Q - Kp) // Up + 1 if pool else Q", "output width (after pooling, floor rule)"),
)

# Output tiles fed by input chunk g (channels g*rows .. g*rows+rows-1).
_FUNCTIONS = (
    ("lo", "g", "(g * rows // Cg) * Mg // cols",
     "first output tile fed by input chunk g: the tile of the first output channel of the "
     "group of channel g*rows (0 when groups = 1)"),
    ("hi", "g", "((min(g * rows + rows - 1, C - 1) // Cg + 1) * Mg - 1) // cols",
     "last output tile fed by input chunk g: the tile of the last output channel of the "
     "group of its last channel (Go - 1 when groups = 1)"),
)

_ARRAYS = (
    ("x", ("C", "H", "W"), "input feature map, act_width-bit signed"),
    ("w", ("M", "Cg", "R", "S"), "weights of output channel m (its group's Cg input "
                                 "channels), weight_width-bit signed"),
    ("y", ("M", "Po", "Qo"), "output feature map (after bias, requantization, "
                             "activation and pooling), act_width-bit signed"),
)


#: Fill of the worked example's arrays (:meth:`StreamFormat.example_values`) as formulas.
EXAMPLE_FILL = {"x": "wrap(16 * c + 4 * iy + ix - 20, act_width)",
                "w": "wrap(27 * m + 9 * ci + 3 * r + s - 40, weight_width)",
                "wrap": "wrap(v, n) = v reduced to n-bit two's complement"}


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _wrap(value: int, bits: int) -> int:
    """``value`` reduced to a ``bits``-wide two's complement number."""
    half = 1 << (bits - 1)
    return (value + half) % (2 * half) - half


@dataclasses.dataclass(frozen=True)
class StreamLayer:
    """One layer's register fields, as far as they shape the streams.

    The names are those of the register fields (``padding.top`` is
    ``pad_top``, ``mode.pool_enable`` is ``pool_enable``); see
    :data:`LAYER_SYMBOLS` for their symbols in the formulas.
    """

    height: int
    width: int
    in_channels: int
    out_channels: int
    kernel_h: int
    kernel_w: int
    stride_h: int = 1
    stride_w: int = 1
    dilation_h: int = 1
    dilation_w: int = 1
    pad_top: int = 0
    pad_bottom: int = 0
    pad_left: int = 0
    pad_right: int = 0
    groups: int = 1
    pool_enable: int = 0
    pool_kernel: int = 1
    pool_stride: int = 1

    def symbols(self) -> dict[str, int]:
        """``{symbol: value}`` for the formulas (``{"H": height, ...}``)."""
        return {s.name: getattr(self, s.field) for s in LAYER_SYMBOLS}


class Element(NamedTuple):
    """What a lane carries: element ``index`` of array ``array`` (``x``, ``w`` or ``y``)."""

    array: str
    index: tuple[int, ...]

    def __str__(self):
        return self.array + "".join(f"[{i}]" for i in self.index)


#: Lane contents other than an element: must be / is 0, or ignored (any value).
ZERO, IGNORED = 0, None


class StreamFormat:
    """Beat layout and order of the ``conv_accel`` streams of one build.

    Parameters
    ----------
    config : AccelConfig
        The build; only ``act_width``, ``weight_width``, ``array_rows``,
        ``array_cols``, ``array_block`` and ``weight_buffer_depth`` shape the
        streams (all readable in the ``build0`` and ``build5`` registers).
    """

    def __init__(self, config: AccelConfig):
        checked_config(config)
        self.config = config
        self.build = {symbol: getattr(config, attribute)
                      for symbol, attribute, _, _ in _BUILD_SYMBOLS}

    # -- beat layout ----------------------------------------------------------

    def layout(self, stream: str) -> dict:
        """``port``, ``direction``, ``lanes``, ``lane_bits``, ``tdata_bits`` of a stream."""
        rows, cols = self.build["rows"], self.build["cols"]
        act, weight = self.build["act_width"], self.build["weight_width"]
        port, direction, lanes, lane_bits = {
            "pixels": ("s_axis_pixels", "in", rows, act),
            "weights": ("s_axis_weights", "in", cols, weight),
            "out": ("m_axis_out", "out", cols, act),
        }[stream]
        return {"port": port, "direction": direction, "lanes": lanes, "lane_bits": lane_bits,
                "tdata_bits": _ceil_div(lanes * lane_bits, 8) * 8}

    def tdata(self, stream: str, values) -> int:
        """Pack one beat's lane values (lane 0 first) into its ``tdata`` word."""
        layout = self.layout(stream)
        bits = layout["lane_bits"]
        if len(values) != layout["lanes"]:
            raise ValueError(f"{stream}: {layout['lanes']} lanes, got {len(values)} values")
        word = 0
        for lane, value in enumerate(values):
            if _wrap(value, bits) != value:
                raise ValueError(f"{stream}: lane {lane} value {value} does not fit "
                                 f"{bits} signed bits")
            word |= (value & ((1 << bits) - 1)) << (lane * bits)
        return word

    # -- sizes and orders ------------------------------------------------------

    def sizes(self, layer: StreamLayer) -> dict[str, int]:
        """The derived sizes (``G``, ``Go``, ``Cg``, ``Mg``, ``P``, ``Q``, ``Po``, ``Qo``).

        Raises
        ------
        ValueError
            For a layer the hardware refuses (the ``error`` bit is named).
        """
        rows, cols = self.build["rows"], self.build["cols"]
        c_count, m_count, groups = layer.in_channels, layer.out_channels, layer.groups
        if groups < 1 or c_count % groups or m_count % groups:
            raise ValueError(f"groups {groups} must divide in_channels {c_count} and "
                             f"out_channels {m_count} (error bit 'groups')")
        # The floor rule: input rows/columns past the last window feed no output.
        p = (layer.height + layer.pad_top + layer.pad_bottom
             - layer.dilation_h * (layer.kernel_h - 1) - 1) // layer.stride_h + 1
        q = (layer.width + layer.pad_left + layer.pad_right
             - layer.dilation_w * (layer.kernel_w - 1) - 1) // layer.stride_w + 1
        if p < 1 or q < 1:
            raise ValueError("the kernel is larger than the padded input (error bit 'shape')")
        if layer.pool_enable and layer.pool_kernel > min(p, q):
            raise ValueError(f"pooling window {layer.pool_kernel} larger than the convolution "
                             f"output {p}x{q} (error bit 'pool')")

        def pooled(size):
            if not layer.pool_enable:
                return size
            return (size - layer.pool_kernel) // layer.pool_stride + 1

        return {"G": _ceil_div(c_count, rows), "Go": _ceil_div(m_count, cols),
                "Cg": c_count // groups, "Mg": m_count // groups,
                "P": p, "Q": q, "Po": pooled(p), "Qo": pooled(q)}

    def tile_range(self, layer: StreamLayer, chunk: int) -> tuple[int, int]:
        """``(lo, hi)``: the output tiles input chunk ``chunk`` feeds (weight beats sent)."""
        rows, cols = self.build["rows"], self.build["cols"]
        c_per_group = layer.in_channels // layer.groups
        m_per_group = layer.out_channels // layer.groups
        last_channel = min(chunk * rows + rows - 1, layer.in_channels - 1)
        return ((chunk * rows // c_per_group) * m_per_group // cols,
                ((last_channel // c_per_group + 1) * m_per_group - 1) // cols)

    def beat_counts(self, layer: StreamLayer) -> dict[str, int]:
        """Beats per layer of each stream."""
        n, rows, block = self.sizes(layer), self.build["rows"], self.build["B"]
        tiles_per_tap = sum(hi - lo + 1 for lo, hi in
                            (self.tile_range(layer, g) for g in range(n["G"])))
        per_block = layer.kernel_h * layer.kernel_w * rows * tiles_per_tap
        blocks = n["P"] * _ceil_div(n["Q"], block)
        return {"pixels": layer.height * layer.width * n["G"],
                "weights": per_block + (blocks - 1) * max(0, per_block - self.build["D"]),
                "out": n["Po"] * n["Qo"] * n["Go"]}

    def beats(self, stream: str, layer: StreamLayer) -> Iterator[tuple[dict, list]]:
        """``(loop indices, lanes)`` of every beat of ``stream``, in order.

        A lane is an :class:`Element`, ``0`` (the lane is, or must be, zero) or
        ``None`` (ignored: any value).
        """
        order = {"pixels": self._pixel_beats, "weights": self._weight_beats,
                 "out": self._out_beats}[stream]
        return order(layer, self.sizes(layer))

    @staticmethod
    def _raster(names, height, width, groups, lanes, lane):
        """Raster order (row, column, channel group); ``lane(channel, row, column)``."""
        for row in range(height):
            for column in range(width):
                for g in range(groups):
                    yield dict(zip(names, (row, column, g))), [
                        lane(channel, row, column)
                        for channel in range(g * lanes, g * lanes + lanes)]

    def _pixel_beats(self, layer, n):
        return self._raster(
            ("iy", "ix", "g"), layer.height, layer.width, n["G"], self.build["rows"],
            lambda c, iy, ix: Element("x", (c, iy, ix)) if c < layer.in_channels else IGNORED)

    def _weight_beats(self, layer, n):
        rows, cols, block = self.build["rows"], self.build["cols"], self.build["B"]
        c_count, m_count, c_per_group, m_per_group = (
            layer.in_channels, layer.out_channels, n["Cg"], n["Mg"])

        def lane(c, m, tap):
            if c >= c_count or m >= m_count:
                return IGNORED   # a padded channel (activation 0) or output (dropped)
            if c // c_per_group != m // m_per_group:
                return ZERO      # between groups inside a visited tile
            return Element("w", (m, c % c_per_group, tap // layer.kernel_w,
                                 tap % layer.kernel_w))

        # One block's beats; every further block sends those the buffer lacks.
        one_block = []
        for kt in range(layer.kernel_h * layer.kernel_w * n["G"]):
            tap, g = divmod(kt, n["G"])
            lo, hi = self.tile_range(layer, g)
            for mt in range(lo, hi + 1):
                for i in range(rows):
                    one_block.append(({"kt": kt, "mt": mt, "i": i}, [
                        lane(g * rows + i, mt * cols + j, tap) for j in range(cols)]))
        for p in range(n["P"]):
            for q0 in range(0, n["Q"], block):
                skipped = 0 if p == q0 == 0 else self.build["D"]
                for indices, lanes in one_block[skipped:]:
                    yield {"p": p, "q0": q0, **indices}, lanes

    def _out_beats(self, layer, n):
        return self._raster(
            ("p", "q", "g"), n["Po"], n["Qo"], n["Go"], self.build["cols"],
            lambda m, p, q: Element("y", (m, p, q)) if m < layer.out_channels else ZERO)

    # -- the description --------------------------------------------------------

    def _streams(self) -> dict:
        lane_rule = ("lane j (0 = lowest) in tdata bits [j*lane_bits + lane_bits - 1 : "
                     "j*lane_bits], two's complement")
        pixels = {
            **self.layout("pixels"), "lane_position": lane_rule,
            "padding_bits": {"rule": "ignored",
                             "doc": "tdata bits above lanes*lane_bits are ignored"},
            "tlast": {"rule": "final_beat",
                      "doc": "required on the final beat of the frame and only there: an "
                             "earlier tlast sets error.short_frame, a final beat without it "
                             "sets error.long_frame (the beats up to the next tlast are read "
                             "and dropped)"},
            "beats": "H * W * G",
            "loops": _raster_loops("iy", "ix", "H", "W", "G", "input"),
            "lane": {"index": "j", "let": [["c", "g * rows + j"]], "cases": [
                {"when": "c < C", "element": {"array": "x", "index": ["c", "iy", "ix"]}},
                {"when": None, "value": None,
                 "doc": "ignored (channels >= C of the last group read as 0)"},
            ]},
            "notes": [
                "Every input pixel is sent, also rows and columns no window touches "
                "(below or right of the last window by the floor rule): the accelerator "
                "reads and drops them, and done rises only after the frame's tlast beat.",
            ],
        }
        weights = {
            **self.layout("weights"), "lane_position": lane_rule,
            "padding_bits": {"rule": "ignored",
                             "doc": "tdata bits above lanes*lane_bits are ignored"},
            "tlast": {"rule": "ignored", "doc": "ignored (any value)"},
            "beats": f"{_BLOCK_BEATS} + (P * ceil_div(Q, B) - 1) * max(0, {_BLOCK_BEATS} - D)",
            "loops": [
                {"index": "p", "range": ["0", "P"], "doc": "convolution output row"},
                {"index": "q0", "range": ["0", "Q", "B"],
                 "doc": "block: output positions q0 .. min(q0 + B, Q) - 1 of row p (blocks "
                        "end at row ends)"},
                {"index": "kt", "range": ["0", "R * S * G"],
                 "doc": "reduction tile: kernel tap t = kt // G (r = t // S, s = t % S), "
                        "input chunk g = kt % G"},
                {"let": "t", "expr": "kt // G"},
                {"let": "g", "expr": "kt % G"},
                {"index": "mt", "range": ["lo(g)", "hi(g) + 1"],
                 "doc": "output tile (channels mt*cols ..); only the tiles chunk g feeds "
                        "(all Go tiles when groups = 1): the all-zero tiles of a grouped "
                        "layer are not sent"},
                {"index": "i", "range": ["0", "rows"],
                 "doc": "array row: reduction term k = kt * rows + i"},
                {"let": "b", "expr": "rows * (t * " + _TILES_PER_TAP + " + sum(hi(h) - lo(h) "
                                     "+ 1 for h in range(g)) + mt - lo(g)) + i"},
                {"skip_if": "(p > 0 or q0 > 0) and b < D",
                 "doc": "beat b of the block: the accelerator replays beats below D"},
            ],
            "lane": {"index": "j", "let": [["c", "g * rows + i"], ["m", "mt * cols + j"]],
                     "cases": [
                {"when": "c >= C or m >= M", "value": None,
                 "doc": "ignored: a padded input channel (its activation is 0) or an output "
                        "channel >= M (dropped)"},
                {"when": "c // Cg == m // Mg",
                 "element": {"array": "w", "index": ["m", "c % Cg", "t // S", "t % S"]}},
                {"when": None, "value": "0",
                 "doc": "must be 0: input and output channel in different groups"},
            ]},
            "notes": [
                "Reduction order: k = ((r * S + s) * G + g) * rows + lane for input channel "
                "c = g * rows + lane at kernel tap (r, s); each weight tile is the rows x "
                "cols slice W[kt*rows : kt*rows + rows][mt*cols : mt*cols + cols] of the "
                "K x M matrix W[k][m], sent one row (i) per beat.",
                "The content does not depend on p or q0: every block uses the same "
                "sequence of L = R * S * rows * sum(hi(g) - lo(g) + 1) beats. The first "
                "block sends all L; each further block sends only beats D ... L - 1 (none "
                "when L <= D), because the accelerator keeps the first D beats and replays "
                "them (D = 0: every block sends all L).",
            ],
        }
        out = {
            **self.layout("out"), "lane_position": lane_rule,
            "padding_bits": {"rule": "zero", "doc": "tdata bits above lanes*lane_bits are 0"},
            "tlast": {"rule": "final_beat",
                      "doc": "1 on the final beat of the layer, 0 on every other"},
            "beats": "Po * Qo * Go",
            "loops": _raster_loops("p", "q", "Po", "Qo", "Go", "output"),
            "lane": {"index": "j", "let": [["m", "g * cols + j"]], "cases": [
                {"when": "m < M", "element": {"array": "y", "index": ["m", "p", "q"]}},
                {"when": None, "value": "0", "doc": "0 (channels >= M of the last group)"},
            ]},
            "notes": [],
        }
        return {"pixels": pixels, "weights": weights, "out": out}

    def to_dict(self) -> dict:
        """Plain ``dict``/``list`` image (what :meth:`to_json` writes)."""
        streams = self._streams()
        return {
            "name": "conv_accel streams", "version": FORMAT_VERSION,
            "doc": "Beat layout and order of the AXI4-Stream ports of conv_accel for this "
                   "build. Formulas: see 'syntax'.",
            "syntax": EXPRESSION_SYNTAX,
            "build": dict(self.build),
            "symbols": {
                **{s.name: {"register": s.register, "doc": s.doc} for s in LAYER_SYMBOLS},
                **{name: {"register": register, "doc": doc, "value": self.build[name]}
                   for name, _, register, doc in _BUILD_SYMBOLS},
            },
            "derived": [{"name": name, "expr": expr, "doc": doc} for name, expr, doc in _DERIVED],
            "functions": {name: {"args": [arg], "expr": expr, "doc": doc}
                          for name, arg, expr, doc in _FUNCTIONS},
            "arrays": {name: {"shape": list(shape), "doc": doc} for name, shape, doc in _ARRAYS},
            "protocol": self._protocol(),
            "streams": streams,
            "example": self.example(),
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        """JSON text of :meth:`to_dict`."""
        return json.dumps(self.to_dict(), indent=indent)

    @staticmethod
    def _protocol() -> list[str]:
        return [
            "Write the layer registers and the per-channel parameters, then control.start; "
            "then drive s_axis_pixels and s_axis_weights and take m_axis_out at the same "
            "time: each stream advances only as the others do (weights are taken tile by "
            "tile as the array needs them), so sending one stream to its end before "
            "starting another can deadlock.",
            "tready of the inputs is 0 while no layer runs: beats sent before start wait.",
            "status.done rises after the last output beat and after the pixel frame's "
            "tlast beat: the next control.start is then taken.",
            "After an error or control.cancel the unread rest of the input streams is not "
            "consumed: the host discards it (and stops waiting for output).",
            "Per-channel parameters (param_*) are written while no layer runs: a "
            "param_write while status.busy is ignored and sets error.param_busy.",
        ]

    # -- worked example -----------------------------------------------------------

    def example_layer(self) -> StreamLayer:
        """A small dense layer that fits every build: C = M = 3, 3x3, 4x4, padding 1."""
        cfg = self.config
        kernel = min(3, cfg.max_kernel)
        pad = min(1, cfg.max_padding, (kernel - 1) // 2)
        return StreamLayer(height=min(4, cfg.max_height), width=min(4, cfg.max_width),
                           in_channels=min(3, cfg.max_in_channels),
                           out_channels=min(3, cfg.max_out_channels), kernel_h=kernel,
                           kernel_w=kernel, pad_top=pad, pad_bottom=pad, pad_left=pad,
                           pad_right=pad)

    def grouped_example_layer(self) -> StreamLayer:
        """Depthwise 3x3 over two input chunks (fewer if the build's maxima say so)."""
        cfg = self.config
        channels = min(2 * self.build["rows"], cfg.max_in_channels, cfg.max_out_channels)
        kernel = min(3, cfg.max_kernel)
        return StreamLayer(height=min(4, cfg.max_height), width=min(4, cfg.max_width),
                           in_channels=channels, out_channels=channels, kernel_h=kernel,
                           kernel_w=kernel, groups=channels)

    def example_values(self, element: Element) -> int:
        """The worked example's fill: small distinct values, negative ones included."""
        a, b, c = element.index[:3]
        if element.array == "x":
            return _wrap(16 * a + 4 * b + c - 20, self.build["act_width"])
        d = element.index[3]
        return _wrap(27 * a + 9 * b + 3 * c + d - 40, self.build["weight_width"])

    def example(self) -> dict:
        """The worked example: a small dense layer beat by beat, a grouped one's tile map."""
        layer = self.example_layer()
        streams = {}
        for stream in STREAMS:
            beats = list(self.beats(stream, layer))
            first = []
            # Weights: at least two whole tiles, so the step to the next tile shows.
            shown = min(32, max(8, 2 * self.build["rows"])) if stream == "weights" else 8
            for number, (indices, lanes) in enumerate(beats[:shown]):
                entry = {"beat": number, "indices": indices,
                         "lanes": [_lane_text(lane) for lane in lanes]}
                if stream != "out":
                    digits = self.layout(stream)["tdata_bits"] // 4
                    entry["tdata"] = f"0x{self._example_tdata(stream, lanes):0{digits}x}"
                first.append(entry)
            streams[stream] = {"beats": len(beats), "first": first}
        block_of = [(indices["p"], indices["q0"]) for indices, _ in self.beats("weights", layer)]
        blocks = [number for number, block in enumerate(block_of)
                  if number == 0 or block != block_of[number - 1]]
        streams["weights"]["block_starts"] = blocks
        grouped = self.grouped_example_layer()
        sizes = self.sizes(grouped)
        dense = dataclasses.replace(grouped, groups=1)
        return {
            "layer": layer.symbols(), "sizes": self.sizes(layer),
            "fill": EXAMPLE_FILL, "streams": streams,
            "grouped": {
                "layer": grouped.symbols(), "sizes": sizes,
                "tiles": [{"g": g, "lo": lo, "hi": hi} for g, (lo, hi) in
                          enumerate(self.tile_range(grouped, g) for g in range(sizes["G"]))],
                "weight_beats": self.beat_counts(grouped)["weights"],
                "weight_beats_if_dense": self.beat_counts(dense)["weights"],
            },
        }

    def _example_tdata(self, stream: str, lanes) -> int:
        return self.tdata(stream, [self.example_values(lane) if isinstance(lane, Element)
                                   else 0 for lane in lanes])

    # -- Markdown -------------------------------------------------------------------

    def to_markdown(self) -> str:
        """The streams section: layout table, loop nests, rules, worked example."""
        image = self.to_dict()
        build = image["build"]
        lines = [
            "# Streams of `conv_accel`", "",
            f"Build: {build['rows']} x {build['cols']} array, array_block {build['B']}, "
            f"{build['act_width']}-bit activations, {build['weight_width']}-bit weights. "
            "The same content as JSON: `conv_accel_streams.json` (formulas in Python "
            "syntax; `ceil_div(a, b)` rounds up, `//` rounds down).", "",
            "## Protocol", "",
        ]
        lines += [f"* {rule}" for rule in image["protocol"]]
        lines += ["", "## Symbols", "",
                  "| Symbol | Register field | Meaning | This build |", "| --- | --- | --- | --- |"]
        for name, symbol in image["symbols"].items():
            lines.append(f"| `{name}` | `{symbol['register']}` | {symbol['doc']} | "
                         f"{symbol.get('value', '')} |")
        lines += ["", "Derived sizes:", "", "| Name | Formula | Meaning |", "| --- | --- | --- |"]
        lines += [f"| `{d['name']}` | `{d['expr']}` | {d['doc']} |" for d in image["derived"]]
        lines += [f"| `{name}(g)` | `{f['expr']}` | {f['doc']} |"
                  for name, f in image["functions"].items()]
        lines += ["", "Arrays (golden-model layout):", ""]
        lines += [f"* `{name}[{']['.join(a['shape'])}]`: {a['doc']}"
                  for name, a in image["arrays"].items()]
        lines += ["", "## Beat layout", "",
                  "| Stream | Port | tdata bits | Lanes | Lane bits | Lane j | Padding bits | "
                  "tlast | Beats per layer |", "| --- | --- | ---: | ---: | ---: | --- | --- | "
                  "--- | --- |"]
        for stream, s in image["streams"].items():
            bits = s["lane_bits"]
            lines.append(
                f"| {stream} | `{s['port']}` ({s['direction']}) | {s['tdata_bits']} | "
                f"{s['lanes']} | {bits} | bits [{bits}*j + {bits - 1} : {bits}*j], signed | "
                f"{s['padding_bits']['doc']} | {s['tlast']['doc']} | `{s['beats']}` |")
        lines += ["", "Lane 0 is in the low bits; every lane is two's complement."]
        for stream, s in image["streams"].items():
            lines += ["", f"## Order: {stream} (`{s['port']}`)", "", "```", *_loop_text(s), "```"]
            lines += [""] + [f"* {note}" for note in s["notes"]] if s["notes"] else []
        lines += self._example_markdown(image["example"])
        return "\n".join(lines) + "\n"

    def _example_markdown(self, example: dict) -> list[str]:
        layer, sizes = example["layer"], example["sizes"]
        lines = [
            "", "## Worked example", "",
            f"Layer: C = {layer['C']}, M = {layer['M']}, {layer['R']}x{layer['S']} kernel, "
            f"{layer['H']}x{layer['W']} input, padding {layer['pt']}, stride 1, groups 1, "
            "no pooling. Sizes: " + ", ".join(f"{k} = {v}" for k, v in sizes.items()) + ".",
            f"Fill for the tdata column: x[c][iy][ix] = `{example['fill']['x']}`, "
            f"w[m][ci][r][s] = `{example['fill']['w']}` ({example['fill']['wrap']}); ignored "
            "lanes are shown as `-` and sent as 0.",
        ]
        for stream, listed in example["streams"].items():
            lines += ["", f"{stream}: {listed['beats']} beats; the first "
                          f"{len(listed['first'])}:", ""]
            names = list(listed["first"][0]["indices"])
            header = ["beat", *names, *(f"lane {j}" for j in range(len(
                listed["first"][0]["lanes"])))] + (["tdata"] if stream != "out" else [])
            lines += ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
            for entry in listed["first"]:
                cells = [str(entry["beat"]), *(str(entry["indices"][n]) for n in names),
                         *(f"`{lane}`" for lane in entry["lanes"])]
                if "tdata" in entry:
                    cells.append(f"`{entry['tdata']}`")
                lines.append("| " + " | ".join(cells) + " |")
            if "block_starts" in listed:
                lines += ["", "The weight sequence restarts (same beats) for every block, at "
                              f"beats {', '.join(map(str, listed['block_starts']))}."]
        grouped = example["grouped"]
        g_layer = grouped["layer"]
        lines += ["", f"Grouped-tile skipping: depthwise {g_layer['R']}x{g_layer['S']}, "
                      f"C = M = groups = {g_layer['C']} (G = {grouped['sizes']['G']} input "
                      f"chunks, Go = {grouped['sizes']['Go']} output tiles). Tiles sent per "
                      "reduction tile of chunk g:", "",
                  "| g | lo(g) | hi(g) |", "| ---: | ---: | ---: |"]
        lines += [f"| {t['g']} | {t['lo']} | {t['hi']} |" for t in grouped["tiles"]]
        lines += ["", f"Weight beats: {grouped['weight_beats']} (a dense layer of the same "
                      f"shape: {grouped['weight_beats_if_dense']})."]
        return lines


def _raster_loops(row, column, height, width, groups, what) -> list[dict]:
    """The loop nest of a raster-order stream (pixels in, layer output out)."""
    return [{"index": row, "range": ["0", height], "doc": f"{what} row"},
            {"index": column, "range": ["0", width], "doc": f"{what} column"},
            {"index": "g", "range": ["0", groups], "doc": "channel group"}]


def _lane_text(lane) -> str:
    if isinstance(lane, Element):
        return str(lane)
    return "-" if lane is IGNORED else "0"


def _loop_text(stream: dict) -> list[str]:
    """A stream's loop nest as indented pseudo-Python."""
    lines, depth = [], 0
    for loop in stream["loops"]:
        pad = "  " * depth
        if "let" in loop:
            lines.append(f"{pad}{loop['let']} = {loop['expr']}")
            continue
        if "skip_if" in loop:
            lines.append(f"{pad}if {loop['skip_if']}: continue"
                         + (f"    # {loop['doc']}" if loop.get("doc") else ""))
            continue
        lines.append(f"{pad}for {loop['index']} in range({', '.join(loop['range'])}):"
                     + (f"    # {loop['doc']}" if loop.get("doc") else ""))
        depth += 1
    pad = "  " * depth
    lane = stream["lane"]
    lines.append(f"{pad}beat: for {lane['index']} in range({stream['lanes']}):    # lanes")
    pad += "  "
    lines += [f"{pad}{name} = {expr}" for name, expr in lane["let"]]
    for number, case in enumerate(lane["cases"]):
        if "element" in case:
            element = case["element"]
            what = element["array"] + "".join(f"[{i}]" for i in element["index"])
        else:
            what = "ignored" if case["value"] is None else case["value"]
        keyword = "if" if number == 0 else ("elif" if case["when"] else "else")
        condition = f" {case['when']}" if case["when"] else ""
        note = f"    # {case['doc']}" if case.get("doc") else ""
        lines.append(f"{pad}{keyword}{condition}: lane {lane['index']} = {what}{note}")
    return lines
