"""Line buffer and sliding-window generator feeding the systolic engine.

Input: one feature map as a stream in raster order, one beat per pixel and
*channel group* - ``lanes = array_rows`` channels of one pixel (lanes beyond
``C`` in the last group are ignored and read as 0)::

    for y < H: for x < W: for g < ceil(C / lanes): beat = x[g*lanes : g*lanes+lanes, y, x]

``last`` marks the final beat of the frame.

Output: the convolution windows, as ``lanes``-wide slices in exactly the
order :class:`~convaccel.hw.systolic_engine.SystolicEngine` consumes
``act`` (``row_length = Q``, ``K = R * S * ceil(C/lanes) * lanes``)::

    for p < P:                                   # output rows
      for each block of up to array_block positions q of row p:
        for r < R: for s < S: for g < ceil(C / lanes):
          for q in block: beat = x[g*lanes : g*lanes+lanes, Uh*p + Dh*r - pt, Uw*q + Dw*s - pl]

with the input zero point ``zero_point`` wherever the tap falls in the
padding (generated, never stored; docs/arithmetic.md, "Zero points": padding
reads as ``zx``, 0 in the symmetric case). Lanes beyond ``C`` in the last
group are 0 in every slice, padded or not (their weights are 0).
Reduction index ``k = ((r * S + s) * ceil(C/lanes) + g) * lanes + lane``;
weights must be laid out the same way.

Storage: a ring of ``L = (R - 1) * Dh + 1`` input rows - exactly the rows
the taps of one output row span - in a
:class:`~convaccel.hw.banked_memory.BankedMemory` (block RAM banks whose
outputs are registered before the bank is chosen).
Row ``y`` lives in ring slot ``y mod L``. Physical size, for the generate-time
maxima: ``Lmax * 2**ceil(log2 Wmax) * 2**ceil(log2 ceil(Cmax/lanes))`` words of
``lanes * act_width`` bits; in use at run time: ``L * W * ceil(C/lanes)``.

Schedule: per output row, the generator first takes the input rows the row
needs that it does not hold yet (``Uh`` new rows in steady state, fewer near
the bottom padding; rows that no window touches are read and dropped), then
emits the row's slices, one per cycle. Input and output do not overlap: a
ring of ``L`` rows has no free slot while an output row is being emitted.
Slices are read by a free-running pipeline into an output FIFO; a slice is
issued only with a FIFO place reserved for it (a registered credit count).

Frame control: ``start`` samples ``shape`` and ``zero_point``. A bad shape (a zero or a value
above its maximum, a kernel larger than the padded input) sets
``error.config``; a ``last`` before the frame's final beat sets
``error.short_frame``; a final beat without ``last`` sets
``error.long_frame`` and the rest of the frame up to ``last`` is read and
dropped. In every case ``done`` is set and the unit returns to idle (an
erroneous frame's output is incomplete). ``cancel`` returns to idle at once.
"""

from amaranth.hdl import Cat, Module, Mux, ResetInserter, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .banked_memory import BankedMemory
from .config import AccelConfig
from .frame_control import FrameControl
from .helpers import above, address, bad_range, counter, times_small
from .window_geometry import layer_shape_layout

__all__ = ["WindowGenerator", "layer_shape_layout", "window_error_layout"]


def window_error_layout() -> data.StructLayout:
    """Error bits, set at the end of a failed frame, cleared by ``start``."""
    return data.StructLayout({"config": 1, "short_frame": 1, "long_frame": 1})


class WindowGenerator(wiring.Component):
    """Streaming line buffer + window generator (see the module docstring).

    Parameters
    ----------
    config : AccelConfig
        ``array_rows`` (lanes), ``array_block`` and the maxima.

    Attributes
    ----------
    i : In(stream.Signature(StructLayout({"data": lanes x act, "last": 1})))
        Input pixels, raster order.
    o : Out(stream.Signature(StructLayout({"data": lanes x act, "last": 1})))
        Window slices; ``last`` on the frame's final slice.
    shape : In(layer_shape_layout(config))
    zero_point : In(signed(act_width))
        Input zero point: the value of padded taps (sampled at ``start``).
    start, cancel : In(1)
    busy, done : Out(1)
        ``done`` stays set until the next ``start``.
    error : Out(window_error_layout())
    out_height, out_width : Out(unsigned)
        ``P`` and ``Q`` of the current frame.
    groups : Out(unsigned)
        ``ceil(C / lanes)``, the channel groups per pixel.
    geometry_valid : Out(1)
        ``out_height``, ``out_width`` and ``groups`` are valid (from the end
        of set-up until the next ``start``).
    """

    def __init__(self, config: AccelConfig):
        if not isinstance(config, AccelConfig):
            raise TypeError(f"config must be an AccelConfig, got {config!r}")
        self.config = config
        self.lanes = config.array_rows
        self.group_max = -(-config.max_in_channels // self.lanes)
        self.ring_max = (config.max_kernel - 1) * config.max_dilation + 1
        self.x_bits = ceil_log2(config.max_width)
        self.group_bits = ceil_log2(self.group_max)
        self.slot_bits = ceil_log2(self.ring_max)
        #: Words of the line buffer memory (for the generate-time maxima).
        self.memory_depth = self.ring_max << (self.x_bits + self.group_bits)
        beat = data.StructLayout({
            "data": data.ArrayLayout(signed(config.act_width), self.lanes), "last": 1})
        span = max(config.max_height, config.max_width)
        super().__init__({
            "i": In(stream.Signature(beat)),
            "o": Out(stream.Signature(beat)),
            "shape": In(layer_shape_layout(config)),
            "zero_point": In(signed(config.act_width)),
            "start": In(1),
            "cancel": In(1),
            "busy": Out(1),
            "done": Out(1),
            "error": Out(window_error_layout()),
            "out_height": Out(range(span + 2 * config.max_padding + 1)),
            "out_width": Out(range(span + 2 * config.max_padding + 1)),
            "groups": Out(range(self.group_max + 1)),
            "geometry_valid": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        lanes, block = self.lanes, cfg.array_block
        word = data.ArrayLayout(signed(cfg.act_width), lanes)
        # Banks of 512 words (one 512 x 36 block RAM per 36 bits of width):
        # each bank's output is registered before the bank is chosen.
        m.submodules.line_buffer = line_buffer = BankedMemory(
            word, self.memory_depth, bank_depth=512)

        # Coordinates are signed: padding puts taps above and left of the image.
        span = max(cfg.max_height, cfg.max_width) + 2 * cfg.max_padding \
            + cfg.max_kernel * cfg.max_dilation + cfg.max_stride * (block + 1)
        coord = signed(ceil_log2(span + 1) + 1)

        shape = Signal(layer_shape_layout(cfg))
        height, width = shape.height, shape.width
        ring = Signal(range(self.ring_max + 1))          # L
        # "Last value" registers, so the counters' tests compare registers.
        kh_last = Signal.like(shape.kernel_h)
        kw_last = Signal.like(shape.kernel_w)
        groups_last = counter(self.group_max)
        height_last = Signal.like(height)
        width_last = Signal.like(width)
        span_w = Signal(range((cfg.max_kernel - 1) * cfg.max_dilation + 2))
        groups = self.groups                             # ceil(C / lanes)
        last_lanes = Signal(range(lanes + 1))            # valid lanes of the last group
        zero_point = Signal.like(self.zero_point)        # padded taps read as this
        # Lanes beyond C in the last group: 0 in padded slices too.
        unused_lane = Signal(lanes)
        out_h = self.out_height
        out_w = self.out_width

        # Set-up arithmetic, done by repeated subtraction (no dividers).
        rest_c = Signal(range(cfg.max_in_channels + 1))
        rest_h = Signal(coord)
        rest_w = Signal(coord)
        pad_steps = Signal(range(cfg.max_padding + 1))

        # Input side.
        y_in = Signal(range(cfg.max_height + 1))
        x_in = counter(cfg.max_width)
        g_in = counter(self.group_max)
        slot_in = counter(self.ring_max)

        # Output side.
        p = Signal.like(out_h)
        y0 = Signal(coord)                 # top tap row of output row p
        fill_end = Signal(coord)           # y0 + L: first input row row p does not need
        out_h_last = Signal.like(out_h)
        block_last = counter(block)        # block_size - 1
        slot_y0 = counter(self.ring_max)
        q_left = Signal.like(out_w)        # positions of row p not yet emitted
        x0 = Signal(coord)                 # left tap column of the block's first position
        next_x0 = Signal(coord)
        block_size = Signal(range(block + 1))
        r = counter(cfg.max_kernel)
        s = counter(cfg.max_kernel)
        g = counter(self.group_max)
        n = counter(block)
        y_r = Signal(coord)
        slot_r = counter(self.ring_max)
        x_s = Signal(coord)
        x_n = Signal(coord)
        advance_steps = Signal(range(cfg.max_stride + 1))

        # ---- input beats ----------------------------------------------
        frame_end = (y_in == height_last) & (x_in == width_last) & (g_in == groups_last)
        accepted = self.i.valid & self.i.ready
        keep = Signal()                    # store the beat (vs. drop it)
        lane_ok = [(g_in != groups_last) | (lane < last_lanes) for lane in range(lanes)]
        m.d.comb += [
            line_buffer.write_en.eq(accepted & keep),
            line_buffer.write_addr.eq(address((g_in, self.group_bits), (x_in, self.x_bits),
                                              (slot_in, self.slot_bits))),
        ]
        for lane in range(lanes):
            m.d.comb += line_buffer.write_data[lane].eq(
                Mux(lane_ok[lane], self.i.payload.data[lane], 0))

        def step_input():
            with m.If(g_in != groups_last):
                m.d.sync += g_in.eq(g_in + 1)
            with m.Else():
                m.d.sync += g_in.eq(0)
                with m.If(x_in != width_last):
                    m.d.sync += x_in.eq(x_in + 1)
                with m.Else():
                    m.d.sync += [x_in.eq(0), y_in.eq(y_in + 1),
                                 slot_in.eq(Mux(slot_in == ring - 1, 0, slot_in + 1)),
                                 rows_left.eq(y_in != height_last),
                                 below_fill.eq(y_in + 1 < fill_end)]

        # Registered "input row y_in is still to come" and "row p needs it",
        # so i.ready comes from flip-flops.
        rows_left = Signal()
        below_fill = Signal()

        # ---- output pipeline: free-running reads into an output FIFO -------
        # A slice issues only with a FIFO place reserved for it (a registered
        # credit count), so the read pipeline never stalls and o.ready only
        # reaches the FIFO.
        fifo_depth = BankedMemory.READ_LATENCY + 4
        # Emptied on cancel and held empty while idle: a frame that ended in
        # an error may leave slices nobody will take (a normal frame is idle
        # only once every slice has been taken).
        clear = self.cancel | ~self.busy
        m.submodules.out_fifo = out_fifo = ResetInserter(clear)(
            SyncFIFOBuffered(width=len(self.o.payload.as_value()), depth=fifo_depth))
        credits = Signal(range(fifo_depth + 1), init=fifo_depth)
        issue = Signal()
        popped = self.o.valid & self.o.ready
        with m.If(clear):
            m.d.sync += credits.eq(fifo_depth)
        with m.Else():
            m.d.sync += credits.eq(credits - issue + popped)
        pad = (y_r < 0) | (y_r >= height) | (x_n < 0) | (x_n >= width)
        block_end = (r == kh_last) & (s == kw_last) & (g == groups_last) & (n == block_last)
        frame_last = block_end & (p == out_h_last) & (q_left == block_size)
        tag = data.StructLayout({"valid": 1, "pad": 1, "last_group": 1, "last": 1})
        tags = [Signal(tag, name=f"slice_tag{k}") for k in range(BankedMemory.READ_LATENCY)]
        m.d.sync += [tags[0].valid.eq(issue & ~clear), tags[0].pad.eq(pad),
                     tags[0].last_group.eq(g == groups_last), tags[0].last.eq(frame_last)]
        for earlier, later in zip(tags, tags[1:]):
            m.d.sync += later.eq(Mux(clear, 0, earlier))
        out_beat = Signal.like(self.o.payload)
        m.d.comb += [
            line_buffer.read_addr.eq(address((g, self.group_bits), (x_n, self.x_bits),
                                             (slot_r, self.slot_bits))),
            out_beat.last.eq(tags[-1].last),
            out_fifo.w_en.eq(tags[-1].valid), out_fifo.w_data.eq(out_beat),
            self.o.valid.eq(out_fifo.r_rdy), self.o.payload.eq(out_fifo.r_data),
            out_fifo.r_en.eq(self.o.ready),
        ]
        # A padded slice is the zero point (the pad value is worked out from
        # registers beside the read, so the read data sees one multiplexer).
        for lane in range(lanes):
            pad_value = Mux(tags[-1].last_group & unused_lane[lane], 0, zero_point)
            m.d.comb += out_beat.data[lane].eq(
                Mux(tags[-1].pad, pad_value, line_buffer.read_data[lane]))
        pipeline_empty = credits == fifo_depth

        def start_block(x_first, positions_left):
            m.d.sync += [
                r.eq(0), s.eq(0), g.eq(0), n.eq(0),
                y_r.eq(y0), slot_r.eq(slot_y0), x_s.eq(x_first), x_n.eq(x_first),
                x0.eq(x_first),
                block_size.eq(Mux(positions_left < block, positions_left, block)),
                block_last.eq(Mux(positions_left < block, positions_left, block) - 1),
            ]

        frame = FrameControl(m, self, frame_end)
        m.d.comb += self.busy.eq(1)
        with m.FSM(name="state"):
            with m.State("IDLE"):
                m.d.comb += self.busy.eq(0)
                with m.If(self.start):
                    bad = (bad_range(self.shape.height, cfg.max_height)
                           | bad_range(self.shape.width, cfg.max_width)
                           | bad_range(self.shape.channels, cfg.max_in_channels)
                           | bad_range(self.shape.kernel_h, cfg.max_kernel)
                           | bad_range(self.shape.kernel_w, cfg.max_kernel)
                           | bad_range(self.shape.stride_h, cfg.max_stride)
                           | bad_range(self.shape.stride_w, cfg.max_stride)
                           | bad_range(self.shape.dilation_h, cfg.max_dilation)
                           | bad_range(self.shape.dilation_w, cfg.max_dilation))
                    for side in ("pad_top", "pad_bottom", "pad_left", "pad_right"):
                        bad = bad | above(getattr(self.shape, side), cfg.max_padding)
                    m.d.sync += [shape.eq(self.shape), zero_point.eq(self.zero_point),
                                 self.done.eq(0), self.error.eq(0),
                                 self.geometry_valid.eq(0)]
                    with m.If(bad):
                        m.d.sync += [self.done.eq(1), self.error.config.eq(1)]
                    with m.Else():
                        m.next = "SPAN"

            with m.State("SPAN"):
                # Dilated kernel extents by shift-and-add (no DSP block).
                m.d.sync += [
                    ring.eq(times_small(shape.kernel_h - 1, shape.dilation_h) + 1),
                    span_w.eq(times_small(shape.kernel_w - 1, shape.dilation_w) + 1),
                    kh_last.eq(shape.kernel_h - 1), kw_last.eq(shape.kernel_w - 1),
                    height_last.eq(height - 1), width_last.eq(width - 1),
                ]
                m.next = "SETUP"

                frame.leave_on_cancel()

            with m.State("SETUP"):
                m.d.sync += [
                    rest_c.eq(shape.channels), groups.eq(1),
                    rest_h.eq(height + shape.pad_top + shape.pad_bottom - ring),
                    rest_w.eq(width + shape.pad_left + shape.pad_right - span_w),
                    out_h.eq(1), out_w.eq(1),
                    pad_steps.eq(shape.pad_top), slot_y0.eq(0),
                ]
                m.next = "COUNT"

                frame.leave_on_cancel()

            with m.State("COUNT"):
                with m.If((rest_h < 0) | (rest_w < 0)):
                    frame.finish(self.error.config)  # kernel larger than the padded input
                    m.next = "IDLE"
                with m.Else():
                    busy_counting = Signal()
                    with m.If(above(rest_c, lanes)):
                        m.d.sync += [rest_c.eq(rest_c - lanes), groups.eq(groups + 1)]
                        m.d.comb += busy_counting.eq(1)
                    with m.If(rest_h >= shape.stride_h):
                        m.d.sync += [rest_h.eq(rest_h - shape.stride_h), out_h.eq(out_h + 1)]
                        m.d.comb += busy_counting.eq(1)
                    with m.If(rest_w >= shape.stride_w):
                        m.d.sync += [rest_w.eq(rest_w - shape.stride_w), out_w.eq(out_w + 1)]
                        m.d.comb += busy_counting.eq(1)
                    with m.If(pad_steps != 0):
                        # slot of row -pt is (-pt) mod L: step back pt times.
                        m.d.sync += [pad_steps.eq(pad_steps - 1),
                                     slot_y0.eq(Mux(slot_y0 == 0, ring - 1, slot_y0 - 1))]
                        m.d.comb += busy_counting.eq(1)
                    with m.If(~busy_counting):
                        m.next = "PREPARE"

                frame.leave_on_cancel()

            with m.State("PREPARE"):
                # A state of its own: the counting tests above drive only the
                # state register, not these enables.
                m.d.sync += [
                    last_lanes.eq(rest_c),
                    unused_lane.eq(Cat(rest_c <= lane for lane in range(lanes))),
                    y_in.eq(0), x_in.eq(0), g_in.eq(0), slot_in.eq(0),
                    p.eq(0), y0.eq(0 - shape.pad_top),
                    fill_end.eq(ring - shape.pad_top), rows_left.eq(1),
                    below_fill.eq(ring > shape.pad_top),
                    q_left.eq(out_w), x0.eq(0 - shape.pad_left),
                    groups_last.eq(groups - 1), out_h_last.eq(out_h - 1),
                    self.geometry_valid.eq(1),
                ]
                m.next = "FILL"

                frame.leave_on_cancel()

            with m.State("FILL"):
                wanted = rows_left & below_fill
                m.d.comb += [self.i.ready.eq(wanted), keep.eq(y_in >= y0)]
                with m.If(accepted):
                    step_input()
                    frame.check_frame_end()
                with m.If(~wanted):
                    start_block(x0, q_left)
                    m.next = "EMIT"

                frame.leave_on_cancel()

            with m.State("EMIT"):
                m.d.comb += issue.eq(credits != 0)
                with m.If(issue):
                    with m.If((r == 0) & (s == 0) & (g == 0) & (n == block_last)):
                        m.d.sync += next_x0.eq(x_n + shape.stride_w)
                    with m.If(n != block_last):
                        m.d.sync += [n.eq(n + 1), x_n.eq(x_n + shape.stride_w)]
                    with m.Elif(g != groups_last):
                        m.d.sync += [n.eq(0), g.eq(g + 1), x_n.eq(x_s)]
                    with m.Elif(s != kw_last):
                        m.d.sync += [n.eq(0), g.eq(0), s.eq(s + 1),
                                     x_s.eq(x_s + shape.dilation_w),
                                     x_n.eq(x_s + shape.dilation_w)]
                    with m.Elif(r != kh_last):
                        next_slot = slot_r + shape.dilation_h
                        m.d.sync += [n.eq(0), g.eq(0), s.eq(0), r.eq(r + 1),
                                     x_s.eq(x0), x_n.eq(x0),
                                     y_r.eq(y_r + shape.dilation_h),
                                     slot_r.eq(Mux(next_slot >= ring, next_slot - ring,
                                                   next_slot))]
                    with m.Else():
                        # Block done: the next block of this row, or the next row.
                        with m.If(q_left != block_size):
                            m.d.sync += q_left.eq(q_left - block_size)
                            # next_x0 is captured during the (r, s, g) = 0 pass;
                            # when that pass is this one, it is not written yet.
                            first_pass = (r == 0) & (s == 0) & (g == 0)
                            first_x = Mux(first_pass, x_n + shape.stride_w, next_x0)
                            start_block(first_x, q_left - block_size)
                        with m.Else():
                            m.d.sync += advance_steps.eq(shape.stride_h)
                            m.next = "ADVANCE"

                frame.leave_on_cancel()

            with m.State("ADVANCE"):
                with m.If(p == out_h_last):
                    m.next = "DRAIN"
                with m.Elif(advance_steps != 0):
                    m.d.sync += [advance_steps.eq(advance_steps - 1), y0.eq(y0 + 1),
                                 fill_end.eq(fill_end + 1), below_fill.eq(y_in < fill_end + 1),
                                 slot_y0.eq(Mux(slot_y0 == ring - 1, 0, slot_y0 + 1))]
                with m.Else():
                    m.d.sync += [p.eq(p + 1), q_left.eq(out_w), x0.eq(0 - shape.pad_left)]
                    m.next = "FILL"

                frame.leave_on_cancel()

            with m.State("DRAIN"):
                # Rows below the last window are read and dropped (floor rule).
                frame.drain_state(rows_left, step_input, pipeline_empty)

            with m.State("DISCARD"):
                frame.discard_state()

        return m
