"""Bias, requantization and activation of accumulator streams.

For each accumulator ``acc`` of output channel ``m`` the unit computes, exactly
as the arithmetic contract (docs/arithmetic.md, "Requantization" and
"Activation"; ``convaccel.golden``) says, with the layer's output zero point
``zo``::

    v = acc + bias[m]
    y = saturate_to_act_width(((v * M0[m] + 2**(sh[m] - 1)) >> sh[m]) + zo)   # sh > 0
    y = saturate_to_act_width(v * M0[m] + zo)                                 # sh == 0
    out = y                              # none
    out = max(y, zo)                     # ReLU
    out = min(max(y, zo), clamp_high)    # clamp (ReLU6); clamp_high includes zo

``>>`` is an arithmetic shift, so the rounding is half towards +infinity. The
per-channel bias (signed, ``bias_width`` bits), multiplier ``M0`` (unsigned,
``mult_width`` bits) and shift ``sh`` (``shift_width`` bits) live in
parameter memories written through the ``param_*`` port.

A beat carries ``lanes`` accumulators of one *channel group*: lane ``c`` of
group ``g`` is channel ``g * lanes + c``. With ``lanes = 1`` the group is the
channel; with ``lanes = array_cols`` a beat is one result of the systolic
engine. The parameters are banked by lane (``channel mod lanes``), so every
lane reads its own in the same cycle.

Pipeline (:data:`RequantActivation.LATENCY` cycles, one beat per cycle, never
stalled): parameter read; bias add; the multiply as partial products of
17-bit slices of ``v`` (one :class:`~.registered_multiplier.RegisteredMultiplier`
each: a DSP block with its operand and product registers on); their
sum; the rounding add; the saturation test and the shift, in two stages
(ORs of 8-bit chunks and a shift by whole bytes, then the rest); the
zero-point add; saturation and activation. The first saturation, to ``act_width + 1``
bits, needs no full-width shifter: the shifted value leaves that range
exactly when ``v * M0 + 2**(sh-1)`` reaches ``+-2**(sh + act_width)``, a
masked test of the bits at and above that position, and only the
``act_width + 1`` result bits are shifted out. Adding ``zo`` to that value
and saturating to ``act_width`` bits gives the same ``y`` as saturating the
exact sum (a value beyond the wider range stays beyond the narrower one
after any ``act_width``-bit ``zo``). The activation's comparisons are made
on the value before ``zo`` is added (``y < zo`` is its sign, ``y >
clamp_high`` a comparison with ``clamp_high - zo``, kept in a register), in
the same stage as the add, so the last stage only selects.

Flow control: the pipeline runs freely into an output FIFO; ``i.ready`` is a
registered credit count (free FIFO places not claimed by beats in flight),
so there is no combinational path from ``o.ready`` to ``i.ready``.

Error handling: a beat whose group is beyond ``max_out_channels`` is still
passed on (so nothing is lost or reordered) with all values 0, and the sticky
``error`` output is set; so is a parameter write to such a channel, which is
ignored. ``clear_error`` clears the flag. Lanes of the last group beyond
``max_out_channels`` give 0 too, whatever the zero point.
"""

from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .config import AccelConfig, checked_config
from .stage_payloads import lane_beat_layout, sum_beat_layout
from .registered_multiplier import RegisteredMultiplier

__all__ = ["Activation", "RequantActivation", "channel_params_layout"]

#: Bits of ``v`` per partial product: a 17-bit unsigned slice times an
#: unsigned multiplier of up to 17 bits fits one signed 18x18 DSP block.
SLICE_BITS = 17
#: Bits per OR of the saturation tests' first stage (two LUT levels with the mask).
OR_CHUNK = 8


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
    i : In(stream.Signature(sum_beat_layout(config, lanes)))
        Payload ``psum`` (``lanes`` x signed ``acc_width``), ``group`` (the
        channel group), ``last`` (passed through, e.g. end of frame).
    o : Out(stream.Signature(lane_beat_layout(config, lanes)))
        Payload ``data`` (``lanes`` x signed ``act_width``) and ``last``.
    activation : In(Activation)
        Applied to every beat; change it only while the unit is empty.
    clamp_high : In(signed(act_width))
        Upper bound of ``Activation.CLAMP`` (zero point included), same rule.
    zero_point : In(signed(act_width))
        Output zero point ``zo``, same rule (0: the symmetric case).
    param_en, param_addr, param_data : In
        Write port of the parameters of channel ``param_addr`` (``bias``,
        ``multiplier``, ``shift``). Power-up contents: bias 0, multiplier 1,
        shift 0 for every channel; ``rst`` does not clear them (RAM).
    error : Out(1)
        Sticky: a beat or a parameter write named a channel beyond the maximum.
    clear_error : In(1)
        Clears ``error``.
    """

    #: Register stages from the accepted beat to the output FIFO's input.
    STAGES = 9
    #: Cycles from a beat accepted on ``i`` to it being valid on ``o`` with no stalls.
    LATENCY = STAGES + 2

    def __init__(self, config: AccelConfig, *, lanes: int = 1):
        checked_config(config)
        if not isinstance(lanes, int) or not 1 <= lanes <= config.max_out_channels:
            raise ValueError(f"RequantActivation lanes must be an integer in "
                             f"1..{config.max_out_channels} (max_out_channels), got {lanes!r}")
        self.config = config
        self.lanes = lanes
        #: Channel groups (rows of each parameter bank).
        self.groups = -(-config.max_out_channels // lanes)
        #: Output FIFO places: a beat per pipeline stage plus slack, so a
        #: ready output never throttles the input.
        self.fifo_depth = self.LATENCY + 2
        channel = unsigned(max(1, ceil_log2(config.max_out_channels)))
        super().__init__({
            "i": In(stream.Signature(sum_beat_layout(config, lanes))),
            "o": Out(stream.Signature(lane_beat_layout(config, lanes))),
            "activation": In(Activation),
            "clamp_high": In(signed(config.act_width)),
            "zero_point": In(signed(config.act_width)),
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
        out_layout = self.o.payload.shape()
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=out_layout.size,
                                                    depth=self.fifo_depth)
        # Credits: FIFO places not yet claimed by an accepted beat. i.ready
        # is a register of its own (worked out from the next count), so the
        # stage in front sees a flip-flop, not a compare.
        credits = Signal(range(self.fifo_depth + 1), init=self.fifo_depth)
        credits_next = Signal.like(credits)
        has_credit = Signal(init=1)
        taken = self.i.valid & self.i.ready
        popped = self.o.valid & self.o.ready
        m.d.comb += credits_next.eq(credits - taken + popped)
        m.d.sync += [credits.eq(credits_next), has_credit.eq(credits_next != 0)]
        m.d.comb += [
            self.i.ready.eq(has_credit),
            self.o.valid.eq(fifo.r_rdy),
            self.o.payload.eq(fifo.r_data),
            fifo.r_en.eq(self.o.ready),
        ]

        reads = self._parameter_memories(m)
        # Beat bookkeeping (valid, last) travels beside the lanes; the group
        # is needed only in the first stage (lanes without parameters).
        tag = data.StructLayout({"valid": 1, "last": 1})
        tags = [Signal(tag, name=f"tag{stage}") for stage in range(self.STAGES)]
        group = Signal.like(self.i.payload.group)
        m.d.sync += [tags[0].valid.eq(taken), tags[0].last.eq(self.i.payload.last),
                     group.eq(self.i.payload.group)]
        for earlier, later in zip(tags, tags[1:]):
            m.d.sync += later.eq(earlier)

        # Derived from the static inputs for the activation's comparisons
        # (a beat reaches them STAGES - 1 cycles after it is taken).
        limits = self._limits(m)

        acc = Signal.like(self.i.payload.psum, reset_less=True)
        bad_group = Signal(reset_less=True)
        m.d.sync += [acc.eq(self.i.payload.psum),
                     bad_group.eq(self._beyond(self.i.payload.group, self.groups))]
        result = Signal(out_layout)
        for lane in range(lanes):
            # Lanes of the last group past max_out_channels have no
            # parameters (their bank is one row shorter): they give 0.
            missing = bad_group
            if lane >= cfg.max_out_channels - (self.groups - 1) * lanes:
                missing = missing | (group == self.groups - 1)
            m.d.comb += result.data[lane].eq(
                self._lane(m, lane, acc[lane], reads[lane].data, missing, limits))
        last_tag = tags[-1]
        m.d.comb += [
            result.last.eq(last_tag.last),
            fifo.w_en.eq(last_tag.valid), fifo.w_data.eq(result),
        ]

        # Sticky error flag; clear_error wins only when nothing new is wrong.
        write_ok = ~self._beyond(self.param_addr, cfg.max_out_channels)
        bad_beat = taken & self._beyond(self.i.payload.group, self.groups)
        with m.If(bad_beat | (self.param_en & ~write_ok)):
            m.d.sync += self.error.eq(1)
        with m.Elif(self.clear_error):
            m.d.sync += self.error.eq(0)
        return m

    def _parameter_memories(self, m):
        """One bank per lane, written at ``channel mod lanes``, read at the beat's group."""
        cfg, lanes = self.config, self.lanes
        params = channel_params_layout(cfg)
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
                read.addr.eq(self.i.payload.group),
            ]
            reads.append(read)
        return reads

    def _limits(self, m):
        """Registers worked out from the static ``clamp_high`` and ``zero_point``.

        For a saturated ``w`` (``+-2**act_width``) the clamp test and the sum
        with ``zo`` are known ahead, so stage 8 only selects them.
        """
        aw = self.config.act_width
        w_max, w_min = (1 << aw) - 1, -(1 << aw)
        limits = SimpleNamespace(
            high_over_zo=Signal(signed(aw + 2)),     # clamp_high - zo
            zo_over_high=Signal(),                   # zo > clamp_high: clamp gives clamp_high
            max_above=Signal(), min_above=Signal(),  # w_max / w_min > clamp_high - zo
            max_plus_zo=Signal(signed(aw + 2)), min_plus_zo=Signal(signed(aw + 2)))
        high_over_zo = self.clamp_high - self.zero_point
        m.d.sync += [limits.high_over_zo.eq(high_over_zo),
                     limits.zo_over_high.eq(self.zero_point > self.clamp_high),
                     limits.max_above.eq(w_max > high_over_zo),
                     limits.min_above.eq(w_min > high_over_zo),
                     limits.max_plus_zo.eq(w_max + self.zero_point),
                     limits.min_plus_zo.eq(w_min + self.zero_point)]
        return limits

    def _lane(self, m, lane, acc, params, missing, limits):
        """The lane's pipeline from the parameter read on; returns its final register."""
        cfg = self.config
        aw = cfg.act_width

        def stage(value, name, shape=None):
            # Data only: whether a stage holds a beat is its tag, so no flush
            # or reset needs to reach these (it would fan out to every bit).
            register = Signal(shape if shape is not None else value.shape(),
                              name=f"{name}{lane}", reset_less=True)
            m.d.sync += register.eq(value)
            return register

        # Stage 2: v = acc + bias (0 for a missing lane) and M0, captured by
        # the multipliers' own operand registers (in the DSP blocks on ECP5).
        v_width = max(cfg.acc_width, cfg.bias_width) + 1
        v = Signal(signed(v_width), name=f"biased{lane}")
        m.d.comb += v.eq(Mux(missing, 0, acc + params.bias))
        shift = stage(params.shift, "shift")
        # A missing lane gives 0: v = 0 here, no zero point nor clamp later.
        gone = stage(missing, "missing")

        # Stage 3: partial products of 17-bit slices of v (the top one
        # signed), each in the product register of its multiplier.
        slices = -(-v_width // SLICE_BITS)
        partials = []
        for index in range(slices):
            low = index * SLICE_BITS
            part = v[low:low + SLICE_BITS]
            top = index == slices - 1
            multiply = RegisteredMultiplier(len(part) + (0 if top else 1), cfg.mult_width + 1)
            m.submodules[f"multiply{lane}_{index}"] = multiply
            m.d.comb += [multiply.a.eq(part.as_signed() if top else part),
                         multiply.b.eq(params.multiplier)]
            partials.append(multiply.p)
        shift3 = stage(shift, "shift3_")
        gone = stage(gone, "missing3_")

        # Stage 4: the exact product; the rounding term 2**(sh-1) (0 for sh = 0).
        product_width = v_width + cfg.mult_width + 1
        total = 0
        for index, part in enumerate(partials):
            total = total + (part << (index * SLICE_BITS))
        product = stage(total, "product", signed(product_width))
        round_term = stage((Const(1, 1) << shift3) >> 1, "round_term",
                           unsigned(min(cfg.max_shift, product_width)))
        shift4 = stage(shift3, "shift4_")
        gone = stage(gone, "missing4_")

        # Stage 5: rounded = product + 2**(sh-1). For sh > product_width the
        # exact result is 0 (|product| < 2**(sh-1)); the term would not fit.
        rounded = stage(product + round_term, "rounded", signed(product_width + 1))
        zero = stage(shift4 > product_width if cfg.max_shift > product_width else Const(0, 1),
                     "zero")
        # Bits at and above sh + act_width decide the saturation to act_width + 1 bits.
        # (Written as sh + act_width - 1 < bit: yosys maps this signed form to carry
        # chains, the equal sh + act_width <= bit to 57 % more LUTs on ECP5.)
        high_mask = stage(Cat(*(shift4 + aw - 1 < bit for bit in range(product_width + 1))),
                          "high_mask")
        shift5 = stage(shift4, "shift5_")
        gone = stage(gone, "missing5_")

        # Stage 6: the saturation tests as one OR per chunk of the masked
        # bits, and the shift by whole bytes (a wide OR or a 6-level shifter
        # in one cycle was the unit's critical path).
        negative = rounded[-1]
        chunks = range(0, len(rounded), OR_CHUNK)
        ones = stage(Cat(*((rounded & high_mask)[k:k + OR_CHUNK].any() for k in chunks)),
                     "ones_in_chunk")
        zeros = stage(Cat(*((~rounded & high_mask)[k:k + OR_CHUNK].any() for k in chunks)),
                      "zeros_in_chunk")
        byte_shifted = stage((rounded >> Cat(Const(0, 3), shift5[3:]))[:aw + 8],
                             "byte_shifted", signed(aw + 8))
        shift6 = stage(shift5[:3], "shift6_")
        zero = stage(zero, "zero6_")
        negative = stage(negative, "negative6_")
        gone = stage(gone, "missing6_")

        # Stage 7: beyond the act_width + 1-bit range above / below, and the
        # in-range result bits.
        over = stage(~zero & ~negative & ones.any(), "over")
        under = stage(~zero & negative & zeros.any(), "under")
        low_bits = stage(Mux(zero, 0, (byte_shifted >> shift6)[:aw + 1]), "low_bits",
                         signed(aw + 1))
        gone = stage(gone, "missing7_")

        # Stage 8: w = the shifted value saturated to act_width + 1 bits;
        # w + zo, and the activation's tests on w: y < zo is w < 0, y >
        # clamp_high is w > clamp_high - zo (saturation keeps both). For a
        # saturated w both are registers already, so the adder and the
        # compare start from low_bits and the saturation only selects.
        activation = self.activation
        in_range_sum = low_bits + Mux(gone, 0, self.zero_point)
        shifted = stage(Mux(over, limits.max_plus_zo, Mux(under, limits.min_plus_zo, in_range_sum)),
                        "shifted", signed(aw + 2))
        w_negative = Mux(over, 0, Mux(under, 1, low_bits[-1]))
        w_above = Mux(over, limits.max_above,
                      Mux(under, limits.min_above, low_bits > limits.high_over_zo))
        below = stage((activation != Activation.NONE) & w_negative, "below")
        above = stage((activation == Activation.CLAMP) & ~gone
                      & (w_above | limits.zo_over_high), "above")

        # Stage 9: y = shifted saturated to act_width bits (in range when its
        # top three bits agree), then min(max(y, zo), clamp_high).
        sign, top = shifted[-1], shifted[aw - 1:aw + 1]
        y = Mux(~sign & (top != 0), cfg.act_max,
                Mux(sign & (top != 0b11), cfg.act_min, shifted[:aw]))
        return stage(Mux(above, self.clamp_high, Mux(below, self.zero_point, y)), "value",
                     signed(aw))
