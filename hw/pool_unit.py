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

The average divides by ``K*K`` exactly with a reciprocal multiply (checked
exhaustively for every window sum in the tests). Frame control and errors as
in :mod:`convaccel.hw.window_generator`.
"""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .config import AccelConfig
from .frame_control import FrameControl
from .helpers import above, address, bad_range, counter
from .window_generator import window_error_layout

__all__ = ["PoolMode", "PoolUnit", "pool_shape_layout", "average_divider"]


class PoolMode(enum.Enum, shape=1):
    """Pooling function."""

    MAX = 0
    AVG = 1


def pool_shape_layout(config: AccelConfig) -> data.StructLayout:
    """Run-time shape of one pooling layer (sampled at ``start``)."""
    size = lambda limit: range(limit + 1)  # noqa: E731 - a shape for 0..limit
    return data.StructLayout({
        "height": size(config.max_height), "width": size(config.max_width),
        "channels": size(config.max_out_channels),
        "kernel": size(config.max_pool_kernel), "stride": size(config.max_pool_stride),
        "mode": PoolMode, "in_block": size(config.array_block),
    })


def average_divider(config: AccelConfig):
    """Constants of the exact rounded division by ``K*K``.

    Returns ``(shift, offset, table)``: for a window sum ``s`` of ``n = K*K``
    activations, ``floor((2s + n) / 2n) == ((2s + n + 2n*offset) * M_n >> shift) - offset``
    with ``M_n = table[K]``; ``offset`` makes the dividend non-negative and
    ``shift`` is large enough for the multiply to be exact over the range.
    """
    offset = 1 << (config.act_width - 1)            # |s| <= n * offset
    largest = max(k * k for k in range(1, config.max_pool_kernel + 1))
    dividend_max = 2 * largest * (config.act_max + 1 + offset)
    shift = dividend_max.bit_length() + (2 * largest).bit_length() + 1
    table = {k: -(-(1 << shift) // (2 * k * k)) for k in range(1, config.max_pool_kernel + 1)}
    return shift, offset, table


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

        # Input side: y, block start, group, position in block.
        y_in = Signal(range(cfg.max_height + 1))
        xb_in = counter(cfg.max_width)
        g_in = counter(self.group_max)
        n_in = counter(cfg.array_block)
        slot_in = counter(kmax)
        x_in = xb_in + n_in
        block_in = Mux(shape.width - xb_in < shape.in_block, shape.width - xb_in, shape.in_block)

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

        frame_end = ((y_in == shape.height - 1) & (g_in == groups - 1)
                     & (x_in == shape.width - 1))
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
            with m.If(n_in != block_in - 1):
                m.d.sync += n_in.eq(n_in + 1)
            with m.Elif(g_in != groups - 1):
                m.d.sync += [n_in.eq(0), g_in.eq(g_in + 1)]
            with m.Elif(xb_in + block_in != shape.width):
                m.d.sync += [n_in.eq(0), g_in.eq(0), xb_in.eq(xb_in + block_in)]
            with m.Else():
                m.d.sync += [n_in.eq(0), g_in.eq(0), xb_in.eq(0), y_in.eq(y_in + 1),
                             slot_in.eq(Mux(slot_in == shape.kernel - 1, 0, slot_in + 1))]

        # ---- reduction pipeline ---------------------------------------
        # Stage 0 reads tap (r, s) of (q, g); stage 1 folds it into `acc`;
        # after the last tap the result goes to the output register.
        tap_valid = Signal()      # read issued last cycle
        tap_first = Signal()
        tap_last = Signal()
        out_last = Signal()
        acc_shape = signed(cfg.act_width + ceil_log2(kmax * kmax) + 1)
        acc = [Signal(acc_shape, name=f"acc{lane}") for lane in range(lanes)]
        m.d.comb += read.addr.eq(address((g, self.group_bits), (x0 + s, self.x_bits),
                                          (slot_r, self.slot_bits)))
        shift, offset, table = average_divider(cfg)
        reciprocal = Signal(range(max(table.values()) + 1))
        with m.Switch(shape.kernel):
            for k, value in table.items():
                with m.Case(k):
                    m.d.comb += reciprocal.eq(value)
        window = Signal(range(kmax * kmax + 1))
        m.d.comb += window.eq(shape.kernel * shape.kernel)

        folded = []
        for lane in range(lanes):
            value = read.data[lane]
            base = Mux(tap_first, Mux(shape.mode == PoolMode.MAX, cfg.act_min, 0), acc[lane])
            merged = Mux(shape.mode == PoolMode.MAX, Mux(value > base, value, base), base + value)
            folded.append(merged)
            with m.If(tap_valid):
                m.d.sync += acc[lane].eq(merged)

        def average(total):
            dividend = 2 * total + window + 2 * window * offset
            return ((dividend * reciprocal) >> shift) - offset

        with m.If(tap_valid & tap_last):
            m.d.sync += [self.o.valid.eq(1), self.o.payload.last.eq(out_last)]
            for lane in range(lanes):
                result = Mux(shape.mode == PoolMode.MAX, folded[lane], average(folded[lane]))
                m.d.sync += self.o.payload.data[lane].eq(result)
        with m.Elif(self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        issue = Signal()
        group_done = (r == shape.kernel - 1) & (s == shape.kernel - 1)
        m.d.sync += [tap_valid.eq(issue), tap_first.eq((r == 0) & (s == 0)),
                     tap_last.eq(group_done),
                     out_last.eq(group_done & (g == groups - 1) & (q == out_w - 1)
                                 & (p == out_h - 1))]
        m.d.comb += read.en.eq(1)
        # A new output beat may start only when its result will have room:
        # the register is empty, or being read, and no result is in flight.
        room = (~self.o.valid | self.o.ready) & ~(tap_valid & tap_last)

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
                    m.d.sync += [
                        last_lanes.eq(rest_c), y_in.eq(0), xb_in.eq(0), g_in.eq(0),
                        n_in.eq(0), slot_in.eq(0), p.eq(0), y0.eq(0), slot_y0.eq(0),
                    ]
                    m.next = "FILL"
                frame.leave_on_cancel()

            with m.State("FILL"):
                wanted = (y_in < shape.height) & (y_in < y0 + shape.kernel)
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
                m.d.comb += issue.eq(room | ~((r == 0) & (s == 0)))
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
                                 slot_y0.eq(Mux(slot_y0 == shape.kernel - 1, 0, slot_y0 + 1))]
                with m.Else():
                    m.d.sync += p.eq(p + 1)
                    m.next = "FILL"
                frame.leave_on_cancel()

            with m.State("DRAIN"):
                frame.drain_state(y_in < shape.height, step_input, ~self.o.valid & ~tap_valid)

            with m.State("DISCARD"):
                frame.discard_state()

        with m.If(self.cancel):
            m.d.sync += self.o.valid.eq(0)
        return m
