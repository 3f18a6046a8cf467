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
one per cycle, registered before the RAMs (the bank's write enable is worked
out a cycle ahead, so the write port starts from flip-flops however far the
banks are placed from the logic that writes): a write presented in cycle
``t`` is seen by reads presented from cycle ``t + 2`` on. A read presented in
cycle ``t + 1`` of the address written in ``t`` is undefined (the users
never do it).

On ECP5 (see :mod:`.fpga_target`) each bank is a column of ``DP16KD`` block
RAMs (1024 x 18 each) with the RAM's own output register on (``REGMODE_B =
"OUTREG"``), which takes the bank register's place: the same latency, and
the multiplexer starts from a register 1 ns after the clock instead of the
RAM's 5.8 ns.
"""

from amaranth.hdl import ClockSignal, Const, Instance, Module, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .fpga_target import primitive_family

__all__ = ["BankedMemory"]


class BankedMemory(wiring.Component):
    """Memory of ``depth`` words in banks of ``bank_depth``, read latency 2.

    Parameters
    ----------
    shape : shape-like
        Word shape.
    depth : int
        Words.
    bank_depth : int
        Words per bank, a power of two (one block RAM's depth at the word
        width is the natural choice).

    Attributes
    ----------
    write_en, write_addr, write_data : In
    read_addr : In(unsigned)
    read_data : Out(shape)
        The word at ``read_addr`` of two cycles before.
    """

    READ_LATENCY = 2
    #: Cycles from a write's presentation to the RAM write (see the module).
    WRITE_LATENCY = 1
    #: Depth and width of one ECP5 block RAM in the 18-bit mode used here.
    ECP5_RAM_DEPTH, ECP5_RAM_WIDTH = 1024, 18

    def __init__(self, shape, depth: int, bank_depth: int):
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"BankedMemory depth must be a positive integer, got {depth!r}")
        if not isinstance(bank_depth, int) or bank_depth < 1 or bank_depth & (bank_depth - 1):
            raise ValueError(f"BankedMemory bank_depth must be a power of two, got {bank_depth!r}")
        self.shape, self.depth = shape, depth
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
        """Drive ``read_data`` from the registered bank outputs, two cycles on."""
        bank_of_read = Signal(range(max(2, len(outputs))))
        bank_of_data = Signal.like(bank_of_read)
        m.d.sync += [bank_of_read.eq(self.read_addr[ceil_log2(bank_depth):]),
                     bank_of_data.eq(bank_of_read)]
        with m.Switch(bank_of_data):
            for index, registered in enumerate(outputs):
                with m.Case(index):
                    m.d.comb += Value.cast(self.read_data).eq(registered)

    def _registered_write(self, m, banks, low):
        """Write address (low bits), data and one enable per bank, a cycle late."""
        address = Signal(max(1, low), name="write_word")
        data = Signal(len(Value.cast(self.write_data)), name="write_bits")
        enables = Signal(banks, name="write_bank")
        m.d.sync += [address.eq(self.write_addr[:low]), data.eq(self.write_data)]
        for index in range(banks):
            here = (self.write_addr[low:] == index) if banks > 1 else 1
            m.d.sync += enables[index].eq(self.write_en & here)
        return address, data, enables

    def elaborate(self, platform):
        if primitive_family(platform) == "ecp5":
            return self._ecp5()
        m = Module()
        low = ceil_log2(self.bank_depth)
        outputs = []
        write_word, write_bits, write_bank = self._registered_write(m, self.banks, low)
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
            registered = Signal(len(Value.cast(self.read_data)), name=f"bank{index}_data")
            m.d.sync += registered.eq(read.data)
            outputs.append(registered)
        self._select(m, self.bank_depth, outputs)
        return m

    def _ecp5(self):
        m = Module()
        depth, width = self.ECP5_RAM_DEPTH, self.ECP5_RAM_WIDTH
        low = min(ceil_log2(depth), len(self.read_addr))
        banks = -(-self.depth // depth)
        write_word, write_data, write_bank = self._registered_write(m, banks, low)
        bits = len(write_data)
        outputs = []
        for index in range(banks):
            registered = Signal(bits, name=f"bank{index}_data")
            for first in range(0, bits, width):
                count = min(width, bits - first)
                ports = {}
                # 18-bit mode: address bits 4..13 select the word, ADA0/ADA1
                # are the two byte-write enables.
                for bit in range(14):
                    in_word = 4 <= bit < 4 + low
                    ports[f"i_ADA{bit}"] = (write_word[bit - 4] if in_word
                                            else Const(1 if bit < 2 else 0, 1))
                    ports[f"i_ADB{bit}"] = self.read_addr[bit - 4] if in_word else Const(0, 1)
                for bit in range(width):
                    ports[f"i_DIA{bit}"] = write_data[first + bit] if bit < count else Const(0, 1)
                    ports[f"i_DIB{bit}"] = Const(0, 1)
                    if bit < count:
                        ports[f"o_DOB{bit}"] = registered[first + bit]
                for cs in range(3):
                    ports[f"i_CSA{cs}"] = ports[f"i_CSB{cs}"] = Const(0, 1)
                m.submodules[f"bank{index}_ram{first // width}"] = Instance(
                    "DP16KD",
                    p_DATA_WIDTH_A=width, p_DATA_WIDTH_B=width,
                    p_REGMODE_A="NOREG", p_REGMODE_B="OUTREG",
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
