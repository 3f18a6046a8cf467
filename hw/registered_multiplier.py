"""A signed multiplier with registered operands and a registered product.

``p`` is ``a * b`` of the operands captured two edges earlier: each operand
has its own register with an enable (``a_en``, ``b_en``) and the product
register has ``p_en``. This is exactly the register arrangement inside an
FPGA DSP block, so on ECP5 (see :mod:`.fpga_target`) it becomes one
``MULT18X18D`` with its A, B and output registers on, and no fabric path
touches the multiplier. Elsewhere it is the same three registers in plain
logic around a ``*``.

The registers start at zero and are cleared by the clock domain's own reset
(the DSP block's synchronous reset input), in every target; a
``ResetInserter`` around a user does not reach them, because it cannot reach
into a primitive, so the plain-logic version ignores it too.
"""

from amaranth.hdl import Const, ClockSignal, Instance, Module, ResetSignal, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .fpga_target import primitive_family

__all__ = ["RegisteredMultiplier"]

#: Operand width of the ECP5 multiplier block (signed 18 x 18).
ECP5_OPERAND_BITS = 18


class RegisteredMultiplier(wiring.Component):
    """``p = a * b`` with input and output registers (latency 2).

    Parameters
    ----------
    a_width, b_width : int
        Signed operand widths.

    Attributes
    ----------
    a, b : In(signed)
        Operands, captured when ``a_en`` / ``b_en`` is high.
    a_en, b_en, p_en : In(1)
        Register enables (all default to 1).
    p : Out(signed(a_width + b_width))
        Product of the captured operands, captured when ``p_en`` is high.
    """

    def __init__(self, a_width: int, b_width: int):
        for name, width in (("a_width", a_width), ("b_width", b_width)):
            if not isinstance(width, int) or width < 1:
                raise ValueError(f"RegisteredMultiplier {name} must be a positive integer, "
                                 f"got {width!r}")
        self.a_width, self.b_width = a_width, b_width
        super().__init__({
            "a": In(signed(a_width)), "b": In(signed(b_width)),
            "a_en": In(1, init=1), "b_en": In(1, init=1), "p_en": In(1, init=1),
            "p": Out(signed(a_width + b_width)),
        })

    def fits_dsp(self) -> bool:
        """True when one ECP5 multiplier block holds the operands."""
        return max(self.a_width, self.b_width) <= ECP5_OPERAND_BITS

    def elaborate(self, platform):
        if primitive_family(platform) == "ecp5" and self.fits_dsp():
            return self._ecp5()
        m = Module()
        a_reg = Signal(signed(self.a_width), reset_less=True)
        b_reg = Signal(signed(self.b_width), reset_less=True)
        p_reg = Signal(signed(self.a_width + self.b_width), reset_less=True)
        with m.If(ResetSignal()):
            m.d.sync += [a_reg.eq(0), b_reg.eq(0), p_reg.eq(0)]
        with m.Else():
            with m.If(self.a_en):
                m.d.sync += a_reg.eq(self.a)
            with m.If(self.b_en):
                m.d.sync += b_reg.eq(self.b)
            with m.If(self.p_en):
                m.d.sync += p_reg.eq(a_reg * b_reg)
        m.d.comb += self.p.eq(p_reg)
        return m

    def _ecp5(self):
        m = Module()
        bits = ECP5_OPERAND_BITS
        a = Signal(signed(bits))
        b = Signal(signed(bits))
        product = Signal(signed(2 * bits))
        m.d.comb += [a.eq(self.a), b.eq(self.b), self.p.eq(product)]   # sign-extended
        ports = {}
        for index in range(bits):
            ports[f"i_A{index}"] = a[index]
            ports[f"i_B{index}"] = b[index]
            ports[f"i_C{index}"] = Const(0, 1)
        for index in range(2 * bits):
            ports[f"o_P{index}"] = product[index]
        m.submodules.dsp = Instance(
            "MULT18X18D",
            # A on CE0, B on CE1, the product on CE2; one clock, the domain's
            # synchronous reset on RST0.
            p_REG_INPUTA_CLK="CLK0", p_REG_INPUTA_CE="CE0", p_REG_INPUTA_RST="RST0",
            p_REG_INPUTB_CLK="CLK0", p_REG_INPUTB_CE="CE1", p_REG_INPUTB_RST="RST0",
            p_REG_INPUTC_CLK="NONE", p_REG_PIPELINE_CLK="NONE",
            p_REG_OUTPUT_CLK="CLK0", p_REG_OUTPUT_CE="CE2", p_REG_OUTPUT_RST="RST0",
            p_CLK0_DIV="ENABLED", p_CLK1_DIV="ENABLED", p_CLK2_DIV="ENABLED",
            p_CLK3_DIV="ENABLED", p_HIGHSPEED_CLK="NONE", p_GSR="DISABLED",
            p_CAS_MATCH_REG="FALSE", p_SOURCEB_MODE="B_SHIFT", p_MULT_BYPASS="DISABLED",
            p_RESETMODE="SYNC",
            i_SIGNEDA=Const(1, 1), i_SIGNEDB=Const(1, 1),
            i_SOURCEA=Const(0, 1), i_SOURCEB=Const(0, 1),
            i_CLK0=ClockSignal(), i_CLK1=Const(0, 1), i_CLK2=Const(0, 1), i_CLK3=Const(0, 1),
            i_CE0=self.a_en, i_CE1=self.b_en, i_CE2=self.p_en, i_CE3=Const(0, 1),
            i_RST0=ResetSignal(), i_RST1=Const(0, 1), i_RST2=Const(0, 1), i_RST3=Const(0, 1),
            **ports)
        return m
