"""The pooling unit's output side: taps folded into windows, finished, into a FIFO.

A tap is issued with its line-buffer read address; its data comes back
registered two cycles later (:data:`READ_LATENCY`, a
:class:`~convaccel.hw.banked_memory.BankedMemory`), is registered once
more, and then folds into the window's per-lane accumulators (the running
max, or the sum). A window's last tap hands the fold to
:class:`~convaccel.hw.pool_finish.PoolFinish` (the max, or the rounded
average), whose result goes into the output FIFO.

Nothing on the way can stall, so a window may start only with a place in
the FIFO reserved for it: a registered credit count, one credit per place,
taken by a window's first tap and given back when the output stream takes a
beat; ``o.ready`` reaches only the FIFO. When the finish's shared divider
is slower than a window, a window also waits until the windows before it
are through.
"""

from amaranth.hdl import Module, Mux, ResetInserter, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from .banked_memory import BankedMemory
from .config import AccelConfig, checked_config
from .pool_finish import PoolFinish, pool_sum_shape
from .stage_payloads import lane_beat_layout

__all__ = ["PoolOutput", "pool_beat_layout", "pool_tap_tag_layout"]


def pool_beat_layout(config: AccelConfig) -> data.StructLayout:
    """A beat of ``array_cols`` activations and ``last`` (the pooling unit's streams)."""
    return lane_beat_layout(config, config.array_cols)


def pool_tap_tag_layout() -> data.StructLayout:
    """What an issued tap is, beside its read address."""
    return data.StructLayout({"first": 1, "end": 1, "last": 1})


class PoolOutput(wiring.Component):
    """Fold, finish and credit-counted output FIFO of pooling windows (see the module).

    Parameters
    ----------
    config : AccelConfig
        ``array_cols`` (lanes), ``act_width`` and ``max_pool_kernel``.

    Attributes
    ----------
    issue : In(1)
        A tap is issued: its read address is on the line buffer this cycle.
        A window's first tap only while ``may_start`` is set.
    tag : In(pool_tap_tag_layout())
        The issued tap: its window's first, its window's last, of the frame's
        last window.
    read_data : In(ArrayLayout(signed(act_width), lanes))
        The line buffer's read data, from a register, of the address issued
        ``READ_LATENCY`` cycles before.
    kernel : In(unsigned)
        ``K`` of the frame (stable while windows are folded).
    average : In(1)
        Average (else max) pooling.
    clear : In(1)
        Empty the FIFO and the finish and give back every credit. Not
        cleared: taps already issued (they are still folded, and a window
        they complete still goes through the finish into the FIFO) and the
        count of windows in the fold (a window cut short stays counted).
    may_start : Out(1)
        A window may start: a FIFO place is free to reserve (and the shared
        divider, when it is slower than a window, is free).
    empty : Out(1)
        Every window started has been taken by ``o`` (or cleared).
    o : Out(stream.Signature(pool_beat_layout(config)))
        The pooled beats, in window order.
    """

    #: Output FIFO places (a window's beat needs at least one cycle per tap,
    #: so a few places keep a steady output stream from waiting for credits).
    FIFO_DEPTH = 8
    #: Cycles from a tap's issue to its data on ``read_data``.
    READ_LATENCY = BankedMemory.READ_LATENCY

    def __init__(self, config: AccelConfig):
        checked_config(config)
        self.config = config
        super().__init__({
            "issue": In(1),
            "tag": In(pool_tap_tag_layout()),
            "read_data": In(data.ArrayLayout(signed(config.act_width), config.array_cols)),
            "kernel": In(range(config.max_pool_kernel + 1)),
            "average": In(1),
            "clear": In(1),
            "may_start": Out(1),
            "empty": Out(1),
            "o": Out(stream.Signature(pool_beat_layout(config))),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, lanes, depth = self.config, self.config.array_cols, self.FIFO_DEPTH

        # The tags travel beside the read to meet the tap's data, which is
        # registered once more before the fold (the bank multiplexer and the
        # fold's compare would not fit one cycle together).
        in_flight = data.StructLayout({"valid": 1, **pool_tap_tag_layout().members})
        tags = [Signal(in_flight, name=f"tap_tag{stage}")
                for stage in range(self.READ_LATENCY + 1)]
        m.d.sync += [tags[0].valid.eq(self.issue), tags[0].first.eq(self.tag.first),
                     tags[0].end.eq(self.tag.end), tags[0].last.eq(self.tag.last)]
        m.d.sync += [later.eq(earlier) for earlier, later in zip(tags, tags[1:])]
        tap_tag = tags[-1]
        # Data registers, not reset: the tags say what they hold, and a window
        # starts its sum afresh on its first tap.
        tap = Signal.like(self.read_data, reset_less=True)
        m.d.sync += tap.eq(self.read_data)
        # An average over a power of two starts from the finish's rounding
        # term (round_bias, else 0), so the finish needs no adder.
        m.submodules.finish = finish = ResetInserter(self.clear)(PoolFinish(cfg))
        # The running sum and the running max are registers of their own, so
        # the max's compare drives one multiplexer (or clock enable) and no
        # more: the compare of the tap against the running max is the fold's
        # slowest path, and it loops back into itself every cycle.
        # The max is kept in offset binary (sign bit flipped), where signed
        # order is unsigned order: the compare is a bare carry chain.
        acc = Signal(data.ArrayLayout(pool_sum_shape(cfg), lanes), reset_less=True)
        maxes = Signal(data.ArrayLayout(unsigned(cfg.act_width), lanes), reset_less=True)
        flip = 1 << (cfg.act_width - 1)
        with m.If(tap_tag.valid):
            for lane in range(lanes):
                value = tap[lane]
                offset = value[:cfg.act_width] ^ flip
                m.d.sync += acc[lane].eq(Mux(tap_tag.first, value + finish.round_bias,
                                             acc[lane] + value))
                with m.If(tap_tag.first | (offset > maxes[lane])):
                    m.d.sync += maxes[lane].eq(offset)
        window_done, window_last = Signal(), Signal()
        m.d.sync += [window_done.eq(tap_tag.valid & tap_tag.end), window_last.eq(tap_tag.last)]

        m.d.comb += [finish.kernel.eq(self.kernel), finish.average.eq(self.average),
                     finish.valid.eq(window_done), finish.last.eq(window_last),
                     *[finish.sums[lane].eq(Mux(self.average, acc[lane],
                                                (maxes[lane] ^ flip).as_signed()))
                       for lane in range(lanes)]]

        m.submodules.fifo = fifo = ResetInserter(self.clear)(
            SyncFIFOBuffered(width=len(self.o.payload.as_value()), depth=depth))
        credits = Signal(range(depth + 1), init=depth)
        starts = self.issue & self.tag.first
        taken = self.o.valid & self.o.ready
        with m.If(self.clear):
            m.d.sync += credits.eq(depth)
        with m.Else():
            m.d.sync += credits.eq(credits - starts + taken)
        beat = Signal.like(self.o.payload)
        m.d.comb += [
            beat.data.eq(finish.out_data), beat.last.eq(finish.out_last),
            fifo.w_en.eq(finish.out_valid), fifo.w_data.eq(beat),
            self.o.valid.eq(fifo.r_rdy), self.o.payload.eq(fifo.r_data),
            fifo.r_en.eq(self.o.ready),
        ]
        # With a shared divider slower than a window, one window at a time.
        windows_in_fold = Signal(range(depth + 1))
        m.d.sync += windows_in_fold.eq(windows_in_fold + starts - window_done)
        divider_free = ~finish.slow | (~finish.busy & (windows_in_fold == 0))
        m.d.comb += [self.may_start.eq((credits != 0) & divider_free),
                     self.empty.eq(credits == depth)]
        return m
