"""The window generator's output side: a free-running read pipeline into a FIFO.

A slice is issued with its line-buffer read address; its data comes back
``read_latency`` cycles later (the line buffer's, see
:class:`~convaccel.hw.banked_memory.BankedMemory`) and is registered once
more before the FIFO (:attr:`SliceOutput.pipeline`),
with nothing able to stall it on the way. So a slice may
issue only with a place in the output FIFO reserved for it: a registered
credit count, one credit per place, taken by an issue and given back when the
output stream takes a slice. The read pipeline never waits, and ``o.ready``
reaches only the FIFO.

A padded slice never reads the memory: its lanes are the input zero point,
0 in the lanes beyond ``C`` of the last channel group (their weights are 0).
"""

from amaranth.hdl import Module, Mux, ResetInserter, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from .banked_memory import BankedMemory
from .config import AccelConfig, checked_config
from .stage_payloads import lane_beat_layout

__all__ = ["SliceOutput", "slice_beat_layout", "slice_tag_layout"]


def slice_beat_layout(config: AccelConfig) -> data.StructLayout:
    """A beat of ``array_rows`` activations and ``last`` (the window generator's streams)."""
    return lane_beat_layout(config, config.array_rows)


def slice_tag_layout() -> data.StructLayout:
    """What an issued slice is, beside its read address."""
    return data.StructLayout({"pad": 1, "last_group": 1, "last": 1})


class SliceOutput(wiring.Component):
    """Read pipeline and credit-counted output FIFO of window slices (see the module).

    Parameters
    ----------
    config : AccelConfig
        ``array_rows`` (lanes) and ``act_width``.
    read_latency : int
        Cycles from a read address to its data on ``read_data``.

    Attributes
    ----------
    issue : In(1)
        A slice is issued: its read address is on the line buffer this cycle.
        Only while ``space`` is set.
    tag : In(slice_tag_layout())
        The issued slice: all padding, of the last channel group, the frame's last.
    read_data : In(ArrayLayout(signed(act_width), lanes))
        The line buffer's read data (of the address issued ``read_latency`` cycles before).
    zero_point : In(signed(act_width))
        The value of padded lanes.
    unused_lanes : In(lanes)
        A bit per lane beyond ``C`` in the last channel group: such lanes give 0.
    clear : In(1)
        Drop every slice in the pipeline and the FIFO, and every issue of this cycle.
    space : Out(1)
        A FIFO place is free to reserve: a slice may issue.
    empty : Out(1)
        Every slice issued has been taken by ``o`` (or cleared).
    o : Out(stream.Signature(slice_beat_layout(config)))
        The slices, in issue order.
    """

    #: Output FIFO places beyond the read pipeline's slices, so that a
    #: steady output stream never waits for credits.
    SPARE_PLACES = 4

    def __init__(self, config: AccelConfig, read_latency: int = BankedMemory.READ_LATENCY):
        checked_config(config)
        self.config = config
        #: Cycles from an issue to the FIFO's input: the memory's read
        #: latency plus a register after it, so the bank selection and the
        #: padding choice are not one cycle's logic.
        self.pipeline = read_latency + 1
        self.fifo_depth = self.pipeline + self.SPARE_PLACES
        lanes = config.array_rows
        super().__init__({
            "issue": In(1),
            "tag": In(slice_tag_layout()),
            "read_data": In(data.ArrayLayout(signed(config.act_width), lanes)),
            "zero_point": In(signed(config.act_width)),
            "unused_lanes": In(lanes),
            "clear": In(1),
            "space": Out(1),
            "empty": Out(1),
            "o": Out(stream.Signature(slice_beat_layout(config))),
        })

    def elaborate(self, platform):
        m = Module()
        depth = self.fifo_depth
        m.submodules.fifo = fifo = ResetInserter(self.clear)(
            SyncFIFOBuffered(width=len(self.o.payload.as_value()), depth=depth))
        credits = Signal(range(depth + 1), init=depth)
        taken = self.o.valid & self.o.ready
        # `space` (credits != 0) is a register of its own, worked out beside
        # the count: the window walk's step enables hang off it.
        space = Signal(init=1)
        with m.If(self.clear):
            m.d.sync += [credits.eq(depth), space.eq(1)]
        with m.Else():
            m.d.sync += [credits.eq(credits - self.issue + taken),
                         # A beat taken gives a place back; else one is left
                         # unless the last is issued now (no issue at 0).
                         space.eq(taken | (credits >= 2) | ((credits == 1) & ~self.issue))]
        m.d.comb += [self.space.eq(space), self.empty.eq(credits == depth)]

        # The tags travel beside the reads, one register per cycle of latency.
        in_flight = data.StructLayout({"valid": 1, **slice_tag_layout().members})
        stages = [Signal(in_flight, name=f"slice_tag{k}") for k in range(self.pipeline)]
        m.d.sync += [stages[0].valid.eq(self.issue & ~self.clear),
                     stages[0].pad.eq(self.tag.pad),
                     stages[0].last_group.eq(self.tag.last_group),
                     stages[0].last.eq(self.tag.last)]
        for earlier, later in zip(stages, stages[1:]):
            m.d.sync += later.eq(Mux(self.clear, 0, earlier))
        arriving = stages[-1]

        read_data = Signal.like(self.read_data, reset_less=True)   # data: the tag says
        m.d.sync += read_data.eq(self.read_data)
        beat = Signal.like(self.o.payload)
        # The pad value and the choice are worked out from registers beside
        # the read, so the read data sees one multiplexer. The last group's
        # lanes beyond C are 0, padded or not (the ring holds what came in).
        for lane in range(self.config.array_rows):
            unused = arriving.last_group & self.unused_lanes[lane]
            pad_value = Mux(unused, 0, self.zero_point)
            m.d.comb += beat.data[lane].eq(Mux(arriving.pad | unused, pad_value,
                                               read_data[lane]))
        m.d.comb += [
            beat.last.eq(arriving.last),
            fifo.w_en.eq(arriving.valid), fifo.w_data.eq(beat),
            self.o.valid.eq(fifo.r_rdy), self.o.payload.eq(fifo.r_data),
            fifo.r_en.eq(self.o.ready),
        ]
        return m
