"""Streaming max / average pooling over requantized activations.

Per channel, window ``K x K`` and stride ``U`` (each 1..maximum, independent,
so 2x2/2 and AlexNet's overlapping 3x3/2 both work), no padding, floor rule
for the output size (``golden.pool2d`` is the reference)::

    max: out[c][p][q] = max_{r,s < K} in[c][U*p + r][U*q + s]
    avg: out[c][p][q] = floor((2 * sum + K*K) / (2 * K*K))      # round half up

Beats carry ``lanes = array_cols`` channels (one channel group of one pixel;
lanes beyond ``C`` read as 0). Input order, with a run-time ``in_block``::

    for y < H: for each block of in_block columns: for g < ceil(C/lanes): for x in block

``in_block = 1`` is plain raster order (y, x, g); ``in_block = array_block``
is the order in which the systolic engine produces an output row. Output
order is raster: for p < P: for q < Q: for g; ``last`` on the final beat.

Storage: a ring of ``K`` rows in one ``lib.memory.Memory`` (block RAM), row
``y`` in slot ``y mod K``; physically ``Kmax * 2**ceil(log2 Wmax) *
2**ceil(log2 Gmax)`` words. The unit takes the ``K`` rows an output row needs
(dropping rows no window touches when ``U > K``), then emits the row: each
output beat reads its ``K*K`` taps, one per cycle, so an output beat costs
``K*K`` cycles and the input does not overlap with emission.

Pipeline: a tap's read address is formed from the emission counters, the
block RAM's output is registered before the fold (max or sum) into the
window's accumulators, and :class:`~convaccel.hw.pool_finish.PoolFinish`
turns the fold into the max or the rounded average (exact, one multiplier
shared by the lanes). Results go to an output FIFO; a window starts only
with a FIFO place reserved for it (a registered credit count), so no
combinational path runs from ``o.ready`` into the unit. Frame control and
errors as in :mod:`convaccel.hw.window_generator`.
"""

from amaranth.hdl import Module, Mux, ResetInserter, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .config import AccelConfig
from .frame_control import FrameControl
from .helpers import above, address, bad_range, counter
from .pool_finish import PoolFinish, average_divider, pool_sum_shape
from .pool_geometry import PoolMode, pool_shape_layout
from .window_generator import window_error_layout

__all__ = ["PoolMode", "PoolUnit", "pool_shape_layout", "average_divider"]


class PoolUnit(wiring.Component):
    """Max / average pooling with its own ``K``-row line buffer.

    Parameters
    ----------
    config : AccelConfig
        ``pool_support`` must be true; ``array_cols`` gives the lanes,
        ``max_pool_kernel``/``max_pool_stride`` and the image maxima the sizes.

    Attributes
    ----------
    i, o : stream of StructLayout({"data": lanes x signed(act_width), "last": 1})
    shape : In(pool_shape_layout(config))
    start, cancel : In(1)
    busy, done : Out(1)
    error : Out(window_error_layout())
    out_height, out_width : Out(unsigned)
    """

    def __init__(self, config: AccelConfig):
        if not isinstance(config, AccelConfig):
            raise TypeError(f"config must be an AccelConfig, got {config!r}")
        if not config.pool_support:
            raise ValueError("PoolUnit needs AccelConfig.pool_support=True, got False")
        self.config = config
        self.lanes = config.array_cols
        self.group_max = -(-config.max_out_channels // self.lanes)
        self.x_bits = ceil_log2(config.max_width)
        self.group_bits = ceil_log2(self.group_max)
        self.slot_bits = ceil_log2(config.max_pool_kernel)
        #: Words of the line buffer memory.
        self.memory_depth = config.max_pool_kernel << (self.x_bits + self.group_bits)
        beat = data.StructLayout({
            "data": data.ArrayLayout(signed(config.act_width), self.lanes), "last": 1})
        super().__init__({
            "i": In(stream.Signature(beat)),
            "o": Out(stream.Signature(beat)),
            "shape": In(pool_shape_layout(config)),
            "start": In(1),
            "cancel": In(1),
            "busy": Out(1),
            "done": Out(1),
            "error": Out(window_error_layout()),
            "out_height": Out(range(config.max_height + 1)),
            "out_width": Out(range(config.max_width + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        lanes, kmax = self.lanes, cfg.max_pool_kernel
        act = signed(cfg.act_width)
        word = data.ArrayLayout(act, lanes)
        m.submodules.line_buffer = line_buffer = Memory(shape=word, depth=self.memory_depth,
                                                        init=[])
        write, read = line_buffer.write_port(), line_buffer.read_port()

        shape = Signal(pool_shape_layout(cfg))
        groups = Signal(range(self.group_max + 1))
        last_lanes = Signal(range(lanes + 1))
        rest_c = Signal(range(cfg.max_out_channels + 1))
        rest_h = Signal(signed(ceil_log2(cfg.max_height + 1) + 2))
        rest_w = Signal(signed(ceil_log2(cfg.max_width + 1) + 2))
        out_h, out_w = self.out_height, self.out_width

        # Input side: y, block start, group, position in block; the column
        # x_in and the block's size are registers, so every test in
        # step_input compares two registers.
        y_in = Signal(range(cfg.max_height + 1))
        xb_in = counter(cfg.max_width)
        g_in = counter(self.group_max)
        n_in = counter(cfg.array_block)
        x_in = counter(cfg.max_width)
        slot_in = counter(kmax)
        block_last = counter(cfg.array_block)             # block size - 1
        after_block = Signal(range(cfg.max_width + 1))    # columns after this block
        groups_last = counter(self.group_max)
        width_last = counter(cfg.max_width)
        height_last = counter(cfg.max_height)
        fill_end = Signal(range(cfg.max_height + cfg.max_pool_stride + cfg.max_pool_kernel + 1))

        def first_block_of_row():
            size = Mux(shape.width < shape.in_block, shape.width, shape.in_block)
            m.d.sync += [xb_in.eq(0), x_in.eq(0), n_in.eq(0), g_in.eq(0),
                         block_last.eq(size - 1), after_block.eq(shape.width - size)]

        # Output side.
        p = Signal.like(out_h)
        y0 = Signal(range(cfg.max_height + cfg.max_pool_stride + 1))
        slot_y0 = counter(kmax)
        q = Signal.like(out_w)
        x0 = Signal(range(cfg.max_width + cfg.max_pool_stride + 1))
        g = counter(self.group_max)
        r = counter(kmax)
        s = counter(kmax)
        slot_r = counter(kmax)
        advance_steps = Signal(range(cfg.max_pool_stride + 1))

        frame_end = (y_in == height_last) & (g_in == groups_last) & (x_in == width_last)
        accepted = self.i.valid & self.i.ready
        keep = Signal()
        m.d.comb += [
            write.en.eq(accepted & keep),
            write.addr.eq(address((g_in, self.group_bits), (x_in, self.x_bits),
                                   (slot_in, self.slot_bits))),
        ]
        for lane in range(lanes):
            ok = (g_in != groups - 1) | (lane < last_lanes)
            m.d.comb += write.data[lane].eq(Mux(ok, self.i.payload.data[lane], 0))

        def step_input():
            with m.If(n_in != block_last):
                m.d.sync += [n_in.eq(n_in + 1), x_in.eq(x_in + 1)]
            with m.Elif(g_in != groups_last):
                m.d.sync += [n_in.eq(0), g_in.eq(g_in + 1), x_in.eq(xb_in)]
            with m.Elif(after_block != 0):
                size = Mux(after_block < shape.in_block, after_block, shape.in_block)
                m.d.sync += [n_in.eq(0), g_in.eq(0), xb_in.eq(x_in + 1), x_in.eq(x_in + 1),
                             block_last.eq(size - 1), after_block.eq(after_block - size)]
            with m.Else():
                first_block_of_row()
                m.d.sync += [y_in.eq(y_in + 1),
                             slot_in.eq(Mux(slot_in == shape.kernel - 1, 0, slot_in + 1))]

        # ---- taps: address, registered read, fold, finish ---------------
        issue = Signal()                     # a tap's read goes out this cycle
        first_tap = (r == 0) & (s == 0)
        window_end = (r == shape.kernel - 1) & (s == shape.kernel - 1)
        m.d.comb += [
            read.addr.eq(address((g, self.group_bits), (x0 + s, self.x_bits),
                                 (slot_r, self.slot_bits))),
            read.en.eq(1),
        ]
        tag = data.StructLayout({"valid": 1, "first": 1, "end": 1, "last": 1})
        read_tag, tap_tag = Signal(tag), Signal(tag)      # read out; registered tap
        m.d.sync += [
            read_tag.valid.eq(issue), read_tag.first.eq(first_tap),
            read_tag.end.eq(window_end),
            read_tag.last.eq(window_end & (g == groups - 1) & (q == out_w - 1)
                             & (p == out_h - 1)),
            tap_tag.eq(read_tag),
        ]
        tap = Signal.like(read.data)
        m.d.sync += tap.eq(read.data)
        average = shape.mode == PoolMode.AVG
        acc = Signal(data.ArrayLayout(pool_sum_shape(cfg), lanes))
        with m.If(tap_tag.valid):
            for lane in range(lanes):
                value, sofar = tap[lane], acc[lane]
                merged = Mux(average, sofar + value, Mux(value > sofar, value, sofar))
                m.d.sync += acc[lane].eq(Mux(tap_tag.first, value, merged))
        window_done = Signal()
        window_last = Signal()
        m.d.sync += [window_done.eq(tap_tag.valid & tap_tag.end),
                     window_last.eq(tap_tag.last)]

        m.submodules.finish = finish = ResetInserter(self.cancel)(PoolFinish(cfg))
        m.d.comb += [finish.kernel.eq(shape.kernel), finish.average.eq(average),
                     finish.valid.eq(window_done), finish.last.eq(window_last),
                     finish.sums.eq(acc)]

        # Output FIFO; a window reserves its place when its first tap goes out.
        fifo_depth = 8
        m.submodules.fifo = fifo = ResetInserter(self.cancel)(
            SyncFIFOBuffered(width=len(self.o.payload.as_value()), depth=fifo_depth))
        credits = Signal(range(fifo_depth + 1), init=fifo_depth)
        starts = issue & first_tap
        popped = self.o.valid & self.o.ready
        with m.If(self.cancel):
            m.d.sync += credits.eq(fifo_depth)
        with m.Else():
            m.d.sync += credits.eq(credits - starts + popped)
        out_beat = Signal.like(self.o.payload)
        m.d.comb += [
            out_beat.data.eq(finish.out_data), out_beat.last.eq(finish.out_last),
            fifo.w_en.eq(finish.out_valid), fifo.w_data.eq(out_beat),
            self.o.valid.eq(fifo.r_rdy), self.o.payload.eq(fifo.r_data),
            fifo.r_en.eq(self.o.ready),
        ]
        # With a shared divider slower than a window, one window at a time.
        windows_in_fold = Signal(range(fifo_depth + 1))
        m.d.sync += windows_in_fold.eq(windows_in_fold + starts - window_done)
        divider_free = ~finish.slow | (~finish.busy & (windows_in_fold == 0))
        window_may_start = (credits != 0) & divider_free
        pipeline_empty = credits == fifo_depth

        frame = FrameControl(m, self, frame_end)
        m.d.comb += self.busy.eq(1)
        with m.FSM(name="state"):
            with m.State("IDLE"):
                m.d.comb += self.busy.eq(0)
                with m.If(self.start):
                    bad = (bad_range(self.shape.height, cfg.max_height)
                           | bad_range(self.shape.width, cfg.max_width)
                           | bad_range(self.shape.channels, cfg.max_out_channels)
                           | bad_range(self.shape.kernel, cfg.max_pool_kernel)
                           | bad_range(self.shape.stride, cfg.max_pool_stride)
                           | bad_range(self.shape.in_block, cfg.array_block)
                           | (self.shape.kernel > self.shape.height)
                           | (self.shape.kernel > self.shape.width))
                    m.d.sync += [shape.eq(self.shape), self.done.eq(0), self.error.eq(0)]
                    with m.If(bad):
                        m.d.sync += [self.done.eq(1), self.error.config.eq(1)]
                    with m.Else():
                        m.d.sync += [
                            rest_c.eq(self.shape.channels), groups.eq(1),
                            rest_h.eq(self.shape.height - self.shape.kernel),
                            rest_w.eq(self.shape.width - self.shape.kernel),
                            out_h.eq(1), out_w.eq(1),
                        ]
                        m.next = "COUNT"

            with m.State("COUNT"):
                counting = Signal()
                with m.If(above(rest_c, lanes)):
                    m.d.sync += [rest_c.eq(rest_c - lanes), groups.eq(groups + 1)]
                    m.d.comb += counting.eq(1)
                with m.If(rest_h >= shape.stride):
                    m.d.sync += [rest_h.eq(rest_h - shape.stride), out_h.eq(out_h + 1)]
                    m.d.comb += counting.eq(1)
                with m.If(rest_w >= shape.stride):
                    m.d.sync += [rest_w.eq(rest_w - shape.stride), out_w.eq(out_w + 1)]
                    m.d.comb += counting.eq(1)
                with m.If(~counting):
                    first_block_of_row()
                    m.d.sync += [
                        last_lanes.eq(rest_c), y_in.eq(0), slot_in.eq(0), p.eq(0), y0.eq(0),
                        slot_y0.eq(0), fill_end.eq(shape.kernel), groups_last.eq(groups - 1),
                        width_last.eq(shape.width - 1), height_last.eq(shape.height - 1),
                    ]
                    m.next = "FILL"
                frame.leave_on_cancel()

            with m.State("FILL"):
                wanted = (y_in < shape.height) & (y_in < fill_end)
                m.d.comb += [self.i.ready.eq(wanted), keep.eq(y_in >= y0)]
                with m.If(accepted):
                    step_input()
                    frame.check_frame_end()
                with m.If(~wanted):
                    m.d.sync += [q.eq(0), x0.eq(0), g.eq(0), r.eq(0), s.eq(0),
                                 slot_r.eq(slot_y0)]
                    m.next = "EMIT"
                frame.leave_on_cancel()

            with m.State("EMIT"):
                m.d.comb += issue.eq(window_may_start | ~first_tap)
                with m.If(issue):
                    with m.If(s != shape.kernel - 1):
                        m.d.sync += s.eq(s + 1)
                    with m.Elif(r != shape.kernel - 1):
                        m.d.sync += [s.eq(0), r.eq(r + 1),
                                     slot_r.eq(Mux(slot_r == shape.kernel - 1, 0, slot_r + 1))]
                    with m.Else():
                        m.d.sync += [s.eq(0), r.eq(0), slot_r.eq(slot_y0)]
                        with m.If(g != groups - 1):
                            m.d.sync += g.eq(g + 1)
                        with m.Elif(q != out_w - 1):
                            m.d.sync += [g.eq(0), q.eq(q + 1), x0.eq(x0 + shape.stride)]
                        with m.Else():
                            m.d.sync += advance_steps.eq(shape.stride)
                            m.next = "ADVANCE"
                frame.leave_on_cancel()

            with m.State("ADVANCE"):
                with m.If(p == out_h - 1):
                    m.next = "DRAIN"
                with m.Elif(advance_steps != 0):
                    m.d.sync += [advance_steps.eq(advance_steps - 1), y0.eq(y0 + 1),
                                 fill_end.eq(fill_end + 1),
                                 slot_y0.eq(Mux(slot_y0 == shape.kernel - 1, 0, slot_y0 + 1))]
                with m.Else():
                    m.d.sync += p.eq(p + 1)
                    m.next = "FILL"
                frame.leave_on_cancel()

            with m.State("DRAIN"):
                frame.drain_state(y_in < shape.height, step_input, pipeline_empty)

            with m.State("DISCARD"):
                frame.discard_state()

        return m
