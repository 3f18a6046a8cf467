"""Host-side ordering of matrix problems for :class:`~convaccel.hw.systolic_engine.SystolicEngine`.

The engine consumes activations and weights in its tiling order and emits
results in tile order (see ``hw/systolic_engine.py``). These functions turn
plain matrices into those beat sequences and back, so testbenches and
benchmarks speak in ``A (N x K)``, ``W (K x M)`` and ``out (N x M)``.
"""

from __future__ import annotations

import numpy as np

from ..golden import conv2d
from ..hw.config import AccelConfig
from ..host.streams import block_ranges, visited_tiles, weight_lanes

__all__ = ["act_beats", "blocks", "weight_beats", "result_matrix", "golden_matmul",
           "tile_counts", "visited_tiles"]


def blocks(config: AccelConfig, n: int, row_length: int | None = None):
    """``(start, stop)`` of each block: ``array_block`` vectors, cut at row ends."""
    return block_ranges(config, n, row_length)


def tile_counts(config: AccelConfig, n: int, k: int, m: int,
                row_length: int | None = None) -> tuple[int, int, int]:
    """Number of blocks, reduction tiles and output tiles of a problem."""
    count = sum(1 for _ in blocks(config, n, row_length))
    return count, -(-k // config.array_rows), -(-m // config.array_cols)


def act_beats(config: AccelConfig, a: np.ndarray,
              row_length: int | None = None) -> list[dict]:
    """``A (N x K)`` as the engine's ``act`` stream: block, kt, vector; zero padded.

    Beats are ``{"data": lanes, "last": ...}`` (the slice beat; ``last`` on
    the problem's last one, as the window generator sends it).
    """
    n, k = a.shape
    rows = config.array_rows
    _, kts, _ = tile_counts(config, n, k, 1)
    padded = np.zeros((n, kts * rows), dtype=np.int64)
    padded[:, :k] = a
    beats = []
    for start, stop in blocks(config, n, row_length):
        for kt in range(kts):
            beats.extend({"data": row, "last": 0}
                         for row in padded[start:stop, kt * rows:(kt + 1) * rows].tolist())
    beats[-1]["last"] = 1
    return beats


def weight_beats(config: AccelConfig, w: np.ndarray, n: int,
                 row_length: int | None = None, tile_ranges=None) -> list[list[int]]:
    """``W (K x M)`` as the ``weights`` stream: block, kt, mt, row; zero padded.

    With ``tile_ranges`` (grouped problem) only the visited tiles are sent;
    the others must be zero.
    """
    return weight_lanes(config, w, n, row_length, tile_ranges).tolist()


def result_matrix(config: AccelConfig, beats: list[list[int]], n: int, m: int,
                  row_length: int | None = None) -> np.ndarray:
    """Reassemble ``result`` beats (block, mt, vector) into ``out (N x M)``."""
    cols = config.array_cols
    mts = -(-m // cols)
    out = np.zeros((n, mts * cols), dtype=np.int64)
    position = 0
    for start, stop in blocks(config, n, row_length):
        for mt in range(mts):
            for vector in range(start, stop):
                out[vector, mt * cols:(mt + 1) * cols] = beats[position]
                position += 1
    if position != len(beats):
        raise ValueError(f"expected {position} result beats, got {len(beats)}")
    return out[:, :m]


def golden_matmul(a: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``A @ W`` by the golden model: a 1x1 convolution over N positions."""
    n, k = a.shape
    x = a.T.reshape(k, n, 1)
    weights = w.T.reshape(w.shape[1], k, 1, 1)
    return conv2d(x, weights)[:, :, 0].T
