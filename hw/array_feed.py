"""The two register stages between the systolic engine's issue decision and its array.

Stage 1 registers the issued vector's facts and its activation slice; a
slice that came from the ``act`` stream is written into a small buffer
there, from which the step's other output tiles read it again (the read
address is the vector's position ``n``, presented at the issue). Stage 2
registers the array's activation input, choosing between the stream's
slice and the buffer's; the accumulator buffer's read data is a register
at this stage already, and the "start from zero" choice comes after it.
The tile swap leaves at stage 1, one cycle ahead of the tile's first
activation (see :mod:`convaccel.hw.systolic_array`).
"""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .config import AccelConfig, checked_config
from .fpga_target import primitive_family

__all__ = ["ArrayFeed", "issued_vector_layout"]


def issued_vector_layout(config: AccelConfig) -> data.StructLayout:
    """An issued vector's facts, as the array's results need them back.

    ``addr`` is the accumulator-buffer word ``(n << mt_bits) | mt``.
    """
    mt_max = -(-config.max_out_channels // config.array_cols)
    n_bits = max(1, ceil_log2(config.array_block))
    mt_bits = max(1, ceil_log2(mt_max))
    return data.StructLayout({"valid": 1, "to_output": 1, "last": 1, "addr": n_bits + mt_bits})


class ArrayFeed(wiring.Component):
    """Stages 1 and 2 of the systolic engine: the array's registered inputs (see the module).

    Parameters
    ----------
    config : AccelConfig
        ``array_rows``, ``array_cols``, ``array_block`` and the widths.

    Attributes
    ----------
    issued : In(issued_vector_layout(config))
        The vector issued this cycle (``valid``) and its facts.
    swap, from_stream, zero : In(1)
        With ``issued.valid``: the vector is its step's first (its tile
        swaps in); its slice is ``act``'s payload (else the buffer's); its
        partial sums start from zero (else from ``psum``).
    act : In(ArrayLayout(signed(act_width), rows))
        The stream's activation slice (used when ``from_stream``).
    psum : In(ArrayLayout(signed(acc_width), cols))
        The accumulator buffer's read data, of the word addressed at the
        issue two cycles before.
    meta : Out(issued_vector_layout(config))
        ``issued`` one cycle later (stage 1).
    array_act, array_act_valid, array_swap, array_psum : Out
        The array's inputs.
    """

    def __init__(self, config: AccelConfig):
        checked_config(config)
        self.config = config
        act_layout = data.ArrayLayout(signed(config.act_width), config.array_rows)
        acc_layout = data.ArrayLayout(signed(config.acc_width), config.array_cols)
        meta = issued_vector_layout(config)
        super().__init__({
            "issued": In(meta),
            "swap": In(1), "from_stream": In(1), "zero": In(1),
            "act": In(act_layout),
            "psum": In(acc_layout),
            "meta": Out(meta),
            "array_act": Out(act_layout), "array_act_valid": Out(1), "array_swap": Out(1),
            "array_psum": Out(acc_layout),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        act_layout = self.act.shape()
        mt_bits = len(self.issued.addr) - max(1, ceil_log2(cfg.array_block))
        # Small: on ECP5 distributed RAM, so its read is fast enough to feed
        # the array-input multiplexer (a block RAM's unregistered output is
        # not). Elsewhere the tool chooses (iCE40 has no distributed RAM).
        attrs = {"ram_style": "distributed"} if primitive_family(platform) == "ecp5" else {}
        m.submodules.act_buffer = act_buffer = Memory(
            shape=act_layout, depth=cfg.array_block, init=[], attrs=attrs)
        act_write, act_read = act_buffer.write_port(), act_buffer.read_port()

        s1_swap, s1_from_stream, s1_zero = Signal(), Signal(), Signal()
        s1_act = Signal(act_layout, reset_less=True)     # data: meta.valid says
        m.d.comb += act_read.addr.eq(self.issued.addr[mt_bits:])
        m.d.sync += [
            self.meta.eq(self.issued),
            s1_swap.eq(self.issued.valid & self.swap),
            s1_from_stream.eq(self.from_stream),
            s1_zero.eq(self.zero),
            s1_act.eq(self.act),
        ]
        # The slice is kept for the step's other output tiles one cycle after
        # its issue (their reads come at least two cycles after the step ends).
        m.d.comb += [
            act_write.en.eq(self.meta.valid & s1_from_stream),
            act_write.addr.eq(self.meta.addr[mt_bits:]),
            act_write.data.eq(s1_act),
        ]

        s2_act = Signal(act_layout, reset_less=True)
        s2_valid, s2_zero = Signal(), Signal()
        m.d.sync += [
            s2_act.eq(Mux(s1_from_stream, s1_act, act_read.data)),
            s2_zero.eq(s1_zero),
            s2_valid.eq(self.meta.valid),
        ]
        m.d.comb += [
            self.array_act.eq(s2_act),
            self.array_act_valid.eq(s2_valid),
            self.array_swap.eq(s1_swap),
            self.array_psum.eq(Mux(s2_zero, 0, self.psum)),
        ]
        return m
