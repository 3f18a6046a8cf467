"""AXI4-Lite register file: Amaranth-simulator unit tests, lint, and a cocotb regression.

The register map is the bench's :func:`example_map` (ctrl: rw enable/mode,
pulses start/abort; status: ro busy/count, w1c done/error; scale: a 20-bit
rw field from bit 4; a hole at 0x0c; threshold: two rw fields).
"""

import numpy as np
import pytest
from amaranth.sim import Simulator

from convaccel.hw import PRESETS
from convaccel.hw.axi_lite import (AXIL_PORTS, RESP_OKAY, RESP_SLVERR, AxiLiteRegisterFile,
                                   field_port_name, set_port_name)
from convaccel.hw.register_map import Field, Register, RegisterMap
from convaccel.hw.verilog import generate_verilog
from convaccel.sim.benches.axi_lite_registers_bench import RegisterModel, example_map
from convaccel.sim.lint import verilator_lint, yosys_latches

#: AXI outputs of the register file.
AXI_OUTPUTS = ("s_axil_awready", "s_axil_wready", "s_axil_bvalid", "s_axil_bresp",
               "s_axil_arready", "s_axil_rvalid", "s_axil_rdata", "s_axil_rresp")


def simulate(dut, testbench):
    """Run ``testbench(ctx)`` on ``dut`` with a clock."""
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()


async def transfer(ctx, dut, *, write=None, read=None, aw_at=0, w_at=0, ar_at=0,
                   bready_at=0, rready_at=0, each_cycle=None, max_cycles=40):
    """One write ``(address, data, strb)`` and/or one read ``address``, cycle by cycle.

    Each valid rises in the cycle given by ``*_at`` (cycles count from 0 at
    the call) and falls after its handshake; BREADY/RREADY rise at
    ``bready_at``/``rready_at``. ``each_cycle(ctx, cycle)`` may drive other
    inputs first. Returns ``(events, log)``: the cycle of each handshake
    (``aw``, ``w``, ``ar``, ``b``, ``r``), the first cycle of BVALID/RVALID
    (``bvalid``, ``rvalid``), ``bresp``/``rdata``/``rresp``, and a list of
    every output per cycle.
    """
    events, log = {}, []
    for cycle in range(max_cycles):
        if each_cycle is not None:
            each_cycle(ctx, cycle)
        offers = {
            "aw": write is not None and "aw" not in events and cycle >= aw_at,
            "w": write is not None and "w" not in events and cycle >= w_at,
            "ar": read is not None and "ar" not in events and cycle >= ar_at,
        }
        for channel, offer in offers.items():
            ctx.set(getattr(dut, f"s_axil_{channel}valid"), offer)
        # Without valid the payload is junk (all ones): the DUT must not use it.
        for channel, names, values in (("aw", ["awaddr"], write and write[:1]),
                                       ("w", ["wdata", "wstrb"], write and write[1:]),
                                       ("ar", ["araddr"], [read])):
            for name, value in zip(names, values if offers[channel] else [-1, -1]):
                ctx.set(getattr(dut, f"s_axil_{name}"), value)
        bready = write is not None and "b" not in events and cycle >= bready_at
        rready = read is not None and "r" not in events and cycle >= rready_at
        ctx.set(dut.s_axil_bready, bready)
        ctx.set(dut.s_axil_rready, rready)
        snap = {name: ctx.get(getattr(dut, name)) for name in dut.signature.members
                if dut.signature.members[name].flow.name == "Out"}
        log.append(snap)
        for channel, offer in offers.items():
            if offer and snap[f"s_axil_{channel}ready"]:
                events[channel] = cycle
        for channel, ready, payload in (("b", bready, ("bresp",)),
                                        ("r", rready, ("rdata", "rresp"))):
            if snap[f"s_axil_{channel}valid"] and f"{channel}valid" not in events:
                events[f"{channel}valid"] = cycle
            if snap[f"s_axil_{channel}valid"] and ready:
                events[channel] = cycle
                events.update({name: snap[f"s_axil_{name}"] for name in payload})
        await ctx.tick()
        if (write is None or "b" in events) and (read is None or "r" in events):
            ctx.set(dut.s_axil_bready, 0)
            ctx.set(dut.s_axil_rready, 0)
            return events, log
    raise AssertionError(f"transfer not finished after {max_cycles} cycles: {events}")


async def write(ctx, dut, address, data, strb=0xF, **timing):
    events, _ = await transfer(ctx, dut, write=(address, data, strb), **timing)
    return events["bresp"]


async def read(ctx, dut, address, **timing):
    events, _ = await transfer(ctx, dut, read=address, **timing)
    return events["rdata"], events["rresp"]


def outputs(ctx, dut, regmap):
    """Current value of every field output, keyed by port name."""
    names = [field_port_name(reg.name, f.name)
             for reg in regmap.registers for f in reg.fields if f.access != "ro"]
    return {name: ctx.get(getattr(dut, name)) for name in names}


def test_port_names_are_the_axi_names_and_one_per_field():
    dut = AxiLiteRegisterFile(example_map())
    fields = {"ctrl_enable", "ctrl_mode", "ctrl_start", "ctrl_abort", "status_busy",
              "status_done", "status_done_set", "status_done_clear", "status_error",
              "status_error_set", "status_error_clear",
              "status_count", "scale_value", "threshold_low", "threshold_high"}
    assert set(dut.signature.members) == set(AXIL_PORTS) | fields
    verilog = generate_verilog(dut, "axil")
    header = verilog[verilog.index("module axil("):].split(";")[0]
    assert {name.strip() for name in header[len("module axil("):-1].split(",")} == (
        set(AXIL_PORTS) | fields | {"clk", "rst"})


def test_constructor_rejects_bad_parameters():
    regmap = example_map()
    with pytest.raises(TypeError, match="regmap must be a RegisterMap"):
        AxiLiteRegisterFile({"ctrl": 0})
    with pytest.raises(ValueError, match="data_width must be 32 or 64, got 16"):
        AxiLiteRegisterFile(regmap, data_width=16)
    with pytest.raises(ValueError, match="addr_width must be an integer >= 5 .* got 4"):
        AxiLiteRegisterFile(regmap, addr_width=4)
    clash = RegisterMap("clash", [Register("s", 0, [Field("axil_rdata", 0, 1, "rw")])])
    with pytest.raises(ValueError, match="port name 's_axil_rdata' clashes"):
        AxiLiteRegisterFile(clash)


def test_reset_values_and_ro_inputs_read_back():
    regmap = example_map()
    dut = AxiLiteRegisterFile(regmap)

    async def testbench(ctx):
        assert outputs(ctx, dut, regmap) == {
            "ctrl_enable": 0, "ctrl_mode": 2, "ctrl_start": 0, "ctrl_abort": 0,
            "status_done": 0, "status_error": 1, "scale_value": 0x12345,
            "threshold_low": 0xbeef, "threshold_high": 0xa5}
        for reg, word in (("ctrl", 0x4), ("scale", 0x00123450), ("threshold", 0xa500beef)):
            assert await read(ctx, dut, regmap.register(reg).offset) == (word, RESP_OKAY), reg
        ctx.set(dut.status_busy, 1)
        ctx.set(dut.status_count, 0xcafe)
        # busy (bit 0), error (bit 9, resets to 1), count (bits 31:16)
        assert await read(ctx, dut, 0x04) == (0xcafe0201, RESP_OKAY)

    simulate(dut, testbench)


def test_write_then_read_every_register_matches_the_model():
    regmap = example_map()
    dut = AxiLiteRegisterFile(regmap)
    model = RegisterModel(regmap)
    rng = np.random.default_rng(5)
    ro = {"status_busy": 0, "status_count": 0}  # the ro inputs stay at 0

    async def testbench(ctx):
        for _ in range(3):
            for reg in regmap.registers:
                data = int(rng.integers(0, 1 << 32))
                assert await write(ctx, dut, reg.offset, data) == RESP_OKAY
                model.write(reg.offset, data, 0xF)
                assert await read(ctx, dut, reg.offset) == model.read(reg.offset, ro), reg.name
        assert outputs(ctx, dut, regmap) == model.outputs(set(), list(outputs(ctx, dut, regmap)))

    simulate(dut, testbench)


@pytest.mark.parametrize("aw_at, w_at", [(0, 3), (3, 0), (0, 0), (2, 2)],
                         ids=["aw-first", "w-first", "together", "together-late"])
def test_write_address_and_data_in_either_order(aw_at, w_at):
    dut = AxiLiteRegisterFile(example_map())

    async def testbench(ctx):
        events, log = await transfer(ctx, dut, write=(0x10, 0x12345678, 0xF), aw_at=aw_at,
                                     w_at=w_at, max_cycles=12)
        assert (events["aw"], events["w"]) == (aw_at, w_at)
        done = max(aw_at, w_at)
        latency = dut.WRITE_LATENCY
        assert events["bvalid"] == done + latency == events["b"]  # bready high
        assert events["bresp"] == RESP_OKAY
        # Each channel is accepted once: its ready stays low until B is taken.
        for channel in ("aw", "w"):
            lows = [log[c][f"s_axil_{channel}ready"] for c in range(events[channel] + 1,
                                                                     events["b"] + 1)]
            assert lows == [0] * len(lows), (channel, lows)
        # The fields change together with BVALID, not before.
        changes = [c for c in range(len(log)) if log[c]["threshold_low"] == 0x5678]
        assert changes[0] == done + latency and log[-1]["threshold_high"] == 0x12
        assert ctx.get(dut.s_axil_awready) and ctx.get(dut.s_axil_wready)

    simulate(dut, testbench)


def test_b_response_is_held_under_back_pressure():
    dut = AxiLiteRegisterFile(example_map())

    async def testbench(ctx):
        events, log = await transfer(ctx, dut, write=(0x0c, 1, 0xF), bready_at=7)
        assert (events["bvalid"], events["b"]) == (dut.WRITE_LATENCY, 7)
        held = [(log[c]["s_axil_bvalid"], log[c]["s_axil_bresp"]) for c in range(2, 8)]
        assert held == [(1, RESP_SLVERR)] * 6
        assert [log[c]["s_axil_awready"] for c in range(1, 8)] == [0] * 7
        assert not ctx.get(dut.s_axil_bvalid)

    simulate(dut, testbench)


def test_r_response_is_held_under_back_pressure_while_inputs_change():
    dut = AxiLiteRegisterFile(example_map())

    def count_up(ctx, cycle):
        ctx.set(dut.status_count, 100 + cycle)

    async def testbench(ctx):
        events, log = await transfer(ctx, dut, read=0x04, ar_at=2, rready_at=9,
                                     each_cycle=count_up)
        assert (events["ar"], events["rvalid"], events["r"]) == (2, 2 + dut.READ_LATENCY, 9)
        # The value of the second cycle after the address was accepted (the
        # first decodes it: count 104), held.
        held = {(log[c]["s_axil_rvalid"], log[c]["s_axil_rdata"], log[c]["s_axil_rresp"])
                for c in range(5, 10)}
        assert held == {(1, (104 << 16) | 0x200, RESP_OKAY)}
        assert [log[c]["s_axil_arready"] for c in range(3, 10)] == [0] * 7
        assert not ctx.get(dut.s_axil_rvalid)

    simulate(dut, testbench)


def test_read_and_write_run_concurrently():
    dut = AxiLiteRegisterFile(example_map())

    async def testbench(ctx):
        events, _ = await transfer(ctx, dut, write=(0x08, 0xfffffff0, 0xF), read=0x08)
        # Both accepted on the same edge: the write takes effect on the next
        # edge, the read samples on the one after (its address is decoded
        # first), so it sees the written value (bits 31..24 are not mapped).
        assert events["aw"] == events["w"] == events["ar"] == 0
        assert (events["rdata"], events["bresp"]) == (0x00fffff0, RESP_OKAY)
        assert await read(ctx, dut, 0x08) == (0x00fffff0, RESP_OKAY)

    simulate(dut, testbench)


def test_unmapped_addresses_answer_slverr_and_change_nothing():
    regmap = example_map()
    dut = AxiLiteRegisterFile(regmap, addr_width=8)

    async def testbench(ctx):
        before = outputs(ctx, dut, regmap)
        for address in (0x0c, 0x14, 0x1c, 0x20, 0x40, 0xfc, 0x0e):
            assert await write(ctx, dut, address, 0xffffffff) == RESP_SLVERR, hex(address)
            assert await read(ctx, dut, address) == (0, RESP_SLVERR), hex(address)
        assert outputs(ctx, dut, regmap) == before
        # Low address bits name a byte inside a mapped word: that word answers.
        assert await read(ctx, dut, 0x0b) == (0x00123450, RESP_OKAY)

    simulate(dut, testbench)


def test_write_strobes_select_bytes():
    dut = AxiLiteRegisterFile(example_map())

    async def testbench(ctx):
        # scale.value is register bits 23:4: bytes 0 and 2 written, byte 1 kept.
        assert await write(ctx, dut, 0x08, 0xffffffff, 0b0101) == RESP_OKAY
        assert ctx.get(dut.scale_value) == 0xff34f  # hand-checked from reset 0x12345
        assert await read(ctx, dut, 0x08) == (0x00ff34f0, RESP_OKAY)
        # threshold: only byte 1 (low[15:8]) and byte 3 (high).
        assert await write(ctx, dut, 0x10, 0x11223344, 0b1010) == RESP_OKAY
        assert (ctx.get(dut.threshold_low), ctx.get(dut.threshold_high)) == (0x33ef, 0x11)
        assert await write(ctx, dut, 0x10, 0, 0) == RESP_OKAY  # no byte enabled
        assert await read(ctx, dut, 0x10) == (0x110033ef, RESP_OKAY)

    simulate(dut, testbench)


def test_pulse_lasts_one_cycle_and_reads_zero():
    dut = AxiLiteRegisterFile(example_map())

    async def testbench(ctx):
        for data, strb, start, abort in ((1 << 8, 0xF, 1, 0), (1 << 31, 0xF, 0, 1),
                                         ((1 << 31) | (1 << 8), 0xF, 1, 1), (0, 0xF, 0, 0),
                                         (1 << 8, 0b1101, 0, 0), (1 << 31, 0b0111, 0, 0)):
            events, log = await transfer(ctx, dut, write=(0x00, data, strb), bready_at=3)
            for _ in range(3):
                log.append({"ctrl_start": ctx.get(dut.ctrl_start),
                            "ctrl_abort": ctx.get(dut.ctrl_abort)})
                await ctx.tick()
            for name, want in (("ctrl_start", start), ("ctrl_abort", abort)):
                high = [c for c, snap in enumerate(log) if snap[name]]
                assert high == ([events["bvalid"]] if want else []), (name, hex(data), high)
        assert await read(ctx, dut, 0x00) == (0, RESP_OKAY)  # last full write cleared rw bits

    simulate(dut, testbench)


def test_w1c_set_by_hardware_cleared_by_writing_one_set_wins():
    dut = AxiLiteRegisterFile(example_map())

    def set_done_in_cycle(when):
        def drive(ctx, cycle):
            ctx.set(dut.status_done_set, cycle == when)
        return drive

    async def testbench(ctx):
        assert await write(ctx, dut, 0x04, 1 << 9) == RESP_OKAY  # clear error (reset 1)
        assert (ctx.get(dut.status_done), ctx.get(dut.status_error)) == (0, 0)
        ctx.set(dut.status_done_set, 1)
        await ctx.tick()
        ctx.set(dut.status_done_set, 0)
        await ctx.tick()
        assert ctx.get(dut.status_done) == 1
        assert await read(ctx, dut, 0x04) == (1 << 8, RESP_OKAY)
        await write(ctx, dut, 0x04, ~(1 << 8) & 0xffffffff)  # zeros leave it set
        await write(ctx, dut, 0x04, 1 << 8, strb=0b1101)     # byte 1 not enabled
        assert ctx.get(dut.status_done) == 1
        # The write takes effect on the edge ending cycle 1, the set lands there too.
        await write(ctx, dut, 0x04, 1 << 8, each_cycle=set_done_in_cycle(1))
        assert ctx.get(dut.status_done) == 1, "set must win over a clear on the same edge"
        await write(ctx, dut, 0x04, 1 << 8, each_cycle=set_done_in_cycle(2))
        ctx.set(dut.status_done_set, 0)  # it was still high from the last cycle
        assert ctx.get(dut.status_done) == 1, "a set after the clear sets it again"
        await write(ctx, dut, 0x04, 1 << 8)
        assert ctx.get(dut.status_done) == 0
        assert await read(ctx, dut, 0x04) == (0, RESP_OKAY)
        # The hardware clear input acts like a write of 1; set still wins over it.
        ctx.set(dut.status_done_set, 1)
        await ctx.tick()
        ctx.set(dut.status_done_set, 0)
        ctx.set(dut.status_done_clear, 1)
        await ctx.tick()
        assert ctx.get(dut.status_done) == 0, "the clear input clears"
        ctx.set(dut.status_done_set, 1)
        await ctx.tick()
        ctx.set(dut.status_done_set, 0)
        ctx.set(dut.status_done_clear, 0)
        assert ctx.get(dut.status_done) == 1, "set wins over the clear input"

    simulate(dut, testbench)


def test_irq_is_flag_and_enable_in_the_same_cycle_from_a_register():
    """irq follows status.done & ctrl.enable cycle by cycle, whatever changes them."""
    dut = AxiLiteRegisterFile(example_map(), interrupt=("status.done", "ctrl.enable"))
    rng = np.random.default_rng(4)
    checked = []

    def random_hardware(ctx, cycle):
        ctx.set(dut.status_done_set, rng.random() < 0.1)
        ctx.set(dut.status_done_clear, rng.random() < 0.1)
        level = (ctx.get(dut.status_done), ctx.get(dut.ctrl_enable))
        checked.append((ctx.get(dut.irq), level[0] & level[1]))

    async def testbench(ctx):
        for _ in range(60):
            address, data = [(0x00, int(rng.integers(2))), (0x04, 1 << 8),
                             (0x04, 0)][int(rng.integers(3))]
            await write(ctx, dut, address, data, each_cycle=random_hardware)
            for cycle in range(int(rng.integers(3))):
                random_hardware(ctx, cycle)
                await ctx.tick()

    simulate(dut, testbench)
    assert all(irq == want for irq, want in checked)
    assert {want for _, want in checked} == {0, 1}


@pytest.mark.parametrize("interrupt, phrase", [
    (("status.done",), "interrupt must be"),
    (("status.busy", "ctrl.enable"), "status.busy must be a 1-bit w1c field"),
    (("status.done", "ctrl.mode"), "ctrl.mode must be a 1-bit rw field"),
    (("status.done", "ctrl.nothing"), "ctrl.nothing must be a 1-bit rw field"),
])
def test_interrupt_must_name_a_w1c_flag_and_an_rw_enable(interrupt, phrase):
    with pytest.raises(ValueError, match=phrase):
        AxiLiteRegisterFile(example_map(), interrupt=interrupt)


@pytest.mark.parametrize("data_width", [32, 64])
def test_outputs_do_not_depend_combinationally_on_inputs(data_width):
    """Every output is a register: changing any input within a cycle changes no output."""
    regmap = example_map()
    dut = AxiLiteRegisterFile(regmap, data_width=data_width)
    rng = np.random.default_rng(7)
    inputs = [getattr(dut, name) for name, member in dut.signature.members.items()
              if member.flow.name == "In"]
    outs = [getattr(dut, name) for name, member in dut.signature.members.items()
            if member.flow.name == "Out"]
    seen = set()

    async def testbench(ctx):
        for _ in range(300):
            values = []
            for _ in range(2):
                for port in inputs:
                    raw = int.from_bytes(rng.bytes((len(port) + 7) // 8), "little")
                    ctx.set(port, raw & ((1 << len(port)) - 1))
                values.append([ctx.get(port) for port in outs])
            assert values[0] == values[1]
            seen.update(name for name in AXI_OUTPUTS if ctx.get(getattr(dut, name)))
            await ctx.tick()

    simulate(dut, testbench)
    assert seen >= {"s_axil_bvalid", "s_axil_rvalid"}, seen  # the traffic did something


def test_64_bit_bus_carries_two_registers_per_word():
    regmap = example_map()
    dut = AxiLiteRegisterFile(regmap, data_width=64)

    async def testbench(ctx):
        # Word 0: ctrl (bits 31:0) and status (bits 63:32).
        assert await read(ctx, dut, 0x04) == (0x200 << 32 | 0x4, RESP_OKAY)
        # Write ctrl.enable/mode and clear status.error; strobe lane 1 byte 1 only.
        assert await write(ctx, dut, 0x00, (1 << 41) | 0b1111, 0b0010_0001) == RESP_OKAY
        assert (ctx.get(dut.ctrl_enable), ctx.get(dut.ctrl_mode), ctx.get(dut.status_error)) \
            == (1, 7, 0)
        # Word 1: scale and the hole at 0x0c (reads 0, still OKAY).
        assert await write(ctx, dut, 0x08, (0xfffff << 36) | 0xabcde0, 0xFF) == RESP_OKAY
        assert await read(ctx, dut, 0x0c) == (0xabcde0, RESP_OKAY)
        # Word 3 (0x18/0x1c) holds no register.
        assert await read(ctx, dut, 0x18) == (0, RESP_SLVERR)
        assert await write(ctx, dut, 0x1c, 1) == RESP_SLVERR

    simulate(dut, testbench)


def single_register_map():
    """One register at offset 0: the address has no word bits at all."""
    return RegisterMap("single", [Register("only", 0, [Field("value", 8, 8, "rw", reset=3)])])


LINT_CASES = {
    "32": (example_map, {}), "64": (example_map, {"data_width": 64}),
    "addr12": (example_map, {"addr_width": 12}), "single": (single_register_map, {}),
    "single64": (single_register_map, {"data_width": 64}),
}


@pytest.mark.parametrize("case", list(LINT_CASES))
def test_verilog_is_lint_clean_and_latch_free(case, tmp_path):
    make, options = LINT_CASES[case]
    path = tmp_path / "axi_lite_registers.v"
    path.write_text(generate_verilog(AxiLiteRegisterFile(make(), **options),
                                     "axi_lite_registers"))
    assert verilator_lint(path, "axi_lite_registers") == []
    assert yosys_latches(AxiLiteRegisterFile(make(), **options), "axi_lite_registers") == []


@pytest.mark.parametrize("data_width", [32, 64])
def test_single_register_map_answers_every_address(data_width):
    dut = AxiLiteRegisterFile(single_register_map(), data_width=data_width)
    assert len(dut.s_axil_awaddr) == data_width.bit_length() - 4  # 2 or 3: one bus word

    async def testbench(ctx):
        assert await read(ctx, dut, 0) == (0x300, RESP_OKAY)
        assert await write(ctx, dut, 3, 0xabcdef, strb=0b0010) == RESP_OKAY
        assert ctx.get(dut.only_value) == 0xcd
        assert await read(ctx, dut, 1) == (0xcd00, RESP_OKAY)

    simulate(dut, testbench)


def test_set_port_name_follows_field_port_name():
    assert field_port_name("Status", "Done") == "status_done"
    assert set_port_name("Status", "Done") == "status_done_set"


@pytest.mark.cocotb
@pytest.mark.parametrize("seed", [1, 2])
def test_axi_lite_cocotb_regression(seed, request):
    from convaccel.sim.build import build, run

    built = build("axi_lite_registers", PRESETS["tiny"],
                  component=AxiLiteRegisterFile(example_map()))
    run(built, "axi_lite_registers_bench", seed=seed, pytest_id=request.node.nodeid,
        name=f"axi_lite_registers-seed{seed}")
