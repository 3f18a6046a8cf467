"""Bias-free requantization and activation of accumulator streams.

For each accumulator ``acc`` of output channel ``m`` the unit computes, exactly
as the arithmetic contract (and ``convaccel.golden.requantize``) says::

    y = saturate_to_act_width((acc * M0[m] + 2**(sh[m] - 1)) >> sh[m])   # sh > 0
    y = saturate_to_act_width(acc * M0[m])                                # sh == 0
    out = activation(y)

``>>`` is an arithmetic shift, so the rounding is half towards +infinity. The
per-channel multiplier ``M0`` (unsigned, ``mult_width`` bits) and shift ``sh``
(``shift_width`` bits) live in a small memory of ``max_out_channels`` rows,
written through the ``param_*`` port; each input beat names its channel.

Pipeline: three register stages (parameter read, multiply, round/saturate/
activate), one beat per cycle. The stages advance together whenever the
output register is empty or being read, so ``i.ready`` depends combinationally
on ``o.ready`` through one AND/OR gate; there is no other path from output to
input.

Error handling: a beat whose channel is ``>= max_out_channels`` is still
passed on (so nothing is lost or reordered) with value 0, and the sticky
``error`` output is set; so is a parameter write to such a channel, which is
ignored. ``clear_error`` clears the flag.
"""

from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .config import AccelConfig

__all__ = ["Activation", "RequantActivation", "channel_params_layout"]


class Activation(enum.Enum, shape=2):
    """Activation applied after requantization (run-time selectable)."""

    NONE = 0
    RELU = 1


def _channel_shape(config: AccelConfig):
    return unsigned(max(1, ceil_log2(config.max_out_channels)))


def channel_params_layout(config: AccelConfig) -> data.StructLayout:
    """Per-output-channel requantization parameters (one memory row)."""
    return data.StructLayout({
        "multiplier": unsigned(config.mult_width),
        "shift": unsigned(config.shift_width),
    })


class RequantActivation(wiring.Component):
    """Stream unit: per-channel requantization, saturation and activation.

    Parameters
    ----------
    config : AccelConfig
        Supplies ``acc_width``, ``act_width``, ``mult_width``, ``shift_width``
        and ``max_out_channels``.

    Attributes
    ----------
    i : In(stream.Signature(...))
        Accumulators: payload ``acc`` (signed ``acc_width``), ``channel``,
        ``last`` (passed through, e.g. end of frame).
    o : Out(stream.Signature(...))
        Results: payload ``value`` (signed ``act_width``), ``channel``, ``last``.
    activation : In(Activation)
        Applied to every beat; change it only while the unit is empty.
    param_en, param_addr, param_data : In
        Write port of the per-channel parameter memory (``multiplier``,
        ``shift``). Power-up contents: multiplier 1, shift 0 for every
        channel; ``rst`` does not clear this memory (it is RAM).
    error : Out(1)
        Sticky: a beat or a parameter write named a channel ``>= max_out_channels``.
    clear_error : In(1)
        Clears ``error``.
    """

    #: Cycles from a beat entering ``i`` to it appearing on ``o`` with no stalls.
    LATENCY = 3

    def __init__(self, config: AccelConfig):
        if not isinstance(config, AccelConfig):
            raise TypeError(f"config must be an AccelConfig, got {config!r}")
        self.config = config
        channel = _channel_shape(config)
        in_layout = data.StructLayout({
            "acc": signed(config.acc_width), "channel": channel, "last": 1})
        out_layout = data.StructLayout({
            "value": signed(config.act_width), "channel": channel, "last": 1})
        super().__init__({
            "i": In(stream.Signature(in_layout)),
            "o": Out(stream.Signature(out_layout)),
            "activation": In(Activation),
            "param_en": In(1),
            "param_addr": In(channel),
            "param_data": In(channel_params_layout(config)),
            "error": Out(1),
            "clear_error": In(1),
        })

    def _out_of_range(self, channel):
        # With a power-of-two channel count every encodable index is valid;
        # emitting the always-false compare would only trip lint.
        if self.config.max_out_channels == 1 << len(channel):
            return Const(0, 1)
        return channel >= self.config.max_out_channels

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        params = channel_params_layout(cfg)
        m.submodules.params = memory = Memory(
            shape=params, depth=cfg.max_out_channels,
            init=[params.const({"multiplier": 1, "shift": 0})] * cfg.max_out_channels)
        write = memory.write_port()
        read = memory.read_port()

        advance = Signal()
        m.d.comb += [
            advance.eq(~self.o.valid | self.o.ready),
            self.i.ready.eq(advance),
        ]

        # Parameter writes.
        write_in_range = ~self._out_of_range(self.param_addr)
        m.d.comb += [
            write.en.eq(self.param_en & write_in_range),
            write.addr.eq(self.param_addr),
            write.data.eq(self.param_data),
        ]

        # Stage 1: capture the beat while the memory reads its parameters.
        s1_valid = Signal()
        s1_acc = Signal(signed(cfg.acc_width))
        s1_channel = Signal.like(self.i.payload.channel)
        s1_last = Signal()
        s1_bad = Signal()
        m.d.comb += [read.en.eq(advance), read.addr.eq(self.i.payload.channel)]
        with m.If(advance):
            m.d.sync += [
                s1_valid.eq(self.i.valid),
                s1_acc.eq(self.i.payload.acc),
                s1_channel.eq(self.i.payload.channel),
                s1_last.eq(self.i.payload.last),
                s1_bad.eq(self._out_of_range(self.i.payload.channel)),
            ]

        # Stage 2: exact product (signed acc x unsigned multiplier).
        s2_valid = Signal()
        s2_product = Signal(signed(cfg.acc_width + cfg.mult_width + 1))
        s2_shift = Signal(unsigned(cfg.shift_width))
        s2_channel = Signal.like(s1_channel)
        s2_last = Signal()
        with m.If(advance):
            m.d.sync += [
                s2_valid.eq(s1_valid),
                s2_product.eq(Mux(s1_bad, 0, s1_acc * read.data.multiplier)),
                s2_shift.eq(read.data.shift),
                s2_channel.eq(s1_channel),
                s2_last.eq(s1_last),
            ]

        # Stage 3: round half up, arithmetic shift, saturate, activate.
        # (1 << sh) >> 1 is 2**(sh-1) for sh > 0 and 0 for sh == 0.
        round_term = (Const(1, 1) << s2_shift) >> 1
        rounded = Signal(signed(len(s2_product) + 1))
        shifted = Signal(signed(len(s2_product) + 1))
        m.d.comb += [
            rounded.eq(s2_product + round_term),
            shifted.eq(rounded >> s2_shift),
        ]
        if cfg.max_shift > len(s2_product):
            # For sh > len(product), |product| < 2**(sh-1), so the exact result
            # (product + 2**(sh-1)) >> sh is 0; the rounding term itself
            # would not fit the adder above.
            with m.If(s2_shift > len(s2_product)):
                m.d.comb += shifted.eq(0)
        saturated = Signal(signed(cfg.act_width))
        with m.If(shifted > cfg.act_max):
            m.d.comb += saturated.eq(cfg.act_max)
        with m.Elif(shifted < cfg.act_min):
            m.d.comb += saturated.eq(cfg.act_min)
        with m.Else():
            m.d.comb += saturated.eq(shifted)
        activated = Signal(signed(cfg.act_width))
        with m.If((self.activation == Activation.RELU) & (saturated < 0)):
            m.d.comb += activated.eq(0)
        with m.Else():
            m.d.comb += activated.eq(saturated)

        with m.If(advance):
            m.d.sync += [
                self.o.valid.eq(s2_valid),
                self.o.payload.value.eq(activated),
                self.o.payload.channel.eq(s2_channel),
                self.o.payload.last.eq(s2_last),
            ]

        # Sticky error flag; clear_error wins only when nothing new is wrong.
        bad_beat = self.i.valid & self.i.ready & self._out_of_range(self.i.payload.channel)
        bad_write = self.param_en & ~write_in_range
        with m.If(bad_beat | bad_write):
            m.d.sync += self.error.eq(1)
        with m.Elif(self.clear_error):
            m.d.sync += self.error.eq(0)
        return m
