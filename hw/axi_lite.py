"""AXI4-Lite register file generated from a :class:`~convaccel.hw.register_map.RegisterMap`.

Ports
-----
The AXI4-Lite slave port is a set of flat members whose names are the
Verilog port names: ``s_axil_awaddr``, ``s_axil_awprot``, ``s_axil_awvalid``,
``s_axil_awready``, ``s_axil_wdata``, ``s_axil_wstrb``, ``s_axil_wvalid``,
``s_axil_wready``, ``s_axil_bresp``, ``s_axil_bvalid``, ``s_axil_bready``,
``s_axil_araddr``, ``s_axil_arprot``, ``s_axil_arvalid``, ``s_axil_arready``,
``s_axil_rdata``, ``s_axil_rresp``, ``s_axil_rvalid``, ``s_axil_rready``
(``*prot`` are accepted and ignored). Clock and reset are the ``sync``
domain's ``clk`` and ``rst`` (synchronous, active high: tie it to the
inverse of ``ARESETn``).

Each field gets hardware ports named ``<register>_<field>`` in lower case
(:func:`field_port_name`):

* ``rw``: ``Out(width)`` with ``init`` = the field's reset: the stored value.
* ``ro``: ``In(width)``, sampled when a read is accepted.
* ``pulse``: ``Out(1)``, high for exactly one cycle after each write that
  sets the bit.
* ``w1c``: ``In(1)`` named ``<register>_<field>_set`` (:func:`set_port_name`)
  sets the sticky bit; ``In(1)`` named ``<register>_<field>_clear``
  (:func:`clear_port_name`) clears it like a software write of 1 (tie it
  to 0 when unused); ``Out(1)`` named ``<register>_<field>`` shows it.

A ``w1c`` bit that is set by hardware in the same cycle as it is cleared (by
software or by the clear input) stays set: **set wins**, so no event is lost.

Bus behaviour
-------------
* AW and W are independent: either may come first, or both in the same
  cycle. Each is accepted once (its ready drops after the handshake) and
  the write takes effect when both have arrived. One write and one read are
  outstanding at a time; the two directions run concurrently.
* ``WSTRB`` byte enables apply to every writable field (``rw``, ``pulse``,
  ``w1c``): bits in disabled bytes are left alone.
* Addresses are byte addresses; the low ``log2(data_width / 8)`` bits are
  ignored (an access names the whole bus word that holds the byte).
  A bus word with no register in it is **unmapped**: writes are dropped,
  reads return 0, and the response is ``SLVERR`` (0b10). Mapped words
  answer ``OKAY`` (0b00). Register bits outside every field read 0 and
  ignore writes. Reads have no side effects.
* With ``data_width=64`` a bus word holds the registers at ``8k`` (bits
  31..0) and ``8k + 4`` (bits 63..32); it is mapped if either is.

Latency and throughput
----------------------
Every AXI output (the three readies, ``bvalid``/``bresp``,
``rvalid``/``rdata``/``rresp``) and every ``rw``/``pulse``/``w1c`` output is
a register: there is no combinational path from any input to any output,
in particular from ``bready``/``rready`` to a ready.

Every bus input first lands in a register (address, data, strobes), and
the decode works on those registers, so no wide logic hangs off an input.

* Write: the edge after the later of the AW and W handshakes updates the
  fields; from the next cycle ``bvalid`` is high, ``rw`` outputs show the
  new value and ``pulse`` outputs are high (for that one cycle). Latency:
  2 cycles from the last of address/data to BVALID.
* Read: the edge after the AR handshake decodes the address into one
  bit per word, the next one samples the register values (``ro`` inputs
  included) through an AND-OR of those bits; ``rvalid`` is high from the
  cycle after. Latency: 3 cycles from address to RVALID. A write accepted
  on the same edge as the read is visible to it; one taking effect on the
  sampling edge is not.
* Readies are high while idle and fall after their handshake until the
  response has been taken, so with ``bready``/``rready`` held high writes
  complete one transfer every 3 cycles and reads one every 4.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .register_map import REGISTER_WIDTH, RegisterMap

__all__ = ["RESP_OKAY", "RESP_SLVERR", "AXIL_PORTS", "AxiLiteRegisterFile",
           "clear_port_name", "field_port_name", "set_port_name"]

#: AXI response codes used by the register file.
RESP_OKAY = 0b00
RESP_SLVERR = 0b10

#: Names of the AXI4-Lite slave ports, in channel order.
AXIL_PORTS = tuple(f"s_axil_{name}" for name in (
    "awaddr", "awprot", "awvalid", "awready", "wdata", "wstrb", "wvalid", "wready",
    "bresp", "bvalid", "bready", "araddr", "arprot", "arvalid", "arready",
    "rdata", "rresp", "rvalid", "rready"))


def field_port_name(register: str, field: str) -> str:
    """Name of the hardware port of a field: ``<register>_<field>`` in lower case."""
    return f"{register}_{field}".lower()


def set_port_name(register: str, field: str) -> str:
    """Name of the set input of a ``w1c`` field: ``<register>_<field>_set``."""
    return f"{field_port_name(register, field)}_set"


def clear_port_name(register: str, field: str) -> str:
    """Name of the hardware clear input of a ``w1c`` field: ``<register>_<field>_clear``."""
    return f"{field_port_name(register, field)}_clear"


def _or_all(values):
    """The OR of ``values``, as a balanced tree."""
    while len(values) > 1:
        values = [values[k] | values[k + 1] if k + 1 < len(values) else values[k]
                  for k in range(0, len(values), 2)]
    return values[0]


class AxiLiteRegisterFile(wiring.Component):
    """AXI4-Lite slave holding the registers of a :class:`RegisterMap`.

    See the module documentation for the ports, the bus behaviour (response
    codes, byte strobes, unmapped addresses, ``w1c`` set-wins) and the
    2-cycle latency (the request is registered before it is decoded).

    Parameters
    ----------
    regmap : RegisterMap
        The registers and fields to implement.
    data_width : int
        AXI data width, 32 or 64 (``wstrb`` has ``data_width // 8`` bits).
    interrupt : (str, str), optional
        ``("register.flag", "register.enable")``: add an ``irq`` output for
        a 1-bit ``w1c`` field (the flag) and a 1-bit ``rw`` field (its
        enable).
    addr_width : int, optional
        Width of ``awaddr``/``araddr``; defaults to the map's
        :attr:`~RegisterMap.address_width` (at least enough to address one
        bus word). Wider addresses are decoded in full: anything beyond the
        map is unmapped.

    Attributes
    ----------
    regmap : RegisterMap
    data_width, addr_width : int
    s_axil_* : AXI4-Lite slave port (see :data:`AXIL_PORTS`).
    <register>_<field> : one port per field (and ``<register>_<field>_set``
        for ``w1c`` fields), see the module documentation.
    irq : Out(1)
        Only with ``interrupt``: a register that is high while the ``w1c``
        flag and its ``rw`` enable both are (it changes in the same cycle
        as they do: it is computed from their next values).

    Raises
    ------
    TypeError
        If ``regmap`` is not a :class:`RegisterMap`.
    ValueError
        For an unsupported ``data_width``, an ``addr_width`` too narrow for
        the map, a field port name that clashes with an AXI port, or an
        ``interrupt`` that does not name a ``w1c`` and an ``rw`` bit.
    """

    #: Cycles from the last of AW/W to BVALID, and from AR to RVALID.
    WRITE_LATENCY = 2
    READ_LATENCY = 3

    def __init__(self, regmap: RegisterMap, *, data_width: int = 32,
                 addr_width: int | None = None,
                 interrupt: tuple[str, str] | None = None):
        if not isinstance(regmap, RegisterMap):
            raise TypeError(f"regmap must be a RegisterMap, got {regmap!r}")
        if data_width not in (32, 64):
            raise ValueError(f"data_width must be 32 or 64, got {data_width!r}")
        self.regmap = regmap
        self.data_width = data_width
        self._word_bits = (data_width // 8 - 1).bit_length()  # 2 or 3 byte-address bits
        needed = max(regmap.address_width, self._word_bits)
        if addr_width is None:
            addr_width = needed
        elif isinstance(addr_width, bool) or not isinstance(addr_width, int) or \
                addr_width < needed:
            raise ValueError(f"addr_width must be an integer >= {needed} to reach every register "
                             f"of {regmap.name!r}, got {addr_width!r}")
        self.addr_width = addr_width
        members = {
            "s_axil_awaddr": In(addr_width), "s_axil_awprot": In(3),
            "s_axil_awvalid": In(1), "s_axil_awready": Out(1, init=1),
            "s_axil_wdata": In(data_width), "s_axil_wstrb": In(data_width // 8),
            "s_axil_wvalid": In(1), "s_axil_wready": Out(1, init=1),
            "s_axil_bresp": Out(2), "s_axil_bvalid": Out(1), "s_axil_bready": In(1),
            "s_axil_araddr": In(addr_width), "s_axil_arprot": In(3),
            "s_axil_arvalid": In(1), "s_axil_arready": Out(1, init=1),
            "s_axil_rdata": Out(data_width), "s_axil_rresp": Out(2),
            "s_axil_rvalid": Out(1), "s_axil_rready": In(1),
        }
        for reg in regmap.registers:
            for item in reg.fields:
                name = field_port_name(reg.name, item.name)
                ports = {"rw": {name: Out(item.width, init=item.reset)},
                         "ro": {name: In(item.width)},
                         "pulse": {name: Out(1)},
                         "w1c": {name: Out(1, init=item.reset),
                                 set_port_name(reg.name, item.name): In(1),
                                 clear_port_name(reg.name, item.name): In(1)}}[item.access]
                for port in ports:
                    if port in members:
                        raise ValueError(f"field {reg.name}.{item.name}: port name {port!r} "
                                         "clashes with an AXI port")
                members.update(ports)
        self.interrupt = self._checked_interrupt(regmap, interrupt)
        if self.interrupt:
            members["irq"] = Out(1)
        super().__init__(members)

    @staticmethod
    def _checked_interrupt(regmap, interrupt):
        if interrupt is None:
            return None
        if (not isinstance(interrupt, (tuple, list)) or len(interrupt) != 2
                or not all(isinstance(name, str) and name.count(".") == 1 for name in interrupt)):
            raise ValueError('interrupt must be ("register.flag", "register.enable"), '
                             f"got {interrupt!r}")
        fields = {f"{reg.name}.{item.name}": item
                  for reg in regmap.registers for item in reg.fields}
        for name, access in zip(interrupt, ("w1c", "rw")):
            item = fields.get(name)
            if item is None or item.access != access or item.width != 1:
                raise ValueError(f"interrupt: {name} must be a 1-bit {access} field "
                                 f"of {regmap.name!r}")
        return tuple(tuple(name.split(".")) for name in interrupt)

    def _word_index(self, offset: int) -> tuple[int, int]:
        """(bus word index, 32-bit lane within the word) of a register offset."""
        return offset >> self._word_bits, (offset >> 2) & ((1 << (self._word_bits - 2)) - 1)

    def _word_hit(self, address, index: int):
        """``address`` names bus word ``index`` (constant 1 if the address has no word bits)."""
        word = address[self._word_bits:]
        return (word == index) if len(word) else Const(index == 0, 1)

    def _register_value(self, reg):
        """The 32-bit word a read of ``reg`` returns: fields in place, 0 elsewhere."""
        parts, position = [], 0
        for item in sorted(reg.fields, key=lambda f: f.lsb):
            if item.lsb > position:
                parts.append(Const(0, item.lsb - position))
            if item.access == "pulse":
                parts.append(Const(0, 1))
            else:
                parts.append(getattr(self, field_port_name(reg.name, item.name)))
            position = item.msb + 1
        if position < REGISTER_WIDTH:
            parts.append(Const(0, REGISTER_WIDTH - position))
        return Cat(*parts)

    def elaborate(self, platform):
        m = Module()
        lanes = self.data_width // REGISTER_WIDTH
        words: dict[int, list] = {}  # bus word index -> [register or None per lane]
        for reg in self.regmap.registers:
            index, lane = self._word_index(reg.offset)
            words.setdefault(index, [None] * lanes)[lane] = reg

        # ---- write channel: hold AW and W until both are in ------------------
        aw_held = Signal()
        aw_addr = Signal.like(self.s_axil_awaddr)
        w_held = Signal()
        w_data = Signal.like(self.s_axil_wdata)
        w_strb = Signal.like(self.s_axil_wstrb)
        aw_fire = Signal()
        w_fire = Signal()
        do_write = Signal()
        # Address, data and strobes always land in registers first: the
        # decode works on flip-flops, never on the bus inputs.
        m.d.comb += [
            aw_fire.eq(self.s_axil_awvalid & self.s_axil_awready),
            w_fire.eq(self.s_axil_wvalid & self.s_axil_wready),
            do_write.eq(aw_held & w_held),
        ]
        write_hits = {}  # bus word index -> the write addresses it
        for index in words:
            write_hits[index] = Signal(name=f"write_word{index}")
            m.d.comb += write_hits[index].eq(self._word_hit(aw_addr, index))

        with m.If(aw_fire):
            m.d.sync += [aw_held.eq(1), aw_addr.eq(self.s_axil_awaddr),
                         self.s_axil_awready.eq(0)]
        with m.If(w_fire):
            m.d.sync += [w_held.eq(1), w_data.eq(self.s_axil_wdata),
                         w_strb.eq(self.s_axil_wstrb), self.s_axil_wready.eq(0)]
        with m.If(do_write):
            m.d.sync += [
                aw_held.eq(0), w_held.eq(0),
                self.s_axil_bvalid.eq(1),
                self.s_axil_bresp.eq(RESP_SLVERR),
            ]
            with m.If(Cat(*write_hits.values()).any()):
                m.d.sync += self.s_axil_bresp.eq(RESP_OKAY)
        with m.If(self.s_axil_bvalid & self.s_axil_bready):
            m.d.sync += [self.s_axil_bvalid.eq(0),
                         self.s_axil_awready.eq(1), self.s_axil_wready.eq(1)]

        # ---- field updates --------------------------------------------------
        nexts = {}
        for index, lane_regs in words.items():
            for lane, reg in enumerate(lane_regs):
                if reg is not None:
                    nexts[reg.name] = self._write_register(
                        m, reg, do_write & write_hits[index],
                        w_data[lane * REGISTER_WIDTH:][:REGISTER_WIDTH], w_strb[lane * 4:][:4])
        if self.interrupt:
            # From the fields' next values, so irq changes in the same cycle
            # as they do and still leaves from a flip-flop.
            (flag_reg, flag), (enable_reg, enable) = self.interrupt
            m.d.sync += self.irq.eq(nexts[flag_reg][flag] & nexts[enable_reg][enable])

        # ---- read channel: the address is registered, then decoded ---------
        ar_fire = Signal()
        ar_held = Signal()
        ar_addr = Signal.like(self.s_axil_araddr)
        m.d.comb += ar_fire.eq(self.s_axil_arvalid & self.s_axil_arready)
        with m.If(ar_fire):
            m.d.sync += [self.s_axil_arready.eq(0), ar_held.eq(1),
                         ar_addr.eq(self.s_axil_araddr)]
        # The decode is registered as one bit per word, so the read data is
        # an AND-OR of register values, not a compare and a priority chain.
        read_hits = Signal(len(words))
        read_select = Signal()
        with m.If(ar_held):
            m.d.sync += [ar_held.eq(0), read_select.eq(1),
                         read_hits.eq(Cat(self._word_hit(ar_addr, index) for index in words))]
        with m.If(read_select):
            values = [Cat(Const(0, REGISTER_WIDTH) if reg is None else self._register_value(reg)
                          for reg in lane_regs) for lane_regs in words.values()]
            m.d.sync += [
                read_select.eq(0),
                self.s_axil_rvalid.eq(1),
                self.s_axil_rdata.eq(_or_all([Mux(hit, value, 0)
                                              for hit, value in zip(read_hits, values)])),
                self.s_axil_rresp.eq(Mux(read_hits.any(), RESP_OKAY, RESP_SLVERR)),
            ]
        with m.If(self.s_axil_rvalid & self.s_axil_rready):
            m.d.sync += [self.s_axil_rvalid.eq(0), self.s_axil_arready.eq(1)]
        return m

    def _write_register(self, m, reg, hit, data, strb):
        """Field updates of ``reg`` for a write (``hit``) of ``data`` with byte enables ``strb``.

        Returns each ``rw`` and ``w1c`` field's next value (by field name).
        """
        nexts = {}
        for item in reg.fields:
            port = getattr(self, field_port_name(reg.name, item.name))
            if item.access == "rw":
                following = Signal.like(port, name=f"{field_port_name(reg.name, item.name)}_next")
                m.d.comb += following.eq(port)
                # One update per byte lane the field touches.
                for byte in range(item.lsb // 8, item.msb // 8 + 1):
                    low, high = max(item.lsb, 8 * byte), min(item.msb, 8 * byte + 7) + 1
                    with m.If(hit & strb[byte]):
                        m.d.comb += following[low - item.lsb:high - item.lsb].eq(data[low:high])
                m.d.sync += port.eq(following)
                nexts[item.name] = following
            elif item.access == "pulse":
                m.d.sync += port.eq(hit & strb[item.lsb // 8] & data[item.lsb])
            elif item.access == "w1c":
                clear = ((hit & strb[item.lsb // 8] & data[item.lsb])
                         | getattr(self, clear_port_name(reg.name, item.name)))
                # Set wins over a clear in the same cycle.
                following = Signal(name=f"{field_port_name(reg.name, item.name)}_next")
                m.d.comb += following.eq(getattr(self, set_port_name(reg.name, item.name))
                                         | (port & ~clear))
                m.d.sync += port.eq(following)
                nexts[item.name] = following
        return nexts
