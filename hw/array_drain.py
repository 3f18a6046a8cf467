"""Where the systolic array's sums go: back to the accumulator buffer, or out.

The array's sums for a vector appear a fixed ``latency`` cycles after the
vector's facts leave the array feed (stage 1), so the facts travel down a
delay line of that length beside the array. At its end a vector's sums are
either partial (written back to the accumulator buffer at the vector's
address) or final (queued in the result FIFO). The FIFO's write is
registered once more, so its enable and data load only the FIFO and sit
beside it: the FIFO's level logic joins its write and read sides, and the
array is far from the reader. The engine reserves a FIFO place for every
final vector when it issues, so the FIFO never refuses a write.
"""

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from .array_feed import issued_vector_layout
from .config import AccelConfig, checked_config
from .stage_payloads import sum_beat_layout

__all__ = ["ArrayDrain", "engine_result_layout"]


def engine_result_layout(config: AccelConfig) -> data.StructLayout:
    """A result beat: ``array_cols`` exact sums, the output tile ``group`` and ``last``."""
    return sum_beat_layout(config, config.array_cols)


class ArrayDrain(wiring.Component):
    """Delay line for issued vectors' facts, accumulator write-back and result FIFO.

    Parameters
    ----------
    config : AccelConfig
        ``array_cols``, ``array_block``, ``max_out_channels`` and the widths.
    latency : int
        Cycles from ``issued`` to the array's ``sums`` of that vector.
    depth : int
        Result FIFO depth (the places the engine reserves at issue).

    Attributes
    ----------
    issued : In(issued_vector_layout(config))
        A vector's facts as it enters the array (``valid`` marks one).
    sums : In(ArrayLayout(signed(acc_width), cols))
        The array's sums, ``latency`` cycles after their vector's ``issued``.
    write_en, write_addr, write_data : Out
        Accumulator-buffer write port: a partial vector's sums at its ``addr``.
    result : Out(stream.Signature(engine_result_layout(config)))
        Final vectors' sums; ``group`` is the low ``addr`` bits (the output
        tile), ``last`` the vector's ``last``.
    """

    def __init__(self, config: AccelConfig, *, latency: int, depth: int):
        checked_config(config)
        if latency < 1:
            raise ValueError(f"latency must be at least 1, got {latency}")
        if depth < 2:
            raise ValueError(f"depth must be at least 2, got {depth}")
        self.config, self.latency, self.depth = config, latency, depth
        facts = issued_vector_layout(config)
        super().__init__({
            "issued": In(facts),
            "sums": In(data.ArrayLayout(signed(config.acc_width), config.array_cols)),
            "write_en": Out(1),
            "write_addr": Out(facts.members["addr"]),
            "write_data": Out(data.ArrayLayout(signed(config.acc_width), config.array_cols)),
            "result": Out(stream.Signature(engine_result_layout(config))),
        })

    def elaborate(self, platform):
        m = Module()
        facts = self.issued
        for stage in range(self.latency):
            delayed = Signal.like(self.issued, name=f"issued_d{stage + 1}")
            m.d.sync += delayed.eq(facts)
            facts = delayed
        m.d.comb += [
            self.write_en.eq(facts.valid & ~facts.to_output),
            self.write_addr.eq(facts.addr),
            self.write_data.eq(self.sums),
        ]

        payload = self.result.payload
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=len(payload.as_value()),
                                                    depth=self.depth)
        fifo_write = Signal()
        fifo_data = Signal(payload.shape(), reset_less=True)
        m.d.sync += [
            fifo_write.eq(facts.valid & facts.to_output),
            fifo_data.psum.eq(self.sums),
            fifo_data.last.eq(facts.last),
            fifo_data.group.eq(facts.addr[:len(payload.group)]),
        ]
        m.d.comb += [
            fifo.w_en.eq(fifo_write), fifo.w_data.eq(fifo_data),
            self.result.valid.eq(fifo.r_rdy), payload.eq(fifo.r_data),
            fifo.r_en.eq(self.result.ready),
        ]
        return m
