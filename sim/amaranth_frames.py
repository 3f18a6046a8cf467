"""Amaranth-simulator driver for frame-based stream units (fast unit tests).

The window generator and the pooling unit share a control interface:
``shape`` + ``start``, an input stream ``i`` and an output stream ``o`` of
``{"data", "last"}`` beats, ``done``/``busy`` and an ``error`` layout.
:func:`run_frames` streams frames through such a unit in the Amaranth
simulator with seeded random input gaps and output back-pressure.
"""

from __future__ import annotations

from amaranth.sim import Simulator

__all__ = ["run_frames"]

ERROR_BITS = ("config", "short_frame", "long_frame")


def run_frames(dut, frames, *, rng, idle=0.3, stall=0.3, max_cycles=100_000) -> list[dict]:
    """Run ``(shape_fields, input_beats)`` frames back to back through ``dut``.

    Returns, per frame, ``out`` (the output beats), ``sent`` (input beats
    accepted), ``cycles`` and ``error`` (dict of the error bits).
    """
    results = []

    async def testbench(ctx):
        for fields, beats in frames:
            ctx.set(dut.shape, fields)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            out, sent, cycles = [], 0, 0
            while cycles < max_cycles:
                offer = sent < len(beats) and rng.random() >= idle
                ctx.set(dut.i.valid, offer)
                if offer:
                    ctx.set(dut.i.payload, beats[sent])
                ctx.set(dut.o.ready, rng.random() >= stall)
                took = offer and ctx.get(dut.i.ready)
                if ctx.get(dut.o.valid) and ctx.get(dut.o.ready):
                    beat = ctx.get(dut.o.payload)
                    out.append({"data": [int(v) for v in beat.data], "last": int(beat.last)})
                await ctx.tick()
                cycles += 1
                sent += bool(took)
                if ctx.get(dut.done) and not ctx.get(dut.busy):
                    break
            else:
                raise AssertionError(f"timeout after {max_cycles} cycles, {len(out)} beats out")
            error = ctx.get(dut.error)
            results.append({"out": out, "sent": sent, "cycles": cycles,
                            "error": {name: int(getattr(error, name)) for name in ERROR_BITS}})
            ctx.set(dut.i.valid, 0)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return results
