"""Host-side stream orders of :class:`~convaccel.hw.pool_unit.PoolUnit`."""

from __future__ import annotations

import numpy as np

from ..golden import pool2d
from ..hw.config import AccelConfig

__all__ = ["pool_input_beats", "pool_output_beats"]


def _grouped(config: AccelConfig, x: np.ndarray) -> tuple[np.ndarray, int]:
    lanes = config.array_cols
    c = x.shape[0]
    groups = -(-c // lanes)
    padded = np.zeros((groups * lanes,) + x.shape[1:], dtype=np.int64)
    padded[:c] = x
    return padded, groups


def pool_input_beats(config: AccelConfig, x: np.ndarray, in_block: int = 1) -> list[dict]:
    """``x (C, H, W)`` in the unit's input order: y, block of columns, group, column."""
    lanes = config.array_cols
    padded, groups = _grouped(config, x)
    _, h, w = x.shape
    beats = []
    for y in range(h):
        for start in range(0, w, in_block):
            for g in range(groups):
                for xx in range(start, min(w, start + in_block)):
                    beats.append({"data": padded[g * lanes:(g + 1) * lanes, y, xx].tolist(),
                                  "last": 0})
    beats[-1]["last"] = 1
    return beats


def pool_output_beats(config: AccelConfig, x: np.ndarray, kernel: int, stride: int,
                      mode: str) -> list[dict]:
    """``golden.pool2d`` of ``x`` in the unit's output order: p, q, group."""
    lanes = config.array_cols
    out = pool2d(x, kernel, stride, mode=mode)
    padded, groups = _grouped(config, out)
    _, p_count, q_count = out.shape
    beats = [{"data": padded[g * lanes:(g + 1) * lanes, p, q].tolist(), "last": 0}
             for p in range(p_count) for q in range(q_count) for g in range(groups)]
    beats[-1]["last"] = 1
    return beats
