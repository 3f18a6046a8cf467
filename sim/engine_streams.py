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

__all__ = ["act_beats", "blocks", "weight_beats", "result_matrix", "golden_matmul",
           "tile_counts", "visited_tiles"]


def blocks(config: AccelConfig, n: int, row_length: int | None = None):
    """``(start, stop)`` of each block: ``array_block`` vectors, cut at row ends."""
    row_length = row_length or n
    for row_start in range(0, n, row_length):
        row_stop = min(n, row_start + row_length)
        for start in range(row_start, row_stop, config.array_block):
            yield start, min(row_stop, start + config.array_block)


def tile_counts(config: AccelConfig, n: int, k: int, m: int,
                row_length: int | None = None) -> tuple[int, int, int]:
    """Number of blocks, reduction tiles and output tiles of a problem."""
    count = sum(1 for _ in blocks(config, n, row_length))
    return count, -(-k // config.array_rows), -(-m // config.array_cols)


def act_beats(config: AccelConfig, a: np.ndarray,
              row_length: int | None = None) -> list[list[int]]:
    """``A (N x K)`` as the engine's ``act`` stream: block, kt, vector; zero padded."""
    n, k = a.shape
    rows = config.array_rows
    _, kts, _ = tile_counts(config, n, k, 1)
    padded = np.zeros((n, kts * rows), dtype=np.int64)
    padded[:, :k] = a
    beats = []
    for start, stop in blocks(config, n, row_length):
        for kt in range(kts):
            beats.extend(padded[start:stop, kt * rows:(kt + 1) * rows].tolist())
    return beats


def visited_tiles(kts: int, mts: int, tile_ranges=None):
    """``(kt, mt)`` in engine order; a grouped problem visits only its tile ranges.

    ``tile_ranges`` is ``[(lo, hi), ...]`` per chunk (see
    :func:`convaccel.hw.group_tiles.group_tile_ranges`); with more than one
    chunk, reduction tile ``kt`` belongs to chunk ``kt % len(tile_ranges)``.
    """
    grouped = tile_ranges is not None and len(tile_ranges) > 1
    for kt in range(kts):
        lo, hi = tile_ranges[kt % len(tile_ranges)] if grouped else (0, mts - 1)
        for mt in range(lo, hi + 1):
            yield kt, mt


def weight_beats(config: AccelConfig, w: np.ndarray, n: int,
                 row_length: int | None = None, tile_ranges=None) -> list[list[int]]:
    """``W (K x M)`` as the ``weights`` stream: block, kt, mt, row; zero padded.

    With ``tile_ranges`` (grouped problem) only the visited tiles are sent;
    the others must be zero.
    """
    k, m = w.shape
    rows, cols = config.array_rows, config.array_cols
    count, kts, mts = tile_counts(config, n, k, m, row_length)
    padded = np.zeros((kts * rows, mts * cols), dtype=np.int64)
    padded[:k, :m] = w
    one_block = []
    visited = set()
    for kt, mt in visited_tiles(kts, mts, tile_ranges):
        visited.add((kt, mt))
        one_block.extend(padded[kt * rows:(kt + 1) * rows, mt * cols:(mt + 1) * cols].tolist())
    for kt in range(kts):
        for mt in range(mts):
            tile = padded[kt * rows:(kt + 1) * rows, mt * cols:(mt + 1) * cols]
            if (kt, mt) not in visited and tile.any():
                raise ValueError(f"weight tile (kt={kt}, mt={mt}) is skipped by tile_ranges "
                                 "but holds non-zero weights")
    return one_block * count


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
