"""The JobControl signature and the job port of every block that runs jobs."""

import pytest
from amaranth.hdl import Module, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from convaccel.hw import PRESETS
from convaccel.hw.conv_core import ConvCore, core_error_layout
from convaccel.hw.job_control import JobControl
from convaccel.hw.pool_unit import PoolUnit
from convaccel.hw.systolic_engine import SystolicEngine
from convaccel.hw.tile_sequencer import TileSequencer
from convaccel.hw.window_generator import WindowGenerator, window_error_layout
from convaccel.sim.amaranth_frames import run_testbench

TINY = PRESETS["tiny"]


def test_members_are_the_controllers_side():
    assert JobControl(3).members == wiring.Signature({
        "start": Out(1), "cancel": Out(1), "busy": In(1), "done": In(1), "error": In(unsigned(3)),
    }).members
    # A block declares In(JobControl(...)): start and cancel come in.
    block_side = JobControl(window_error_layout()).flip().members
    assert {name: block_side[name].flow for name in block_side} == {
        "start": In, "cancel": In, "busy": Out, "done": Out, "error": Out}
    assert block_side["error"].shape == window_error_layout()


def test_equality_and_repr():
    assert JobControl() == JobControl(1) == JobControl(unsigned(1))
    assert JobControl(window_error_layout()) == JobControl(window_error_layout())
    assert JobControl() != JobControl(2)
    assert JobControl() != JobControl(signed(1))
    assert JobControl(window_error_layout()) != JobControl(core_error_layout())
    # Same members, but not the same named signature.
    assert JobControl() != wiring.Signature(JobControl().members)
    assert JobControl().error_shape == unsigned(1)
    assert repr(JobControl()) == "JobControl(unsigned(1))"
    assert repr(JobControl(window_error_layout())) == (
        "JobControl(StructLayout({'config': 1, 'short_frame': 1, 'long_frame': 1}))")


@pytest.mark.parametrize("bad", ["wide", -1, None, 0, unsigned(0)])
def test_a_bad_error_shape_is_refused_by_name(bad):
    with pytest.raises(ValueError, match=r"JobControl error_shape must be .*got "):
        JobControl(bad)


BLOCKS = {
    "ConvCore": (lambda: ConvCore(TINY), core_error_layout()),
    "WindowGenerator": (lambda: WindowGenerator(TINY), window_error_layout()),
    "SystolicEngine": (lambda: SystolicEngine(TINY), 1),
    "TileSequencer": (lambda: TileSequencer(TINY, writeback=6), 1),
    "PoolUnit": (lambda: PoolUnit(TINY), window_error_layout()),
}


@pytest.mark.parametrize("name", list(BLOCKS))
def test_each_job_running_block_has_a_job_port(name):
    make, error_shape = BLOCKS[name]
    members = make().signature.members
    assert members["job"].flow == In
    assert members["job"].signature.flip() == JobControl(error_shape)
    assert not {"start", "cancel", "busy", "done", "error"} & set(members)


def test_a_controller_connects_to_a_block_of_the_same_error_shape():
    class Controller(wiring.Component):
        def __init__(self, error_shape):
            super().__init__({"job": Out(JobControl(error_shape))})

        def elaborate(self, platform):
            return Module()

    block = WindowGenerator(TINY)
    wiring.connect(Module(), Controller(window_error_layout()).job, block.job)
    with pytest.raises(wiring.ConnectionError):
        wiring.connect(Module(), Controller(1).job, block.job)


def test_tile_sequencer_is_busy_from_start_to_its_last_issue():
    dut = TileSequencer(TINY, writeback=6)
    seen = []

    async def testbench(ctx, dut):
        for name in ("n_vectors", "row_length", "k_terms", "m_outputs", "chunks",
                     "first_block"):
            ctx.set(getattr(dut, name), 1)
        ctx.set(dut.job.start, 1)
        await ctx.tick()
        ctx.set(dut.job.start, 0)
        seen.append((ctx.get(dut.job.busy), ctx.get(dut.job.done)))
        ctx.set(dut.issue, 1)                # the problem's only vector
        await ctx.tick()
        ctx.set(dut.issue, 0)
        seen.append((ctx.get(dut.job.busy), ctx.get(dut.job.done)))

    run_testbench(dut, testbench)
    assert seen == [(1, 0), (0, 1)]
    assert dut.job.error.shape() == unsigned(1)
