"""Stream payloads of the ``conv_accel`` top as NumPy arrays and bytes.

The orders are those of ``conv_accel_streams.md`` (generated from
:mod:`convaccel.hw.stream_format`): pixels and output in raster order (row,
column, channel group of ``lanes`` channels), weights per block of output
positions, per reduction tile, per visited output tile, per array row.
Here they are computed for whole layers at once:

* ``*_lanes`` functions return an ``(beats, lanes)`` int64 array of lane
  values;
* :func:`pack` turns such an array into the bytes a DMA sends - one
  ``tdata`` word per beat, ``tdata_bits / 8`` bytes, little-endian, lane 0
  in the low bits - and :func:`unpack` reads them back.
"""

from __future__ import annotations

import numpy as np

from ..hw.config import AccelConfig
from ..hw.stream_format import StreamFormat

__all__ = ["beat_bytes", "beat_dicts", "block_ranges", "pack", "raster_lanes", "unpack",
           "unraster", "visited_tiles", "weight_lanes"]


def raster_lanes(y: np.ndarray, lanes: int) -> np.ndarray:
    """``y (C, H, W)`` as raster beats ``(H * W * ceil(C / lanes), lanes)``, zero padded.

    The order of the pixel input (``lanes = array_rows``) and of the layer
    output (``lanes = array_cols``): row, column, channel group.
    """
    c, h, w = y.shape
    groups = -(-c // lanes)
    padded = np.zeros((groups * lanes, h, w), dtype=np.int64)
    padded[:c] = y
    # (G*lanes, H, W) -> (H, W, G*lanes) -> one beat per (row, column, group).
    return padded.transpose(1, 2, 0).reshape(h * w * groups, lanes)


def beat_dicts(lanes: np.ndarray) -> list[dict]:
    """``(beats, lanes)`` as ``{"data": [...], "last": 0/1}`` dicts, ``last`` on the final one
    (the form the cocotb stream drivers take)."""
    beats = [{"data": row, "last": 0} for row in np.asarray(lanes).tolist()]
    if beats:
        beats[-1]["last"] = 1
    return beats


def unraster(beats: np.ndarray, channels: int, height: int, width: int) -> np.ndarray:
    """Inverse of :func:`raster_lanes`: ``(beats, lanes)`` back to ``(C, H, W)``."""
    beats = np.asarray(beats, dtype=np.int64)
    lanes = beats.shape[1]
    groups = -(-channels // lanes)
    if beats.shape[0] != height * width * groups:
        raise ValueError(f"expected {height * width * groups} beats for ({channels}, {height}, "
                         f"{width}), got {beats.shape[0]}")
    return beats.reshape(height, width, groups * lanes).transpose(2, 0, 1)[:channels]


def block_ranges(config: AccelConfig, n: int, row_length: int | None = None):
    """``(start, stop)`` of each block of output positions: ``array_block`` of them,
    cut at the end of every row of ``row_length`` positions."""
    row_length = row_length or n
    for row_start in range(0, n, row_length):
        row_stop = min(n, row_start + row_length)
        for start in range(row_start, row_stop, config.array_block):
            yield start, min(row_stop, start + config.array_block)


def visited_tiles(kts: int, mts: int, tile_ranges=None):
    """``(kt, mt)`` in engine order; a grouped problem visits only its tile ranges.

    ``tile_ranges`` is ``[(lo, hi), ...]`` per input chunk (see
    :func:`convaccel.hw.group_tiles.group_tile_ranges`); with more than one
    chunk, reduction tile ``kt`` belongs to chunk ``kt % len(tile_ranges)``.
    """
    grouped = tile_ranges is not None and len(tile_ranges) > 1
    for kt in range(kts):
        lo, hi = tile_ranges[kt % len(tile_ranges)] if grouped else (0, mts - 1)
        for mt in range(lo, hi + 1):
            yield kt, mt


def weight_lanes(config: AccelConfig, w: np.ndarray, n: int, row_length: int | None = None,
                 tile_ranges=None) -> np.ndarray:
    """``W (K x M)`` as the weight stream ``(beats, array_cols)``: block, kt, mt, row.

    The first block's beats are all sent; each further block sends only the
    beats the weight buffer does not hold (those from ``weight_buffer_depth``
    on; every beat without a buffer). With ``tile_ranges`` (a grouped problem) only the visited tiles are sent;
    the others must be zero.
    """
    k, m = w.shape
    rows, cols = config.array_rows, config.array_cols
    kts, mts = -(-k // rows), -(-m // cols)
    padded = np.zeros((kts * rows, mts * cols), dtype=np.int64)
    padded[:k, :m] = w
    tiles = padded.reshape(kts, rows, mts, cols).transpose(0, 2, 1, 3)   # (kt, mt, row, col)
    visited = np.zeros((kts, mts), dtype=bool)
    order = list(visited_tiles(kts, mts, tile_ranges))
    for kt, mt in order:
        visited[kt, mt] = True
    skipped = ~visited & tiles.any(axis=(2, 3))
    if skipped.any():
        kt, mt = (int(v) for v in np.argwhere(skipped)[0])
        raise ValueError(f"weight tile (kt={kt}, mt={mt}) is skipped by tile_ranges but "
                         "holds non-zero weights")
    kt_index, mt_index = (np.array([pair[i] for pair in order], dtype=np.int64)
                          for i in (0, 1))
    one_block = tiles[kt_index, mt_index].reshape(-1, cols)
    blocks = sum(1 for _ in block_ranges(config, n, row_length))
    if not config.weight_buffer_depth:
        return np.tile(one_block, (blocks, 1))
    # The engine's weight buffer replays its first weight_buffer_depth beats.
    return np.concatenate([one_block] + [one_block[config.weight_buffer_depth:]] * (blocks - 1))


def beat_bytes(config: AccelConfig, stream: str) -> int:
    """Bytes of one beat of ``stream`` (``"pixels"``, ``"weights"`` or ``"out"``)."""
    return StreamFormat(config).layout(stream)["tdata_bits"] // 8


def pack(config: AccelConfig, stream: str, lanes: np.ndarray) -> bytes:
    """``(beats, lanes)`` lane values as the stream's bytes (little-endian ``tdata`` words).

    Raises
    ------
    ValueError
        If the lane count is not the stream's or a value does not fit its lane.
    """
    layout = StreamFormat(config).layout(stream)
    bits, count = layout["lane_bits"], layout["lanes"]
    lanes = np.asarray(lanes, dtype=np.int64)
    if lanes.ndim != 2 or lanes.shape[1] != count:
        raise ValueError(f"{stream}: beats of {count} lanes expected, got shape {lanes.shape}")
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if lanes.size and (lanes.min() < low or lanes.max() > high):
        raise ValueError(f"{stream}: lane values {int(lanes.min())}..{int(lanes.max())} do not "
                         f"fit {bits} signed bits")
    if bits == 8:       # the common case: one byte per lane, no padding bits
        return lanes.astype(np.int8).tobytes()
    unsigned = lanes & ((1 << bits) - 1)
    # Bit j of lane i lands at tdata bit i * bits + j (little-endian bit order).
    bit_matrix = ((unsigned[:, :, None] >> np.arange(bits)) & 1).reshape(len(lanes), -1)
    padded = np.zeros((len(lanes), layout["tdata_bits"]), dtype=np.uint8)
    padded[:, :bit_matrix.shape[1]] = bit_matrix
    return np.packbits(padded, axis=1, bitorder="little").tobytes()


def unpack(config: AccelConfig, stream: str, data: bytes) -> np.ndarray:
    """The stream's bytes back to ``(beats, lanes)`` signed lane values."""
    layout = StreamFormat(config).layout(stream)
    bits, count, word = layout["lane_bits"], layout["lanes"], layout["tdata_bits"] // 8
    if len(data) % word:
        raise ValueError(f"{stream}: {len(data)} bytes is not a whole number of "
                         f"{word}-byte beats")
    raw = np.frombuffer(data, dtype=np.uint8).reshape(-1, word)
    if bits == 8:
        return raw[:, :count].view(np.int8).astype(np.int64)
    bit_matrix = np.unpackbits(raw, axis=1, bitorder="little")[:, :count * bits]
    values = (bit_matrix.reshape(len(raw), count, bits).astype(np.int64)
              << np.arange(bits)).sum(axis=2)
    return np.where(values >= 1 << (bits - 1), values - (1 << bits), values)
