"""cocotb testbench of the MAC processing element (``hw/mac_pe.py``).

The PE has no streams; its stall input is ``en``, which every test drives low
at random (seeded). Two kinds of check:

* cycle by cycle against :class:`PeReference`, a plain-Python statement of
  the cell's behaviour written from the module docstring;
* closed-loop dot products (``psum_out`` fed back to ``psum_in``, a new weight
  loaded and swapped in every enabled cycle) against the golden
  ``conv2d`` of a 1x1 convolution, including the largest reduction the
  configuration allows with extreme operands, so the accumulator width is
  exercised at its limit.
"""

from __future__ import annotations

import dataclasses

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge, Timer

from ...golden import conv2d
from ...hw.mac_pe import MacPE
from ..streams import bench_rng, start_clock_and_reset
from . import bench_config


@dataclasses.dataclass
class PeReference:
    """Registers of one weight-stationary PE (see ``hw/mac_pe.py``)."""

    row: int
    acc_width: int
    act_out: int = 0
    swap_out: int = 0
    psum_out: int = 0
    wload_out: tuple = (0, 0, 0)  # (data, row, valid)
    shadow: int = 0
    active: int = 0
    product: int = 0
    product_copy: int = 0     # the fabric copy beside the adder
    act_local: int = 0
    swap_local: int = 0

    def step(self, *, en, act_in, swap_in, psum_in, wload_in):
        if en:
            self.act_out, self.swap_out = act_in, swap_in
            self.psum_out = psum_in + self.product_copy
            self.product_copy = self.product
            self.product = self.act_local * self.active   # before this edge's swap
            if self.swap_local:
                self.active = self.shadow
            self.act_local, self.swap_local = act_in, swap_in
        data, row, valid = wload_in
        self.wload_out = wload_in
        if valid and row == self.row:
            self.shadow = data


class MacPeBench:
    """Drives and observes one ``mac_pe`` top."""

    def __init__(self, dut):
        self.dut = dut
        self.config = bench_config()
        self.row_bits = max(1, (self.config.array_rows - 1).bit_length())
        self.weight_bits = self.config.weight_width

    def drive(self, *, en, act, swap, psum, wload=(0, 0, 0)):
        dut = self.dut
        dut.en.value = int(en)
        dut.act_in.value = int(act)
        dut.swap_in.value = int(swap)
        dut.psum_in.value = int(psum)
        data, row, valid = wload
        mask = (1 << self.weight_bits) - 1
        dut.wload_in.value = ((int(valid) << (self.weight_bits + self.row_bits))
                              | (int(row) << self.weight_bits) | (int(data) & mask))

    def observed(self):
        dut = self.dut
        raw = int(dut.wload_out.value)
        data = raw & ((1 << self.weight_bits) - 1)
        if data >> (self.weight_bits - 1):
            data -= 1 << self.weight_bits
        row = (raw >> self.weight_bits) & ((1 << self.row_bits) - 1)
        valid = raw >> (self.weight_bits + self.row_bits)
        return {
            "act_out": dut.act_out.value.to_signed(),
            "swap_out": int(dut.swap_out.value),
            "psum_out": dut.psum_out.value.to_signed(),
            "wload_out": (data, row, valid),
        }

    async def dot_product(self, rng, x, w, bias, *, stall_probability):
        """Accumulate ``bias + sum(x * w)`` in the PE; return the result and cycles."""
        # w[0] into the shadow, then a swap one cycle ahead of x[0]; each
        # activation's cycle carries the swap for the next one and loads its weight.
        self.drive(en=0, act=0, swap=0, psum=0, wload=(int(w[0]), 0, 1))
        await RisingEdge(self.dut.clk)
        self.drive(en=1, act=0, swap=1, psum=0)
        await RisingEdge(self.dut.clk)
        accumulator, k, cycles = int(bias), 0, 0
        while k < len(x):
            en = rng.random() >= stall_probability
            # While stalled no weight may be loaded: the shadow holds the next
            # activation's weight until its swap.
            load = (int(w[k + 1]), 0, 1) if en and k + 1 < len(x) else (0, 0, 0)
            self.drive(en=en, act=int(x[k]), swap=1, psum=accumulator, wload=load)
            await RisingEdge(self.dut.clk)
            cycles += 1
            await ReadOnly()
            if en:
                accumulator = self.dut.psum_out.value.to_signed()
                k += 1
            # Leave the ReadOnly phase before driving again.
            await Timer(1, unit="ns")
        # Each product reaches psum_out PRODUCT_DELAY edges after its
        # activation's: the last ones arrive in as many cycles after the loop.
        flush = MacPE.PRODUCT_DELAY
        for _ in range(flush):
            self.drive(en=1, act=0, swap=0, psum=accumulator)
            await RisingEdge(self.dut.clk)
            await ReadOnly()
            accumulator = self.dut.psum_out.value.to_signed()
            await Timer(1, unit="ns")
        return accumulator, cycles + flush


@cocotb.test()
async def pe_matches_reference_cycle_by_cycle(dut):
    """Random inputs, random stalls: every output register matches the reference."""
    tb = MacPeBench(dut)
    cfg = tb.config
    rng = bench_rng(1)
    await start_clock_and_reset(dut)
    ref = PeReference(row=0, acc_width=cfg.acc_width)
    # Keep psum + product inside the accumulator (the contract guarantees it
    # for real layers; here the margin is explicit).
    margin = 1 << cfg.product_width
    psum_low, psum_high = cfg.acc_low + margin, cfg.acc_high - margin
    extremes_act = [cfg.act_min, cfg.act_max, 0, -1]
    extremes_w = [cfg.weight_min, cfg.weight_max, 0, -1]
    for cycle in range(3000):
        act = int(rng.choice(extremes_act)) if rng.random() < 0.2 else int(
            rng.integers(cfg.act_min, cfg.act_max + 1))
        wdata = int(rng.choice(extremes_w)) if rng.random() < 0.2 else int(
            rng.integers(cfg.weight_min, cfg.weight_max + 1))
        psum = int(rng.choice([psum_low, psum_high, 0])) if rng.random() < 0.1 else int(
            rng.integers(psum_low, psum_high + 1))
        inputs = dict(
            en=rng.random() >= 0.3, act_in=act, swap_in=int(rng.random() < 0.2), psum_in=psum,
            wload_in=(wdata, int(rng.integers(0, cfg.array_rows)), int(rng.random() < 0.5)))
        tb.drive(en=inputs["en"], act=act, swap=inputs["swap_in"], psum=psum,
                 wload=inputs["wload_in"])
        await RisingEdge(dut.clk)
        ref.step(**inputs)
        await ReadOnly()
        got = tb.observed()
        want = {"act_out": ref.act_out, "swap_out": ref.swap_out, "psum_out": ref.psum_out,
                "wload_out": ref.wload_out}
        assert got == want, f"cycle {cycle}: inputs {inputs}: expected {want}, got {got}"
        await Timer(1, unit="ns")
    dut._log.info("3000 random cycles with stalls match the reference")


@cocotb.test()
async def pe_dot_products_match_golden(dut):
    """Closed-loop dot products with random stalls equal golden conv2d (1x1)."""
    tb = MacPeBench(dut)
    cfg = tb.config
    rng = bench_rng(2)
    await start_clock_and_reset(dut)
    k_max = cfg.max_reduction
    cases = [
        ("random", rng.integers(cfg.act_min, cfg.act_max + 1, 200),
         rng.integers(cfg.weight_min, cfg.weight_max + 1, 200),
         int(rng.integers(cfg.bias_min, cfg.bias_max + 1))),
        ("largest positive sum", np.full(k_max, cfg.act_min), np.full(k_max, cfg.weight_min),
         cfg.bias_max),
        ("largest negative sum", np.full(k_max, cfg.act_min), np.full(k_max, cfg.weight_max),
         cfg.bias_min),
        ("zeros", np.zeros(50, dtype=np.int64), rng.integers(cfg.weight_min, cfg.weight_max + 1, 50),
         0),
        ("single term", np.array([cfg.act_max]), np.array([cfg.weight_min]), -1),
    ]
    for name, x, w, bias in cases:
        x = np.asarray(x, dtype=np.int64)
        w = np.asarray(w, dtype=np.int64)
        expected = int(conv2d(x.reshape(-1, 1, 1), w.reshape(1, -1, 1, 1),
                              bias=np.array([bias]))[0, 0, 0])
        got, cycles = await tb.dot_product(rng, x, w, bias, stall_probability=0.3)
        assert got == expected, (f"{name}: K={len(x)}: PE accumulated {got}, golden conv2d "
                                 f"gives {expected}")
        dut._log.info("%s: K=%d, %d cycles with stalls, result %d matches golden",
                      name, len(x), cycles, got)
