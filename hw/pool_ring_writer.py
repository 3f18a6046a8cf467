"""The pooling unit's input side: input beats, in block order, into the ring of rows.

The line buffer holds a ring of ``K`` input rows; row ``y`` lives in slot
``y mod K``, and the word of channel group ``g`` of column ``x`` in slot
``slot`` is at :func:`pool_line_address` ``(g, x, slot)``. The input comes in
the order of the pooling unit's module docstring::

    for y < H: for each block of in_block columns: for g < ceil(C/lanes): for x in block

The writer follows it with a row ``y``, the block's first column, a channel
group, the position in the block and the column ``x`` itself; the block's
size and the columns after it are registers too, so each step compares two
registers. Rows the current output row needs end at ``fill_end``: ``K`` for
the first output row, one further for every ``extend``. Lanes beyond ``C``
in the last channel group are stored as 0.
"""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.utils import ceil_log2

from .config import AccelConfig, checked_config
from .helpers import address, counter
from .pool_geometry import pool_geometry_layout, pool_shape_layout
from .ring_writer import ring_writer_signature, store_lanes_in_use

__all__ = ["PoolRingWriter", "pool_line_address", "pool_line_buffer_depth", "pool_row_shape"]


def _field_bits(config: AccelConfig):
    """Address bits of the channel group, the column and the ring slot."""
    group_max = -(-config.max_out_channels // config.array_cols)
    return (ceil_log2(group_max), ceil_log2(config.max_width),
            ceil_log2(config.max_pool_kernel))


def pool_line_buffer_depth(config: AccelConfig) -> int:
    """Words of the pooling line buffer for the generate-time maxima."""
    group_bits, x_bits, _ = _field_bits(config)
    return config.max_pool_kernel << (x_bits + group_bits)


def pool_line_address(config: AccelConfig, group, x, slot):
    """The pooling line-buffer word of channel group ``group`` of column ``x`` in ring ``slot``."""
    group_bits, x_bits, slot_bits = _field_bits(config)
    return address((group, group_bits), (x, x_bits), (slot, slot_bits))


def pool_row_shape(config: AccelConfig):
    """Shape of an output row's top input row ``U * p`` (it may pass ``H`` by up to ``U``)."""
    return range(config.max_height + config.max_pool_stride + 1)


class PoolRingWriter(wiring.Component):
    """Input-beat counters and the pooling line buffer's write port (see the module).

    Parameters
    ----------
    config : AccelConfig
        ``array_cols`` (lanes), ``array_block`` and the maxima.

    Attributes
    ----------
    shape : In(pool_shape_layout(config))
        The frame's shape (``H``, ``W``, ``K``, ``in_block``).
    geometry : In(pool_geometry_layout(config))
        The frame's geometry (``H - 1``, ``W - 1``, the channel groups).
    restart : In(1)
        A frame begins: the next beat is column 0, group 0, of row 0 in slot
        0; the first output row needs rows up to ``K``.
    extend : In(1)
        The output row moves one input row down (``fill_end`` grows by 1).
    accept : In(1)
        The beat on ``data`` is taken: count it.
    fill : In(1)
        Store the taken beat if the current output row needs its row
        (``y >= row_top``); otherwise it is dropped.
    data : In(ArrayLayout(signed(act_width), lanes))
    row_top : In(pool_row_shape(config))
        The current output row's top input row.
    write_en, write_addr, write_data : Out
        To the line buffer's write port.
    frame_end : Out(1)
        The beat to come is the frame's final one.
    rows_left : Out(1)
        Input rows of the frame are still to come.
    needed : Out(1)
        ``rows_left``, and the current output row needs the next input row.
    """

    def __init__(self, config: AccelConfig):
        checked_config(config)
        self.config = config
        super().__init__(ring_writer_signature(
            pool_shape_layout(config), pool_geometry_layout(config),
            data.ArrayLayout(signed(config.act_width), config.array_cols),
            pool_row_shape(config), pool_line_buffer_depth(config)))

    def elaborate(self, platform):
        m = Module()
        cfg, shape, geo = self.config, self.shape, self.geometry
        y_in = Signal(range(cfg.max_height + 1))
        block_x = counter(cfg.max_width)                  # the block's first column
        g_in = counter(-(-cfg.max_out_channels // cfg.array_cols))
        n_in = counter(cfg.array_block)                   # position in the block
        x_in = counter(cfg.max_width)
        slot_in = counter(cfg.max_pool_kernel)
        block_last = counter(cfg.array_block)             # block size - 1
        after_block = Signal(range(cfg.max_width + 1))    # columns after this block
        fill_end = Signal(range(cfg.max_height + cfg.max_pool_stride + cfg.max_pool_kernel + 1))
        # The input's ready comes from these two: registers, not compares.
        fill_last = Signal.like(fill_end)                  # fill_end - 1
        below_fill = Signal()                              # y_in < fill_end
        rows_left = self.rows_left                         # y_in < H

        # g_in == groups_last as a register, set with g_in: the lane mask in
        # front of the line buffer's write register reads it.
        on_last_group = Signal()

        def start_block(first_x, columns):
            # min(columns, in_block) - 1 and the columns after it, with the
            # subtractions beside the compare rather than after it.
            beyond = columns - shape.in_block
            short = beyond[-1]                      # columns < in_block
            m.d.sync += [block_x.eq(first_x), x_in.eq(first_x), n_in.eq(0), g_in.eq(0),
                         on_last_group.eq(geo.groups_last == 0),
                         block_last.eq(Mux(short, columns - 1, shape.in_block - 1)),
                         after_block.eq(Mux(short, 0, beyond))]

        m.d.comb += [
            self.frame_end.eq((y_in == geo.height_last) & (g_in == geo.groups_last)
                              & (x_in == geo.width_last)),
            self.needed.eq(rows_left & below_fill),
            self.write_en.eq(self.accept & self.fill & (y_in >= self.row_top)),
            self.write_addr.eq(pool_line_address(cfg, g_in, x_in, slot_in)),
        ]
        store_lanes_in_use(m, self, on_last_group)

        with m.If(self.restart):
            start_block(0, shape.width)
            m.d.sync += [y_in.eq(0), slot_in.eq(0), fill_end.eq(shape.kernel),
                         fill_last.eq(shape.kernel - 1),
                         rows_left.eq(shape.height != 0), below_fill.eq(shape.kernel != 0)]
        with m.Elif(self.extend):
            # y_in < fill_end + 1, with no add in front of the compare.
            m.d.sync += [fill_end.eq(fill_end + 1), fill_last.eq(fill_end),
                         below_fill.eq(y_in <= fill_end)]
        with m.Elif(self.accept):
            with m.If(n_in != block_last):
                m.d.sync += [n_in.eq(n_in + 1), x_in.eq(x_in + 1)]
            with m.Elif(g_in != geo.groups_last):
                # The block again, for the next channel group.
                m.d.sync += [n_in.eq(0), g_in.eq(g_in + 1), x_in.eq(block_x),
                             on_last_group.eq(g_in + 1 == geo.groups_last)]
            with m.Elif(after_block != 0):
                start_block(x_in + 1, after_block)
            with m.Else():
                # The row is complete: on to the next slot of the ring.
                start_block(0, shape.width)
                m.d.sync += [y_in.eq(y_in + 1),
                             slot_in.eq(Mux(slot_in == shape.kernel - 1, 0, slot_in + 1)),
                             rows_left.eq(y_in + 1 < shape.height),
                             # y_in + 1 < fill_end: an equality, no carry chain.
                             below_fill.eq(below_fill & (y_in != fill_last))]
        return m
