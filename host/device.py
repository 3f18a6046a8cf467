"""One ``conv_accel`` behind a transport: discover the build, run lowered layers.

:class:`Accelerator` is the register-level runtime. It reads the ``build*``
registers back into an :class:`~convaccel.hw.config.AccelConfig` (every
generate-time parameter is readable), refuses a program made for another
build, and runs a :class:`~convaccel.host.lowering.LoweredLayer` with the
five transport methods: register writes, ``start``, both input streams,
the output stream, ``done``, then the error bits and the counters.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..hw.config import AccelConfig
from ..hw.conv_accel import COUNTERS, ERROR_BITS, MAGIC, conv_accel_register_map
from .lowering import LoweredLayer
from .transport import Transport

__all__ = ["Accelerator", "DeviceError", "LayerRun", "decode_error"]

#: ``AccelConfig`` parameter -> (build register, field); every one is readable.
_BUILD_FIELDS = {
    "act_width": ("build0", "act_width"), "weight_width": ("build0", "weight_width"),
    "array_rows": ("build0", "array_rows"), "array_cols": ("build0", "array_cols"),
    "max_in_channels": ("build1", "max_in_channels"),
    "max_out_channels": ("build1", "max_out_channels"),
    "max_height": ("build2", "max_height"), "max_width": ("build2", "max_width"),
    "max_kernel": ("build3", "max_kernel"), "max_stride": ("build3", "max_stride"),
    "max_dilation": ("build3", "max_dilation"), "max_padding": ("build3", "max_padding"),
    "max_pool_kernel": ("build3", "max_pool_kernel"),
    "max_pool_stride": ("build3", "max_pool_stride"),
    "bias_width": ("build4", "bias_width"), "mult_width": ("build4", "mult_width"),
    "shift_width": ("build4", "shift_width"), "array_block": ("build5", "array_block"),
    "weight_buffer_depth": ("build5", "weight_buffer_depth"),
}


def decode_error(code: int) -> list[str]:
    """Names of the bits set in the ``error`` register value ``code``."""
    return [name for bit, name in enumerate(ERROR_BITS) if code >> bit & 1]


class DeviceError(RuntimeError):
    """The accelerator ended a layer with error bits set, or is not the expected build."""


@dataclass
class LayerRun:
    """What one hardware layer run returned."""

    output: np.ndarray
    counters: dict = field(default_factory=dict)
    bytes_sent: int = 0
    bytes_received: int = 0
    register_writes: int = 0
    wall_seconds: float = 0.0


class Accelerator:
    """A ``conv_accel`` reached through ``transport``.

    Parameters
    ----------
    transport : Transport
    config : AccelConfig, optional
        The build; read from the ``build*`` registers when left out.
    """

    def __init__(self, transport: Transport, config: AccelConfig | None = None):
        self.transport = transport
        self.config = config if config is not None else self.read_config()
        self.regmap = conv_accel_register_map(self.config)
        self._offset = {reg.name: reg.offset for reg in self.regmap.registers}

    def read(self, register: str) -> dict:
        """Read ``register`` and split it into its fields."""
        reg = self.regmap.register(register)
        return reg.unpack(self.transport.read32(reg.offset))

    def write(self, register: str, **fields) -> None:
        reg = self.regmap.register(register)
        self.transport.write32(reg.offset, reg.pack(fields))

    def read_config(self) -> AccelConfig:
        """The build's configuration, from its ``id`` and ``build*`` registers.

        Raises
        ------
        DeviceError
            If the ``id`` register does not hold the convaccel magic number.
        """
        regmap = conv_accel_register_map(AccelConfig())   # the build registers' positions
        words = {name: regmap.register(name).unpack(
            self.transport.read32(regmap.register(name).offset))
            for name in ("id", "build0", "build1", "build2", "build3", "build4", "build5")}
        if words["id"]["magic"] != MAGIC:
            raise DeviceError(f"no conv_accel here: id reads {words['id']['magic']:#010x}, "
                              f"expected {MAGIC:#010x}")
        return AccelConfig(**{name: words[register][field_name]
                              for name, (register, field_name) in _BUILD_FIELDS.items()})

    def check_build(self, config: AccelConfig) -> None:
        """Raise :class:`DeviceError` unless the device is the build ``config`` describes."""
        found = self.read_config()
        if found != config:
            changed = [f"{name} {getattr(config, name)} (device: {getattr(found, name)})"
                       for name in _BUILD_FIELDS if getattr(found, name) != getattr(config, name)]
            raise DeviceError("the program was made for another build: "
                              + ", ".join(changed))

    def run(self, lowered: LoweredLayer, x: np.ndarray) -> LayerRun:
        """Run one lowered layer on input ``x`` and return its output and counters.

        Raises
        ------
        DeviceError
            If the layer ended with error bits set (named in the message).
        """
        start_time = time.perf_counter()
        t, cfg = self.transport, self.config
        pixels = lowered.pixels(cfg, x)
        for _, offset, word in lowered.writes:
            t.write32(offset, word)
        self.write("control", start=1)
        t.send("weights", lowered.weights)
        t.send("pixels", pixels)
        data = t.receive("out", lowered.out_bytes)
        t.wait_done()
        code = t.read32(self._offset["error"])
        if code:
            raise DeviceError(f"layer {lowered.name!r} ended with error bits "
                              f"{', '.join(decode_error(code))}")
        counters = {name: self.read(name)["count"] for name in COUNTERS}
        counters["macs"] = counters.pop("macs_hi") << 32 | counters.pop("macs_lo")
        return LayerRun(output=lowered.decode(cfg, data), counters=counters,
                        bytes_sent=len(pixels) + len(lowered.weights),
                        bytes_received=len(data), register_writes=len(lowered.writes) + 1,
                        wall_seconds=time.perf_counter() - start_time)
