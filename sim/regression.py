"""Configurations and seeds the regression suite runs every design under.

``tiny`` and ``default`` are the presets users build; ``odd`` stresses the
generators with widths and counts that are not powers of two (6-bit
activations, 5-bit weights, 3 output channels, a 3-row array).

Seeds: ``CONVACCEL_SEEDS=1,2,3`` picks the seeds each cocotb bench runs with
(default ``1,2``, which keeps the default suite within its time budget);
``CONVACCEL_SEED`` (one number) overrides them all, to reproduce one failing
run.
"""

from __future__ import annotations

import os

from ..hw.config import PRESETS, AccelConfig

__all__ = ["REGRESSION_CONFIGS", "regression_seeds"]

REGRESSION_CONFIGS: dict[str, AccelConfig] = {
    "tiny": PRESETS["tiny"],
    "default": PRESETS["default"],
    "odd": PRESETS["tiny"].replace(
        act_width=6, weight_width=5, bias_width=20, mult_width=12, shift_width=5,
        array_rows=3, array_cols=1, max_in_channels=3, max_out_channels=3, max_kernel=5,
        weight_buffer_depth=20),   # the on-chip weight buffer, smaller than most layers' weights
}


def regression_seeds() -> list[int]:
    """Seeds for the cocotb benches (see the module docstring)."""
    if os.environ.get("CONVACCEL_SEED"):
        return [int(os.environ["CONVACCEL_SEED"])]
    text = os.environ.get("CONVACCEL_SEEDS", "1,2")
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"CONVACCEL_SEEDS must be comma-separated integers, got {text!r}") from None
