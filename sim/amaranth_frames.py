"""Amaranth-simulator driver for frame-based stream units (fast unit tests).

The window generator and the pooling unit share a control interface:
``shape`` + ``job.start``, an input stream ``i`` and an output stream ``o`` of
``{"data", "last"}`` beats, ``job.done``/``job.busy`` and a ``job.error`` layout.
:func:`run_frames` streams frames through such a unit in the Amaranth
simulator with seeded random input gaps and output back-pressure.
:func:`drive_streams` is its inner loop, for any unit with input streams,
one output stream and a ``job`` port (the systolic engine, the conv core).
:func:`run_testbench` runs one async testbench against a unit with a clock.
:func:`pass_through` sends beats through a one-stream stage (``i`` to ``o``);
:func:`ports_follow_inputs` tells whether such a stage's outputs and ``i.ready``
change within a cycle when its inputs do.
"""

from __future__ import annotations

from amaranth.sim import Simulator

__all__ = ["drive_streams", "pass_through", "ports_follow_inputs", "run_frames",
           "run_testbench"]

ERROR_BITS = ("config", "short_frame", "long_frame")


def pass_through(dut, beats, *, rng, idle, stall, probe=None):
    """Send ``beats`` from ``dut.i`` to ``dut.o`` with seeded random input gaps
    (probability ``idle``) and output stalls (``stall``); return what left ``o``.

    ``probe(ctx)``, if given, runs each cycle after the inputs are set. Fails
    if not every beat arrived within ``20 * len(beats) + 50`` cycles.
    """
    received = []

    async def testbench(ctx, dut):
        sent = 0
        for _ in range(20 * len(beats) + 50):
            offer = sent < len(beats) and rng.random() >= idle
            ctx.set(dut.i.valid, offer)
            if offer:
                ctx.set(dut.i.payload, beats[sent])
            ctx.set(dut.o.ready, rng.random() >= stall)
            if probe:
                probe(ctx)
            took = offer and ctx.get(dut.i.ready)
            if ctx.get(dut.o.valid) and ctx.get(dut.o.ready):
                received.append(ctx.get(dut.o.payload))
            await ctx.tick()
            sent += bool(took)
            if len(received) == len(beats):
                return
        raise AssertionError(f"{len(received)} of {len(beats)} beats arrived")

    run_testbench(dut, testbench)
    return received


def ports_follow_inputs(dut, rng, beats=100) -> bool:
    """Whether ``o.valid``, ``o.payload`` or ``i.ready`` of an 8-bit stage ever
    change within a cycle when ``o.ready``, ``i.valid`` and ``i.payload`` are
    flipped (then put back), over ``beats`` random beats with gaps and stalls.
    Also fails if the beats do not all arrive once and in order."""
    changed = []

    def flip(ctx, sign):
        ctx.set(dut.o.ready, 1 - ctx.get(dut.o.ready))
        ctx.set(dut.i.valid, 1 - ctx.get(dut.i.valid))
        ctx.set(dut.i.payload, (ctx.get(dut.i.payload) + sign) % 256)

    def probe(ctx):
        before = (ctx.get(dut.o.valid), ctx.get(dut.o.payload), ctx.get(dut.i.ready))
        flip(ctx, 1)
        after = (ctx.get(dut.o.valid), ctx.get(dut.o.payload), ctx.get(dut.i.ready))
        changed.append(before != after)
        flip(ctx, -1)

    sent = [int(v) for v in rng.integers(0, 256, beats)]
    assert pass_through(dut, sent, rng=rng, idle=0.3, stall=0.3, probe=probe) == sent
    return any(changed)


def run_testbench(dut, testbench):
    """Simulate ``dut`` on a clock with ``await testbench(ctx, dut)`` as its testbench."""
    sim = Simulator(dut)
    sim.add_clock(1e-8)

    async def bench(ctx):
        await testbench(ctx, dut)

    sim.add_testbench(bench)
    sim.run()


async def drive_streams(ctx, dut, inputs, output, take, *, rng, idle, stall, max_cycles):
    """Stream one job through ``dut`` inside an Amaranth testbench.

    Each cycle every ``(stream, beats)`` of ``inputs`` offers its next beat
    unless the seeded ``rng`` draws a gap (probability ``idle``), and
    ``output`` is ready unless it draws a stall (probability ``stall``);
    ``take(payload)`` gets every output beat. Stops after the clock edge at
    which ``dut.job.done`` is set and ``dut.job.busy`` clear; input ``valid`` is then
    dropped. Returns the beats accepted per input and the cycles taken.
    """
    sent, taken = [0] * len(inputs), 0
    for cycle in range(max_cycles):
        offers = [sent[k] < len(beats) and rng.random() >= idle
                  for k, (_, beats) in enumerate(inputs)]
        for k, ((port, beats), offer) in enumerate(zip(inputs, offers)):
            ctx.set(port.valid, offer)
            if offer:
                ctx.set(port.payload, beats[sent[k]])
        ctx.set(output.ready, rng.random() >= stall)
        took = [offer and ctx.get(port.ready) for offer, (port, _) in zip(offers, inputs)]
        if ctx.get(output.valid) and ctx.get(output.ready):
            take(ctx.get(output.payload))
            taken += 1
        await ctx.tick()
        sent = [count + bool(t) for count, t in zip(sent, took)]
        if ctx.get(dut.job.done) and not ctx.get(dut.job.busy):
            for port, _ in inputs:
                ctx.set(port.valid, 0)
            return sent, cycle + 1
    raise AssertionError(f"timeout after {max_cycles} cycles, {taken} beats out")


def run_frames(dut, frames, *, rng, idle=0.3, stall=0.3, max_cycles=100_000) -> list[dict]:
    """Run ``(shape_fields, input_beats)`` frames back to back through ``dut``.

    A frame may have a third item, ``{port name: value}`` of other inputs
    set with ``shape`` before ``start`` (e.g. the window generator's
    ``zero_point``). Returns, per frame, ``out`` (the output beats), ``sent`` (input beats
    accepted), ``cycles`` and ``error`` (dict of the error bits).
    """
    results = []

    async def testbench(ctx):
        for fields, beats, *settings in frames:
            for name, value in (settings[0] if settings else {}).items():
                ctx.set(getattr(dut, name), value)
            ctx.set(dut.shape, fields)
            ctx.set(dut.job.start, 1)
            await ctx.tick()
            ctx.set(dut.job.start, 0)
            out = []
            (sent,), cycles = await drive_streams(
                ctx, dut, [(dut.i, beats)], dut.o,
                lambda beat: out.append({"data": [int(v) for v in beat.data],
                                         "last": int(beat.last)}),
                rng=rng, idle=idle, stall=stall, max_cycles=max_cycles)
            error = ctx.get(dut.job.error)
            results.append({"out": out, "sent": sent, "cycles": cycles,
                            "error": {name: int(getattr(error, name)) for name in ERROR_BITS}})

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return results
