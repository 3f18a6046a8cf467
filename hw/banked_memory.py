"""A deep memory whose banks' outputs are registered before they are multiplexed.

A memory deeper than one block RAM is several RAMs selected by the high
address bits. Left to synthesis, the selection is a multiplexer right behind
the RAMs' outputs, which on ECP5 are unregistered (5.8 ns from the clock):
the slowest path of the line buffer. Here every bank is a memory of its own,
each bank's read data goes straight into a register, and the multiplexer
works on those registers one cycle later.

Read: the data of the address presented in cycle ``t`` is on ``read_data``
in cycle ``t + 2`` (the RAM's register, then the bank register); reads are
issued every cycle (no enable: the users run free-running pipelines). Write:
one per cycle, registered before the RAMs by default (the bank's write
enable is worked out a cycle ahead, so the write port starts from
flip-flops however far the banks are placed from the logic that writes): a
write presented in cycle ``t`` is seen by reads presented from cycle ``t +
2`` on, and a read presented in cycle ``t + 1`` of that address is
undefined. With ``registered_write=False`` (for writers that are
registers already) it is seen from ``t + 1`` on, and a read of the address
being written in the same cycle is undefined. The users never do either.

On ECP5 (see :mod:`.fpga_target`) each bank is a column of ``DP16KD`` block
RAMs with the RAM's own output register on (``REGMODE = "OUTREG"``), which
takes the bank register's place: the same latency, and the multiplexer
starts from a register 1 ns after the clock instead of the RAM's 5.8 ns.
``ram_width`` picks the RAM's shape: 1024 x 18 (true dual port, port A
writes, port B reads) or 512 x 36 (both ports' data pins form one 36-bit
word: written through port A's clock and byte enables, read through port
B's); 36 suits a shallow, wide memory (half the RAMs of 18 for 512 words or
fewer).

``read_latency=3`` adds a fabric register after each bank's output, which
holds the bank's word when that bank is the one read and 0 otherwise; the
output is the OR of those registers. For a memory of many banks that the
placer spreads over the die (the line buffer's RAMs sit up to 50 rows from
the logic that reads them), the long wire from a RAM, the wide select net
and the multiplexer are then not one cycle.
"""

import functools
import operator

from amaranth.hdl import ClockSignal, Const, Instance, Module, Mux, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .fpga_target import primitive_family

__all__ = ["BankedMemory"]


class BankedMemory(wiring.Component):
    """Memory of ``depth`` words in banks of ``bank_depth``, read latency 2 or 3.

    Parameters
    ----------
    shape : shape-like
        Word shape.
    depth : int
        Words.
    bank_depth : int
        Words per bank, a power of two (one block RAM's depth at the word
        width is the natural choice).
    registered_write : bool
        Register the write port (one more cycle before a write is seen).
    ram_width : int
        ECP5 only: 18 (1024 x 18 RAMs) or 36 (512 x 36 RAMs).
    read_latency : int
        2, or 3 for a register between each bank and the multiplexer.

    Attributes
    ----------
    write_en, write_addr, write_data : In
    read_addr : In(unsigned)
    read_data : Out(shape)
        The word at ``read_addr`` of ``read_latency`` cycles before.
    """

    #: The shortest read latency (the default).
    READ_LATENCY = 2
    #: ECP5 block RAM shapes (width: depth) the memory can be built from.
    ECP5_RAM_DEPTHS = {18: 1024, 36: 512}

    def __init__(self, shape, depth: int, bank_depth: int, *, registered_write: bool = True,
                 ram_width: int = 18, read_latency: int = READ_LATENCY):
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"BankedMemory depth must be a positive integer, got {depth!r}")
        if not isinstance(bank_depth, int) or bank_depth < 1 or bank_depth & (bank_depth - 1):
            raise ValueError(f"BankedMemory bank_depth must be a power of two, got {bank_depth!r}")
        if ram_width not in self.ECP5_RAM_DEPTHS:
            raise ValueError(f"BankedMemory ram_width must be one of "
                             f"{sorted(self.ECP5_RAM_DEPTHS)}, got {ram_width!r}")
        if read_latency not in (2, 3):
            raise ValueError(f"BankedMemory read_latency must be 2 or 3, got {read_latency!r}")
        self.shape, self.depth, self.read_latency = shape, depth, read_latency
        self.registered_write, self.ram_width = registered_write, ram_width
        self.bank_depth = min(bank_depth, 1 << ceil_log2(depth))
        self.banks = -(-depth // self.bank_depth)
        address = max(1, ceil_log2(depth))
        super().__init__({
            "write_en": In(1),
            "write_addr": In(address),
            "write_data": In(shape),
            "read_addr": In(address),
            "read_data": Out(shape),
        })

    def _select(self, m, bank_depth, outputs):
        """Drive ``read_data`` from the registered bank outputs, ``read_latency`` cycles on."""
        # Data-path registers: no reset (a reset net to hundreds of flip-flops
        # spread with the banks was a critical path); nothing reads
        # read_data without having presented an address.
        bank = Signal(range(max(2, len(outputs))), name="bank_of_read", reset_less=True)
        m.d.sync += bank.eq(self.read_addr[ceil_log2(bank_depth):])
        if self.read_latency == 3:
            # Each bank's word is registered beside the bank, zeroed unless
            # it is the one read (a one-hot flag per bank, so no wide select
            # net crosses the die); the output is the OR of the registers.
            chosen = Signal(len(outputs), name="bank_chosen", reset_less=True)
            m.d.sync += chosen.eq(1 << bank)
            staged = []
            for index, output in enumerate(outputs):
                stage = Signal.like(output, name=f"{output.name}_staged", reset_less=True)
                m.d.sync += stage.eq(Mux(chosen[index], output, 0))
                staged.append(stage)
            m.d.comb += Value.cast(self.read_data).eq(
                functools.reduce(operator.or_, staged))
            return
        bank_of_data = Signal.like(bank, name="bank_of_data")   # reset_less, like bank
        m.d.sync += bank_of_data.eq(bank)
        with m.Switch(bank_of_data):
            for index, registered in enumerate(outputs):
                with m.Case(index):
                    m.d.comb += Value.cast(self.read_data).eq(registered)

    def _write_port(self, m, banks, low):
        """Write address (low bits), data and one enable per bank (a cycle late
        with ``registered_write``)."""
        address = Signal(max(1, low), name="write_word")
        data = Signal(len(Value.cast(self.write_data)), name="write_bits")
        enables = Signal(banks, name="write_bank")
        domain = m.d.sync if self.registered_write else m.d.comb
        domain += [address.eq(self.write_addr[:low]), data.eq(self.write_data)]
        for index in range(banks):
            here = (self.write_addr[low:] == index) if banks > 1 else 1
            domain += enables[index].eq(self.write_en & here)
        return address, data, enables

    def elaborate(self, platform):
        if primitive_family(platform) == "ecp5":
            return self._ecp5()
        m = Module()
        low = ceil_log2(self.bank_depth)
        outputs = []
        write_word, write_bits, write_bank = self._write_port(m, self.banks, low)
        for index in range(self.banks):
            words = min(self.bank_depth, self.depth - index * self.bank_depth)
            bank = Memory(shape=self.shape, depth=words, init=[])
            m.submodules[f"bank{index}"] = bank
            write, read = bank.write_port(), bank.read_port()
            m.d.comb += [
                write.en.eq(write_bank[index]),
                write.addr.eq(write_word),
                write.data.eq(write_bits),
                read.addr.eq(self.read_addr[:low]),
            ]
            registered = Signal(len(Value.cast(self.read_data)), name=f"bank{index}_data",
                                reset_less=True)
            m.d.sync += registered.eq(read.data)
            outputs.append(registered)
        self._select(m, self.bank_depth, outputs)
        return m

    def _ecp5(self):
        m = Module()
        width = self.ram_width
        depth = self.ECP5_RAM_DEPTHS[width]
        low = min(ceil_log2(depth), len(self.read_addr))
        banks = -(-self.depth // depth)
        write_word, write_data, write_bank = self._write_port(m, banks, low)
        bits = len(write_data)
        # Word address pins: 13..4 (18-bit) or 13..5 (36-bit); below them the
        # write port's byte enables (all on) and zeros on the read port.
        first_pin = 14 - ceil_log2(depth)
        byte_enables = 2 if width == 18 else 4
        outputs = []
        for index in range(banks):
            registered = Signal(bits, name=f"bank{index}_data")
            for first in range(0, bits, width):
                count = min(width, bits - first)
                data_in = [write_data[first + bit] if bit < count else Const(0, 1)
                           for bit in range(width)]
                ports = {}
                for pin in range(14):
                    word_bit = pin - first_pin
                    in_word = 0 <= word_bit < low
                    ports[f"i_ADA{pin}"] = (write_word[word_bit] if in_word
                                            else Const(1 if pin < byte_enables else 0, 1))
                    ports[f"i_ADB{pin}"] = self.read_addr[word_bit] if in_word else Const(0, 1)
                for pin in range(18):
                    ports[f"i_DIA{pin}"] = data_in[pin]
                    ports[f"i_DIB{pin}"] = data_in[18 + pin] if width == 36 else Const(0, 1)
                    # 36-bit words read out on DOA (low half) and DOB (high half).
                    for port, offset in ((("DOB", 0),) if width == 18
                                         else (("DOA", 0), ("DOB", 18))):
                        if offset + pin < count:
                            ports[f"o_{port}{pin}"] = registered[first + offset + pin]
                for cs in range(3):
                    ports[f"i_CSA{cs}"] = ports[f"i_CSB{cs}"] = Const(0, 1)
                m.submodules[f"bank{index}_ram{first // width}"] = Instance(
                    "DP16KD",
                    p_DATA_WIDTH_A=width, p_DATA_WIDTH_B=width,
                    p_REGMODE_A="NOREG" if width == 18 else "OUTREG", p_REGMODE_B="OUTREG",
                    p_RESETMODE="SYNC", p_ASYNC_RESET_RELEASE="SYNC",
                    p_CSDECODE_A="0b000", p_CSDECODE_B="0b000",
                    p_WRITEMODE_A="NORMAL", p_WRITEMODE_B="NORMAL", p_GSR="DISABLED",
                    i_CLKA=ClockSignal(), i_CEA=Const(1, 1), i_OCEA=Const(1, 1),
                    i_WEA=write_bank[index], i_RSTA=Const(0, 1),
                    i_CLKB=ClockSignal(), i_CEB=Const(1, 1), i_OCEB=Const(1, 1),
                    i_WEB=Const(0, 1), i_RSTB=Const(0, 1),
                    **ports)
            outputs.append(registered)
        self._select(m, min(depth, 1 << len(self.read_addr)), outputs)
        return m
