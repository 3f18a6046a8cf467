"""The window generator's input side: input beats into the ring of rows.

The line buffer holds a ring of ``L`` input rows; row ``y`` lives in slot
``y mod L``, and the word of channel group ``g`` of pixel ``x`` in slot
``slot`` is at :func:`line_address` ``(g, x, slot)``. The writer counts the
input position ``(y, x, g)`` of the beat on the input stream and keeps, in
registers (so the input ``ready`` comes from flip-flops), whether input rows
are still to come and whether the current output row needs the next one:
the rows it needs end at ``fill_end = y0 + L``, ``y0`` being its top tap row.
Lanes beyond ``C`` in the last channel group are stored as they come; the
reader (:class:`~convaccel.hw.slice_output.SliceOutput`) gives 0 for them, from
registers beside the read, so no lane mask sits in front of the write.
"""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .config import AccelConfig, checked_config
from .helpers import address, counter
from .window_geometry import layer_shape_layout, tap_coordinate, window_geometry_layout

__all__ = ["RingWriter", "line_address", "line_buffer_depth", "ring_writer_signature",
           "store_lanes_in_use"]


def _field_bits(config: AccelConfig):
    """Address bits of the channel group, the column and the ring slot."""
    group_max = -(-config.max_in_channels // config.array_rows)
    ring_max = (config.max_kernel - 1) * config.max_dilation + 1
    return ceil_log2(group_max), ceil_log2(config.max_width), ceil_log2(ring_max)


def line_buffer_depth(config: AccelConfig) -> int:
    """Words of the line buffer for the generate-time maxima."""
    group_bits, x_bits, _ = _field_bits(config)
    ring_max = (config.max_kernel - 1) * config.max_dilation + 1
    return ring_max << (x_bits + group_bits)


def line_address(config: AccelConfig, group, x, slot):
    """The line-buffer word of channel group ``group`` of pixel ``x`` of the row in ``slot``."""
    group_bits, x_bits, slot_bits = _field_bits(config)
    return address((group, group_bits), (x, x_bits), (slot, slot_bits))


def ring_writer_signature(shape, geometry, word, row_top, depth) -> wiring.Signature:
    """Ports of a line buffer's input side: the frame's ``shape`` and ``geometry``
    layouts, the ``word`` layout of a beat, the shape of ``row_top`` and the
    buffer's ``depth`` in words (see :class:`RingWriter`)."""
    return wiring.Signature({
        "shape": In(shape),
        "geometry": In(geometry),
        "restart": In(1),
        "extend": In(1),
        "accept": In(1),
        "fill": In(1),
        "data": In(word),
        "row_top": In(row_top),
        "write_en": Out(1),
        "write_addr": Out(max(1, ceil_log2(depth))),
        "write_data": Out(word),
        "frame_end": Out(1),
        "rows_left": Out(1),
        "needed": Out(1),
    })


def store_lanes_in_use(m, writer, last_group):
    """Drive ``writer.write_data`` from ``writer.data``, with the lanes beyond ``C`` in the
    last channel group stored as 0. ``last_group`` (the beat is of the last group)
    should be a register: the mask drives the write register's reset pins."""
    geo = writer.geometry
    for lane in range(writer.data.shape().length):
        in_use = ~last_group | (lane < geo.last_lanes)
        m.d.comb += writer.write_data[lane].eq(Mux(in_use, writer.data[lane], 0))


class RingWriter(wiring.Component):
    """Input-beat counters and the line buffer's write port (see the module).

    Parameters
    ----------
    config : AccelConfig
        ``array_rows`` (lanes) and the maxima.

    Attributes
    ----------
    shape : In(layer_shape_layout(config))
        The frame's shape (``pad_top``).
    geometry : In(window_geometry_layout(config))
        The frame's geometry (``L``, ``H - 1``, ``W - 1``, the channel groups).
    restart : In(1)
        A frame begins: the next beat is pixel (0, 0), group 0, of slot 0; the
        first output row's top tap row is ``-pad_top``.
    extend : In(1)
        The output row moves one input row down (``fill_end`` grows by 1).
    accept : In(1)
        The beat on ``data`` is taken: count it.
    fill : In(1)
        Store the taken beat if the current output row needs its row
        (``y >= row_top``); otherwise it is dropped.
    data : In(ArrayLayout(signed(act_width), lanes))
    row_top : In(signed)
        ``y0``, the current output row's top tap row.
    write_en, write_addr, write_data : Out
        To the line buffer's write port.
    frame_end : Out(1)
        The beat to come is the frame's final one.
    rows_left : Out(1)
        Input rows of the frame are still to come (a register).
    needed : Out(1)
        ``rows_left``, and the current output row needs the next input row
        (registers only).
    """

    def __init__(self, config: AccelConfig):
        checked_config(config)
        self.config = config
        super().__init__(ring_writer_signature(
            layer_shape_layout(config), window_geometry_layout(config),
            data.ArrayLayout(signed(config.act_width), config.array_rows),
            tap_coordinate(config), line_buffer_depth(config)))

    def elaborate(self, platform):
        m = Module()
        cfg, geo = self.config, self.geometry
        y_in = Signal(range(cfg.max_height + 1))
        x_in = counter(cfg.max_width)
        g_in = counter(-(-cfg.max_in_channels // cfg.array_rows))
        slot_in = counter((cfg.max_kernel - 1) * cfg.max_dilation + 1)
        fill_end = Signal(tap_coordinate(cfg))  # first input row the output row does not need
        fill_last = Signal.like(fill_end)       # fill_end - 1
        below_fill = Signal()                    # y_in < fill_end, registered
        rows_left = self.rows_left

        m.d.comb += [
            self.frame_end.eq((y_in == geo.height_last) & (x_in == geo.width_last)
                              & (g_in == geo.groups_last)),
            self.needed.eq(rows_left & below_fill),
            self.write_en.eq(self.accept & self.fill & (y_in >= self.row_top)),
            self.write_addr.eq(line_address(cfg, g_in, x_in, slot_in)),
            self.write_data.eq(self.data),
        ]

        with m.If(self.restart):
            m.d.sync += [y_in.eq(0), x_in.eq(0), g_in.eq(0), slot_in.eq(0), rows_left.eq(1),
                         fill_end.eq(geo.ring - self.shape.pad_top),
                         fill_last.eq(geo.ring - self.shape.pad_top - 1),
                         below_fill.eq(geo.ring > self.shape.pad_top)]
        with m.Elif(self.extend):
            # y_in < fill_end + 1, with no add in front of the compare.
            m.d.sync += [fill_end.eq(fill_end + 1), fill_last.eq(fill_end),
                         below_fill.eq(y_in <= fill_end)]
        with m.Elif(self.accept):
            with m.If(g_in != geo.groups_last):
                m.d.sync += g_in.eq(g_in + 1)
            with m.Elif(x_in != geo.width_last):
                m.d.sync += [g_in.eq(0), x_in.eq(x_in + 1)]
            with m.Else():
                # The row is complete: on to the next slot of the ring.
                m.d.sync += [g_in.eq(0), x_in.eq(0), y_in.eq(y_in + 1),
                             slot_in.eq(Mux(slot_in == geo.ring_last, 0, slot_in + 1)),
                             rows_left.eq(y_in != geo.height_last),
                             # y_in + 1 < fill_end: an equality, no carry chain.
                             below_fill.eq(below_fill & (y_in != fill_last))]
        return m
