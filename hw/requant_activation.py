"""Bias, requantization and activation of accumulator streams.

For each accumulator ``acc`` of output channel ``m`` the unit computes, exactly
as the arithmetic contract (and ``convaccel.golden``) says::

    v = acc + bias[m]
    y = saturate_to_act_width((v * M0[m] + 2**(sh[m] - 1)) >> sh[m])   # sh > 0
    y = saturate_to_act_width(v * M0[m])                                # sh == 0
    out = activation(y)      # none, ReLU, or clamp to [0, clamp_high] (ReLU6)

``>>`` is an arithmetic shift, so the rounding is half towards +infinity. The
per-channel bias (signed, ``bias_width`` bits), multiplier ``M0`` (unsigned,
``mult_width`` bits) and shift ``sh`` (``shift_width`` bits) live in
parameter memories written through the ``param_*`` port.

A beat carries ``lanes`` accumulators of one *channel group*: lane ``c`` of
group ``g`` is channel ``g * lanes + c``. With ``lanes = 1`` the group is the
channel; with ``lanes = array_cols`` a beat is one result of the systolic
engine. The parameters are banked by lane (``channel mod lanes``), so every
lane reads its own in the same cycle.

Pipeline: three register stages (parameter read, bias + multiply, round /
saturate / activate), one beat per cycle. The stages advance together
whenever the output register is empty or being read, so ``i.ready`` depends
combinationally on ``o.ready`` through one AND/OR gate; there is no other
path from output to input.

Error handling: a beat whose group is beyond ``max_out_channels`` is still
passed on (so nothing is lost or reordered) with all values 0, and the sticky
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
    #: ReLU with an upper bound ``clamp_high``: ReLU6 at the output scale.
    CLAMP = 2


def channel_params_layout(config: AccelConfig) -> data.StructLayout:
    """Per-output-channel parameters (one memory row)."""
    return data.StructLayout({
        "bias": signed(config.bias_width),
        "multiplier": unsigned(config.mult_width),
        "shift": unsigned(config.shift_width),
    })


class RequantActivation(wiring.Component):
    """Stream unit: per-channel bias, requantization, saturation and activation.

    Parameters
    ----------
    config : AccelConfig
        Supplies the widths and ``max_out_channels``.
    lanes : int
        Accumulators per beat (channels of one group).

    Attributes
    ----------
    i : In(stream.Signature(...))
        Payload ``acc`` (``lanes`` x signed ``acc_width``), ``group``,
        ``last`` (passed through, e.g. end of frame).
    o : Out(stream.Signature(...))
        Payload ``value`` (``lanes`` x signed ``act_width``), ``group``, ``last``.
    activation : In(Activation)
        Applied to every beat; change it only while the unit is empty.
    clamp_high : In(unsigned(act_width - 1))
        Upper bound of ``Activation.CLAMP`` (0 .. act_max), same rule.
    param_en, param_addr, param_data : In
        Write port of the parameters of channel ``param_addr`` (``bias``,
        ``multiplier``, ``shift``). Power-up contents: bias 0, multiplier 1,
        shift 0 for every channel; ``rst`` does not clear them (RAM).
    error : Out(1)
        Sticky: a beat or a parameter write named a channel beyond the maximum.
    clear_error : In(1)
        Clears ``error``.
    """

    #: Cycles from a beat entering ``i`` to it appearing on ``o`` with no stalls.
    LATENCY = 3

    def __init__(self, config: AccelConfig, *, lanes: int = 1):
        if not isinstance(config, AccelConfig):
            raise TypeError(f"config must be an AccelConfig, got {config!r}")
        if not isinstance(lanes, int) or not 1 <= lanes <= config.max_out_channels:
            raise ValueError(f"RequantActivation lanes must be an integer in "
                             f"1..{config.max_out_channels} (max_out_channels), got {lanes!r}")
        self.config = config
        self.lanes = lanes
        #: Channel groups (rows of each parameter bank).
        self.groups = -(-config.max_out_channels // lanes)
        group = unsigned(max(1, ceil_log2(self.groups)))
        channel = unsigned(max(1, ceil_log2(config.max_out_channels)))
        in_layout = data.StructLayout({
            "acc": data.ArrayLayout(signed(config.acc_width), lanes), "group": group,
            "last": 1})
        out_layout = data.StructLayout({
            "value": data.ArrayLayout(signed(config.act_width), lanes), "group": group,
            "last": 1})
        super().__init__({
            "i": In(stream.Signature(in_layout)),
            "o": Out(stream.Signature(out_layout)),
            "activation": In(Activation),
            "clamp_high": In(unsigned(config.act_width - 1)),
            "param_en": In(1),
            "param_addr": In(channel),
            "param_data": In(channel_params_layout(config)),
            "error": Out(1),
            "clear_error": In(1),
        })

    @staticmethod
    def _beyond(value, count):
        """``value >= count``, or constant 0 when every encodable value is valid."""
        if count >= 1 << len(value):
            return Const(0, 1)
        return value >= count

    def elaborate(self, platform):
        m = Module()
        cfg, lanes = self.config, self.lanes
        params = channel_params_layout(cfg)

        advance = Signal()
        m.d.comb += [
            advance.eq(~self.o.valid | self.o.ready),
            self.i.ready.eq(advance),
        ]

        # Parameter writes go to bank (channel mod lanes), row (channel // lanes).
        write_ok = ~self._beyond(self.param_addr, cfg.max_out_channels)
        bank_of_write = self.param_addr % lanes if lanes > 1 else Const(0, 1)
        row_of_write = self.param_addr // lanes if lanes > 1 else self.param_addr
        reads = []
        for lane in range(lanes):
            rows = len(range(lane, cfg.max_out_channels, lanes))
            memory = Memory(shape=params, depth=rows,
                            init=[params.const({"bias": 0, "multiplier": 1, "shift": 0})] * rows)
            m.submodules[f"params{lane}"] = memory
            write, read = memory.write_port(), memory.read_port()
            m.d.comb += [
                write.en.eq(self.param_en & write_ok & (bank_of_write == lane)),
                write.addr.eq(row_of_write),
                write.data.eq(self.param_data),
                read.en.eq(advance),
                read.addr.eq(self.i.payload.group),
            ]
            reads.append(read)

        # Stage 1: capture the beat while the memories read its parameters.
        s1_valid = Signal()
        s1 = Signal.like(self.i.payload)
        s1_bad = Signal()
        with m.If(advance):
            m.d.sync += [
                s1_valid.eq(self.i.valid),
                s1.eq(self.i.payload),
                s1_bad.eq(self._beyond(self.i.payload.group, self.groups)),
            ]

        # Stage 2: exact (acc + bias) x unsigned multiplier.
        s2_valid = Signal()
        s2_group = Signal.like(s1.group)
        s2_last = Signal()
        product_shape = signed(cfg.acc_width + 1 + cfg.mult_width + 1)
        s2_product = [Signal(product_shape, name=f"s2_product{lane}") for lane in range(lanes)]
        s2_shift = [Signal(unsigned(cfg.shift_width), name=f"s2_shift{lane}")
                    for lane in range(lanes)]
        with m.If(advance):
            m.d.sync += [s2_valid.eq(s1_valid), s2_group.eq(s1.group), s2_last.eq(s1.last)]
            for lane in range(lanes):
                biased = s1.acc[lane] + reads[lane].data.bias
                # Lanes of the last group past max_out_channels have no
                # parameters (their bank is one row shorter): they give 0.
                missing = s1_bad
                if lane >= cfg.max_out_channels - (self.groups - 1) * lanes:
                    missing = missing | (s1.group == self.groups - 1)
                m.d.sync += [
                    s2_product[lane].eq(Mux(missing, 0, biased * reads[lane].data.multiplier)),
                    s2_shift[lane].eq(reads[lane].data.shift),
                ]

        # Stage 3: round half up, arithmetic shift, saturate, activate.
        with m.If(advance):
            m.d.sync += [
                self.o.valid.eq(s2_valid),
                self.o.payload.group.eq(s2_group),
                self.o.payload.last.eq(s2_last),
            ]
            for lane in range(lanes):
                m.d.sync += self.o.payload.value[lane].eq(
                    self._round_saturate_activate(m, s2_product[lane], s2_shift[lane], lane))

        # Sticky error flag; clear_error wins only when nothing new is wrong.
        bad_beat = self.i.valid & self.i.ready & self._beyond(self.i.payload.group, self.groups)
        bad_write = self.param_en & ~write_ok
        with m.If(bad_beat | bad_write):
            m.d.sync += self.error.eq(1)
        with m.Elif(self.clear_error):
            m.d.sync += self.error.eq(0)
        return m

    def _round_saturate_activate(self, m, product, shift, lane):
        cfg = self.config
        # (1 << sh) >> 1 is 2**(sh-1) for sh > 0 and 0 for sh == 0.
        round_term = (Const(1, 1) << shift) >> 1
        rounded = Signal(signed(len(product) + 1), name=f"rounded{lane}")
        shifted = Signal(signed(len(product) + 1), name=f"shifted{lane}")
        m.d.comb += [rounded.eq(product + round_term), shifted.eq(rounded >> shift)]
        if cfg.max_shift > len(product):
            # For sh > len(product), |product| < 2**(sh-1), so the exact result
            # (product + 2**(sh-1)) >> sh is 0; the rounding term itself
            # would not fit the adder above.
            with m.If(shift > len(product)):
                m.d.comb += shifted.eq(0)
        saturated = Mux(shifted > cfg.act_max, cfg.act_max,
                        Mux(shifted < cfg.act_min, cfg.act_min, shifted))
        # ReLU and CLAMP both cut below 0 (the value 3 is never written).
        low = (self.activation != Activation.NONE) & (saturated < 0)
        high = (self.activation == Activation.CLAMP) & (saturated > self.clamp_high)
        return Mux(low, 0, Mux(high, self.clamp_high, saturated))
