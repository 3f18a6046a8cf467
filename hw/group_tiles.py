"""Which output tiles each reduction chunk feeds in a grouped convolution.

A convolution with ``G`` groups splits ``C`` input and ``M`` output channels
into ``G`` equal parts; output channel ``o`` only sees the input channels of
its own group. The engine's weight matrix is therefore block diagonal. The
window generator packs input channels in chunks of ``array_rows`` (chunk
``k`` holds channels ``k*rows .. k*rows+rows-1``) and the engine computes
output tiles of ``array_cols`` channels, so a chunk contributes to a
contiguous range of output tiles::

    lo(k) = tile of the first output of the group of channel k*rows
    hi(k) = tile of the last output of the group of channel min(k*rows+rows-1, C-1)

Tiles outside ``lo(k) .. hi(k)`` hold only zero weights; the engine skips
them (no weight beats, no cycles). Depthwise 3x3 with ``C = M = 64`` on an
8x8 array thus runs 8 tiles per tap instead of 64.

:class:`GroupTileMap` works the ranges out at ``start`` without dividers:
``C/G`` and ``M/G`` by repeated subtraction, then one walk over the groups
that advances a channel and an output pointer in step (about
``max(C, M)/G + max(C, M) + G`` cycles, hidden behind the line buffer fill).
:func:`group_tile_ranges` is the same map written with divisions, for the
host driver and the tests.
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .config import AccelConfig, checked_config
from .helpers import counter

__all__ = ["GroupTileMap", "group_tile_ranges", "tile_range_layout"]


def group_tile_ranges(in_channels: int, out_channels: int, groups: int, rows: int,
                      cols: int) -> list[tuple[int, int]]:
    """``[(lo, hi), ...]`` per input chunk; a single full range when ``groups == 1``.

    Raises ``ValueError`` naming ``groups`` when it does not divide both
    channel counts.
    """
    if groups < 1 or in_channels % groups or out_channels % groups:
        raise ValueError(f"groups must divide in_channels ({in_channels}) and out_channels "
                         f"({out_channels}), got {groups}")
    last_tile = (out_channels - 1) // cols
    if groups == 1:
        return [(0, last_tile)]
    c_per_group, m_per_group = in_channels // groups, out_channels // groups
    ranges = []
    for chunk in range(-(-in_channels // rows)):
        first_group = chunk * rows // c_per_group
        last_group = min(chunk * rows + rows - 1, in_channels - 1) // c_per_group
        ranges.append((first_group * m_per_group // cols,
                       ((last_group + 1) * m_per_group - 1) // cols))
    return ranges


def tile_range_layout(config: AccelConfig) -> data.StructLayout:
    """``lo`` and ``hi`` output tile of one input chunk."""
    tile_bits = max(1, ceil_log2(-(-config.max_out_channels // config.array_cols)))
    return data.StructLayout({"lo": tile_bits, "hi": tile_bits})


class GroupTileMap(wiring.Component):
    """Computes the output-tile range of every input chunk for ``groups``.

    Parameters
    ----------
    config : AccelConfig
        ``array_rows``, ``array_cols`` and the channel maxima.

    Attributes
    ----------
    in_channels, out_channels, groups : In(unsigned)
        Sampled at ``start``.
    start : In(1)
    busy, ready, error : Out(1)
        ``ready`` (map valid) or ``error`` rises when the walk ends and stays
        until the next ``start``. ``error``: ``groups`` is zero or does not
        divide both (non-zero) channel counts.
    chunks : Out(unsigned)
        Input chunks per kernel tap for the engine; 1 when ``groups == 1``
        (dense: every chunk feeds every output tile).
    tiles : Out(ArrayLayout(tile_range_layout(config), chunk_max))
        ``lo``/``hi`` per chunk (entry 0 only when dense), held until ``start``.
    in_per_group : Out(unsigned)
        ``C / G`` (``C`` when ``groups == 1``), valid with ``ready``.
    """

    def __init__(self, config: AccelConfig):
        checked_config(config)
        self.config = config
        self.chunk_max = -(-config.max_in_channels // config.array_rows)
        super().__init__({
            "in_channels": In(range(config.max_in_channels + 1)),
            "out_channels": In(range(config.max_out_channels + 1)),
            "groups": In(range(config.max_in_channels + 1)),
            "start": In(1),
            "busy": Out(1),
            "ready": Out(1),
            "error": Out(1),
            "chunks": Out(range(self.chunk_max + 1)),
            "tiles": Out(data.ArrayLayout(tile_range_layout(config), self.chunk_max)),
            "in_per_group": Out(range(config.max_in_channels + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        rows, cols = cfg.array_rows, cfg.array_cols
        tile_bits = tile_range_layout(cfg).size // 2

        c_total = Signal.like(self.in_channels)
        m_total = Signal.like(self.out_channels)
        groups = Signal.like(self.groups)
        # Repeated subtraction: quotients and remainders of C/G and M/G.
        c_rem, c_per_group = Signal.like(c_total), Signal.like(c_total)
        m_rem, m_per_group = Signal.like(m_total), Signal.like(m_total)
        # Walk: the next input channel as (chunk, lane), the next output as
        # (tile, col), what is left of the current group, and its extent.
        chunk, lane = Signal(range(self.chunk_max + 1)), counter(rows)
        tile, col = Signal(tile_bits + 1), counter(cols)
        c_left, m_left = Signal.like(c_total), Signal.like(m_total)
        groups_left = Signal.like(groups)
        first_chunk, last_chunk = Signal.like(chunk), Signal.like(chunk)
        first_tile, last_tile = Signal(tile_bits), Signal(tile_bits)
        touched = Signal(self.chunk_max)
        m.d.comb += self.in_per_group.eq(c_per_group)

        def fail():
            m.d.sync += [self.error.eq(1), self.ready.eq(0)]
            m.next = "IDLE"

        def begin_walk(c_per, m_per):
            m.d.sync += [c_per_group.eq(c_per), m_per_group.eq(m_per),
                         c_left.eq(c_per), m_left.eq(m_per), groups_left.eq(groups),
                         chunk.eq(0), lane.eq(0), tile.eq(0), col.eq(0), touched.eq(0)]
            m.next = "WALK"

        m.d.comb += self.busy.eq(1)
        with m.FSM(name="state"):
            with m.State("IDLE"):
                m.d.comb += self.busy.eq(0)
                with m.If(self.start):
                    m.d.sync += [c_total.eq(self.in_channels), m_total.eq(self.out_channels),
                                 groups.eq(self.groups), self.ready.eq(0), self.error.eq(0),
                                 c_rem.eq(self.in_channels), m_rem.eq(self.out_channels),
                                 c_per_group.eq(0), m_per_group.eq(0)]
                    m.next = "CHECK"
            with m.State("CHECK"):
                with m.If(groups == 0):
                    fail()
                with m.Elif((groups == 1) | (c_total == 0) | (m_total == 0)):
                    # Zero channel counts are the other units' errors (shape,
                    # sizes); the map just finishes.
                    begin_walk(c_total, m_total)
                with m.Else():
                    m.next = "DIVIDE"
            with m.State("DIVIDE"):
                c_more, m_more = c_rem >= groups, m_rem >= groups
                with m.If(c_more):
                    m.d.sync += [c_rem.eq(c_rem - groups), c_per_group.eq(c_per_group + 1)]
                with m.If(m_more):
                    m.d.sync += [m_rem.eq(m_rem - groups), m_per_group.eq(m_per_group + 1)]
                with m.If(~c_more & ~m_more):
                    with m.If((c_rem != 0) | (m_rem != 0)):
                        fail()
                    with m.Else():
                        begin_walk(c_per_group, m_per_group)
            with m.State("WALK"):
                # One input channel and one output channel of the group per cycle.
                def step(left, per_group, major, minor, size, first, last):
                    with m.If(left != 0):
                        m.d.sync += [left.eq(left - 1), last.eq(major)]
                        with m.If(left == per_group):
                            m.d.sync += first.eq(major)
                        with m.If(minor == size - 1):
                            m.d.sync += [minor.eq(0), major.eq(major + 1)]
                        with m.Else():
                            m.d.sync += minor.eq(minor + 1)

                step(c_left, c_per_group, chunk, lane, rows, first_chunk, last_chunk)
                step(m_left, m_per_group, tile, col, cols, first_tile, last_tile)
                with m.If((c_left == 0) & (m_left == 0)):
                    # The group's chunks feed its tiles. Groups come in channel
                    # order, so the first group to touch a chunk sets `lo` and
                    # the last one `hi`.
                    for k in range(self.chunk_max):
                        entry = self.tiles[k]
                        covered = (first_chunk == 0) if k == 0 else (
                            (first_chunk <= k) & (k <= last_chunk))
                        with m.If(covered):
                            m.d.sync += [entry.hi.eq(last_tile), touched[k].eq(1)]
                            with m.If(~touched[k]):
                                m.d.sync += entry.lo.eq(first_tile)
                    m.d.sync += [groups_left.eq(groups_left - 1),
                                 c_left.eq(c_per_group), m_left.eq(m_per_group)]
                    with m.If(groups_left == 1):
                        m.d.sync += [self.ready.eq(1),
                                     self.chunks.eq(Mux(groups == 1, 1, chunk + (lane != 0)))]
                        m.next = "IDLE"
        return m
