"""Banked memory: every word reads back ``read_latency`` cycles after its address, across
banks, and a write is seen by reads presented two cycles after it."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from convaccel.hw.banked_memory import BankedMemory


@pytest.mark.parametrize("read_latency", [2, 3])
@pytest.mark.parametrize("registered_write", [True, False])
@pytest.mark.parametrize("depth, bank_depth", [(100, 32), (64, 64), (70, 16), (5, 8)])
def test_reads_return_the_last_write_after_the_read_latency(depth, bank_depth, registered_write,
                                                            read_latency):
    dut = BankedMemory(12, depth, bank_depth, registered_write=registered_write,
                       read_latency=read_latency)
    rng = np.random.default_rng(depth + bank_depth)
    model = [0] * depth
    problems = []

    async def testbench(ctx):
        pending = []                       # (cycle due, address, expected)
        in_flight = None                   # the write presented a cycle ago
        for cycle in range(600):
            address = int(rng.integers(0, depth))
            if in_flight is not None and address == in_flight[0]:
                address = (address + 1) % depth    # an undefined read: not asked
            write = rng.random() < 0.5
            waddr = int(rng.integers(0, depth))
            if not registered_write and write and address == waddr:
                address = (address + 1) % depth    # undefined without the register
            ctx.set(dut.read_addr, address)
            pending.append((cycle + dut.read_latency, address, model[address]))
            ctx.set(dut.write_en, write)
            if write:
                value = int(rng.integers(0, 1 << 12))
                ctx.set(dut.write_addr, waddr)
                ctx.set(dut.write_data, value)
            await ctx.tick()
            # A registered write reaches the RAM a cycle after it is presented.
            if in_flight is not None:
                model[in_flight[0]] = in_flight[1]
            in_flight = (waddr, value) if write else None
            if not registered_write and in_flight is not None:
                model[waddr] = value
                in_flight = None
            due = [item for item in pending if item[0] == cycle + 1]
            for _, addr, want in due:
                got = ctx.get(dut.read_data)
                if got != want:
                    problems.append((cycle, addr, want, got))
            pending = [item for item in pending if item[0] > cycle + 1]

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert not problems, problems[:5]
    assert dut.banks == -(-depth // min(bank_depth, 1 << (depth - 1).bit_length()))


def test_read_latency_is_2_or_3():
    with pytest.raises(ValueError, match="read_latency"):
        BankedMemory(8, 100, 64, read_latency=4)


def test_ram_width_must_be_an_ecp5_shape():
    with pytest.raises(ValueError, match="ram_width must be one of \\[18, 36\\], got 9"):
        BankedMemory(8, 100, 64, ram_width=9)


def test_bank_depth_must_be_a_power_of_two():
    with pytest.raises(ValueError, match="bank_depth must be a power of two, got 48"):
        BankedMemory(8, 100, 48)
