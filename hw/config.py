"""The one generate-time configuration object of convaccel.

Every part of the project - the Amaranth hardware, the cocotb harness, the
command-line scripts - takes its widths and maxima from an
:class:`AccelConfig`. The golden models receive the same numbers as plain
values (``golden/`` imports nothing from ``hw/``).

The configuration is frozen and validates itself on construction: a bad value
raises :class:`ValueError` naming the parameter and the value. It round-trips
through JSON (:meth:`AccelConfig.to_json`, :meth:`AccelConfig.from_json`) so a
build can be described by a file, and a few named presets cover common uses
(:data:`PRESETS`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import numbers
from dataclasses import dataclass
from pathlib import Path

__all__ = ["AccelConfig", "MAX_MEMORY_BITS", "MAX_MEMORY_WORDS", "PRESETS", "checked_config",
           "signed_width"]

#: Largest depth (words) of any one memory a build may have. Generating the
#: Verilog takes time and host memory in proportion to the words (about 10 s
#: per 2**16 words); 2**17 is twice the ``large`` preset's line buffer.
MAX_MEMORY_WORDS = 2 ** 17

#: Largest total of on-chip memory bits a build may have: 16 Mibit, more than
#: the block RAM of the FPGAs the project targets (an LFE5U-85F has 3.7 Mbit).
MAX_MEMORY_BITS = 2 ** 24


def signed_width(low: int, high: int) -> int:
    """Smallest two's complement width holding every integer in ``[low, high]``.

    >>> signed_width(-128, 127)
    8
    >>> signed_width(-128, 128)
    9
    """
    if low > high:
        raise ValueError(f"signed_width: low ({low}) must not exceed high ({high})")
    width = 1
    while not (-(1 << (width - 1)) <= low and high <= (1 << (width - 1)) - 1):
        width += 1
    return width


def _is_bool(value) -> bool:
    """True for Python and NumPy booleans (without importing NumPy)."""
    kind = type(value)
    return isinstance(value, bool) or (kind.__module__ == "numpy"
                                       and kind.__name__ in ("bool", "bool_"))


def _ceil_log2(n: int) -> int:
    """Bits that address ``n`` words: ``ceil(log2(n))``, 0 for ``n = 1``."""
    return (n - 1).bit_length()


#: What each memory's depth grows with (for the error message).
_MEMORY_SIZED_BY = {
    "window line buffer": "max_kernel, max_dilation, max_width, max_in_channels / array_rows",
    "pooling line buffer": "max_pool_kernel, max_width, max_out_channels / array_cols",
    "engine activation buffer": "array_block",
    "engine accumulator buffer": "array_block, max_out_channels / array_cols",
    "requantization parameters": "max_out_channels / array_cols",
    "weight buffer": "weight_buffer_depth",
}


# (field, smallest allowed, largest allowed, what it is) - one table so the
# checks and their messages cannot drift apart.
_INT_LIMITS = (
    ("act_width", 2, 16, "activation width in bits (signed)"),
    ("weight_width", 2, 16, "weight width in bits (signed)"),
    ("bias_width", 2, 32, "bias width in bits (signed; the conv_accel top needs "
                          "bias_width <= 32 for its 32-bit bias register)"),
    ("mult_width", 1, 32, "requantization multiplier width in bits (unsigned)"),
    ("shift_width", 1, 6, "requantization shift field width in bits"),
    ("array_rows", 1, 64, "systolic array rows (reduction direction)"),
    ("array_cols", 1, 64, "systolic array columns (output-channel direction)"),
    ("array_block", 1, 4096, "output positions per block of the array sequencer"),
    ("weight_buffer_depth", 0, (1 << 16) - 1, "weight buffer beats of array_cols weights (0: no "
                                         "buffer, the weight stream repeats per block)"),
    ("max_in_channels", 1, 4096, "largest input channel count C"),
    ("max_out_channels", 1, 4096, "largest output channel count M"),
    ("max_height", 1, 4096, "largest input height H"),
    ("max_width", 1, 4096, "largest input width W"),
    ("max_kernel", 1, 16, "largest kernel height/width R, S"),
    ("max_stride", 1, 8, "largest convolution stride per axis"),
    ("max_dilation", 1, 8, "largest convolution dilation per axis"),
    ("max_padding", 0, 16, "largest zero padding on any side"),
    ("max_pool_kernel", 1, 8, "largest pooling window per axis"),
    ("max_pool_stride", 1, 8, "largest pooling stride per axis"),
)


@dataclass(frozen=True)
class AccelConfig:
    """Generate-time parameters of a convaccel build.

    Parameters
    ----------
    act_width, weight_width : int
        Signed two's complement widths of activations and weights (8 by
        default). Requantized outputs have ``act_width`` bits too.
    bias_width : int
        Signed width of the per-output-channel bias (32 by default).
    mult_width : int
        Width of the unsigned per-channel requantization multiplier ``M0``.
    shift_width : int
        Width of the per-channel right shift ``sh``; every shift from 0 to
        ``2**shift_width - 1`` is supported.
    array_rows, array_cols : int
        Systolic array size. Rows run along the reduction (``C*R*S``), columns
        along output channels.
    array_block : int
        Output positions (vectors) the array sequencer keeps in flight
        together: it walks every reduction and output tile over one block
        before the next, so its accumulator buffer holds ``array_block``
        x ``max_out_channels`` sums. Blocks of at least
        ``array_rows + 2`` vectors hide weight loading.
    weight_buffer_depth : int
        Beats (``array_cols`` weights each) of the on-chip weight buffer: a
        layer sends its weights once and the engine replays them for every
        further block; beats above the depth are sent again per block. 0
        builds none. The default, 4608, holds a 3x3 64 -> 64 layer on the
        8x8 array (18 block RAMs of 512 x 36 on ECP5).
    max_in_channels, max_out_channels : int
        Largest ``C`` and ``M`` a layer may use at run time.
    max_height, max_width : int
        Largest input feature map ``H`` and ``W``.
    max_kernel : int
        Largest kernel height and width (``R`` and ``S``).
    max_stride, max_dilation, max_padding : int
        Largest stride and dilation per axis and largest zero padding per side.
    pool_support : bool
        Must be True: the conv core's pooling unit also reorders its output,
        so every top that runs a layer has one (kept for JSON compatibility).
    max_pool_kernel, max_pool_stride : int
        Largest pooling window and stride per axis.

    Raises
    ------
    ValueError
        If any parameter is out of range, or a combination cannot be built
        (``pool_support=False``, ``array_cols > max_out_channels``, a
        requantization product wider than 64 bits, memories above
        :data:`MAX_MEMORY_WORDS` / :data:`MAX_MEMORY_BITS`); the message
        names the parameters and the values.

    Notes
    -----
    :attr:`acc_width` is derived, not chosen: it is the exact signed width that
    holds the worst-case sum of :attr:`max_reduction` products plus any
    bias, so no layer within the maxima can overflow.
    """

    act_width: int = 8
    weight_width: int = 8
    bias_width: int = 32
    mult_width: int = 16
    shift_width: int = 6
    array_rows: int = 8
    array_cols: int = 8
    array_block: int = 64
    weight_buffer_depth: int = 4608
    max_in_channels: int = 64
    max_out_channels: int = 64
    max_height: int = 64
    max_width: int = 64
    max_kernel: int = 7
    max_stride: int = 4
    max_dilation: int = 3
    max_padding: int = 3
    pool_support: bool = True
    max_pool_kernel: int = 3
    max_pool_stride: int = 3

    def __post_init__(self):
        for name, low, high, what in _INT_LIMITS:
            value = getattr(self, name)
            # bool is an int subclass; True as a width is always a mistake.
            # NumPy integers are integers (they come from arrays and sweeps).
            if not isinstance(value, numbers.Integral) or _is_bool(value):
                raise ValueError(
                    f"AccelConfig.{name} ({what}) must be an integer, got {value!r}")
            # Plain ints from here on, so JSON and hashing see the same values.
            object.__setattr__(self, name, int(value))
            if not low <= value <= high:
                raise ValueError(
                    f"AccelConfig.{name} ({what}) must be in {low}..{high}, got {value}")
        if not _is_bool(self.pool_support):
            raise ValueError(
                f"AccelConfig.pool_support must be True or False, got {self.pool_support!r}")
        object.__setattr__(self, "pool_support", bool(self.pool_support))
        if not self.pool_support:
            # The conv core's pooling unit also turns the engine's block order
            # into raster order, so every top that runs a layer needs it.
            raise ValueError(
                "AccelConfig.pool_support: the conv_core and conv_accel tops need "
                "pool_support=True, got False")
        if self.array_cols > self.max_out_channels:
            raise ValueError(
                f"AccelConfig.array_cols ({self.array_cols}) must not exceed max_out_channels "
                f"({self.max_out_channels}): a beat carries array_cols output channels")
        # The golden models compute in int64 and the requantizer multiplies the
        # accumulator by the multiplier: keep that product and its rounding
        # term inside 64 bits so hardware and model can never disagree.
        if self.acc_width + self.mult_width + 1 > 64:
            raise ValueError(
                f"AccelConfig: acc_width ({self.acc_width}, derived from act_width="
                f"{self.act_width}, weight_width={self.weight_width}, bias_width="
                f"{self.bias_width}, max_kernel={self.max_kernel}, max_in_channels="
                f"{self.max_in_channels}) + mult_width ({self.mult_width}) + 1 exceeds 64 bits")
        memories = self.memories
        name, (words, width) = max(memories.items(), key=lambda item: item[1][0])
        if words > MAX_MEMORY_WORDS:
            raise ValueError(
                f"AccelConfig: the {name} would have {words} words of {width} bits, above the "
                f"limit of {MAX_MEMORY_WORDS} words per memory; lower the maxima it is sized "
                f"for ({_MEMORY_SIZED_BY[name]})")
        if self.memory_bits > MAX_MEMORY_BITS:
            sizes = ", ".join(f"{key} {w * b} bits" for key, (w, b) in memories.items())
            raise ValueError(
                f"AccelConfig: the memories would hold {self.memory_bits} bits ({sizes}), above "
                f"the limit of {MAX_MEMORY_BITS} bits (16 Mibit)")

    # -- derived widths ---------------------------------------------------

    @property
    def act_min(self) -> int:
        """Most negative activation (and requantized output) value."""
        return -(1 << (self.act_width - 1))

    @property
    def act_max(self) -> int:
        """Most positive activation (and requantized output) value."""
        return (1 << (self.act_width - 1)) - 1

    @property
    def weight_min(self) -> int:
        return -(1 << (self.weight_width - 1))

    @property
    def weight_max(self) -> int:
        return (1 << (self.weight_width - 1)) - 1

    @property
    def bias_min(self) -> int:
        return -(1 << (self.bias_width - 1))

    @property
    def bias_max(self) -> int:
        return (1 << (self.bias_width - 1)) - 1

    @property
    def max_shift(self) -> int:
        """Largest requantization shift the hardware accepts."""
        return (1 << self.shift_width) - 1

    @property
    def max_multiplier(self) -> int:
        """Largest requantization multiplier the hardware accepts."""
        return (1 << self.mult_width) - 1

    @property
    def product_width(self) -> int:
        """Exact signed width of one activation x weight product."""
        extremes = [a * w for a in (self.act_min, self.act_max)
                    for w in (self.weight_min, self.weight_max)]
        return signed_width(min(extremes), max(extremes))

    @property
    def max_vectors(self) -> int:
        """Largest number of output positions of one layer (``H * W``)."""
        return self.max_height * self.max_width

    @property
    def max_reduction(self) -> int:
        """Largest number of products summed into one output (``C*R*S``).

        ``C`` counts channels in whole groups of ``array_rows`` (the window
        generator feeds the array one such group per cycle), so this is
        ``ceil(max_in_channels / array_rows) * array_rows * max_kernel**2``.
        """
        channels = -(-self.max_in_channels // self.array_rows) * self.array_rows
        return channels * self.max_kernel * self.max_kernel

    @property
    def acc_low(self) -> int:
        """Most negative value an accumulator can reach (products + bias)."""
        most_negative_product = min(a * w for a in (self.act_min, self.act_max)
                                    for w in (self.weight_min, self.weight_max))
        return self.max_reduction * most_negative_product + self.bias_min

    @property
    def acc_high(self) -> int:
        """Most positive value an accumulator can reach (products + bias)."""
        most_positive_product = max(a * w for a in (self.act_min, self.act_max)
                                    for w in (self.weight_min, self.weight_max))
        return self.max_reduction * most_positive_product + self.bias_max

    @property
    def acc_width(self) -> int:
        """Exact accumulator width: no layer within the maxima can overflow it."""
        return signed_width(self.acc_low, self.acc_high)

    @property
    def memories(self) -> dict[str, tuple[int, int]]:
        """Memories of a ``conv_accel`` build sized for the maxima: name -> (words, bits per word).

        The line buffers round the width and the channel groups up to powers
        of two (their addresses are concatenated); the requantization
        parameters are one memory per output lane, the deepest is listed.
        """
        rows, cols = self.array_rows, self.array_cols
        ring = (self.max_kernel - 1) * self.max_dilation + 1
        x_span = 1 << _ceil_log2(self.max_width)
        in_groups = 1 << _ceil_log2(-(-self.max_in_channels // rows))
        out_groups = -(-self.max_out_channels // cols)
        return {
            "window line buffer": (ring * x_span * in_groups, rows * self.act_width),
            "pooling line buffer": (self.max_pool_kernel * x_span
                                    * (1 << _ceil_log2(out_groups)), cols * self.act_width),
            "engine activation buffer": (self.array_block, rows * self.act_width),
            "engine accumulator buffer": (self.array_block << max(1, _ceil_log2(out_groups)),
                                          cols * self.acc_width),
            "requantization parameters": (out_groups, cols * (self.bias_width + self.mult_width
                                                              + self.shift_width)),
            **({"weight buffer": (self.weight_buffer_depth, cols * self.weight_width)}
               if self.weight_buffer_depth else {}),
        }

    @property
    def weight_beats_per_block(self) -> int:
        """Most weight beats the engine can ask for per block (a layer at the maxima)."""
        reduction_tiles = -(-self.max_reduction // self.array_rows)
        output_tiles = -(-self.max_out_channels // self.array_cols)
        return self.array_rows * reduction_tiles * output_tiles

    @property
    def memory_bits(self) -> int:
        """Bits in all memories of a ``conv_accel`` build (see :attr:`memories`)."""
        return sum(words * width for words, width in self.memories.values())

    # -- presets, JSON, identity ----------------------------------------

    @classmethod
    def preset(cls, name: str) -> "AccelConfig":
        """Return the named preset (see :data:`PRESETS`)."""
        try:
            return PRESETS[name]
        except KeyError:
            raise ValueError(
                f"unknown preset {name!r}; choose one of {', '.join(sorted(PRESETS))}"
            ) from None

    @classmethod
    def load(cls, spec: str | Path) -> "AccelConfig":
        """Return a preset by name, or the configuration in a JSON file."""
        if isinstance(spec, str) and spec in PRESETS:
            return PRESETS[spec]
        path = Path(spec)
        if path.suffix == ".json" or path.exists():
            return cls.read_file(path)[0]
        raise ValueError(
            f"{str(spec)!r} is neither a preset ({', '.join(sorted(PRESETS))}) "
            "nor a configuration JSON file")

    @classmethod
    def read_file(cls, path: str | Path) -> tuple["AccelConfig", list[str]]:
        """The configuration in a JSON file, and the parameters the file leaves out.

        Parameters the file does not set take the ``default`` preset's value
        (the dataclass defaults); they are returned, sorted, so a caller can
        say so. Every error message starts with the file name.
        """
        path = Path(path)
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as error:
            reason = getattr(error, "strerror", None) or error
            raise ValueError(f"cannot read configuration file {str(path)!r}: {reason}") from None
        data = _json_value(text, str(path))
        try:
            config = cls.from_dict(data)
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None
        return config, sorted(set(_field_names()) - set(data))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "AccelConfig":
        if not isinstance(data, dict):
            raise ValueError(f"configuration must be a JSON object, got {type(data).__name__}")
        known = _field_names()
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(
                f"unknown configuration parameter(s) {', '.join(map(repr, unknown))}; "
                f"known parameters: {', '.join(sorted(known))}")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "AccelConfig":
        return cls.from_dict(_json_value(text, "configuration"))

    def replace(self, **changes) -> "AccelConfig":
        """Return a copy with some parameters changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def digest(self) -> str:
        """Short stable hash of the parameters, for build caches and file names."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:12]


def checked_config(config) -> "AccelConfig":
    """``config`` itself, or a ``TypeError`` when it is not an :class:`AccelConfig`
    (what every hardware block takes first)."""
    if not isinstance(config, AccelConfig):
        raise TypeError(f"config must be an AccelConfig, got {config!r}")
    return config


def _field_names() -> list[str]:
    return [field.name for field in dataclasses.fields(AccelConfig)]


def _json_value(text: str, what: str):
    """``text`` parsed as JSON; a ``ValueError`` naming ``what`` if it is not JSON."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{what} is not valid JSON: {error}") from None


#: Named configurations. ``tiny`` keeps simulations fast; ``default`` is the
#: build the documentation and benchmarks describe; ``large`` a 16x16 array.
PRESETS: dict[str, AccelConfig] = {
    "tiny": AccelConfig(
        array_rows=2, array_cols=2, array_block=8, max_in_channels=4, max_out_channels=4,
        weight_buffer_depth=72, max_height=12, max_width=12, max_kernel=3, max_stride=4,
        max_dilation=3, max_padding=2, max_pool_kernel=3, max_pool_stride=3),
    "default": AccelConfig(),
    "large": AccelConfig(
        array_rows=16, array_cols=16, max_in_channels=256, max_out_channels=256,
        weight_buffer_depth=9216, max_height=128, max_width=128),
}
