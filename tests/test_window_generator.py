"""Window generator: Amaranth-simulator tests against the golden windows."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from convaccel.hw import PRESETS
from convaccel.hw.window_generator import WindowGenerator
from convaccel.sim.window_streams import ConvShape, pixel_beats, window_beats


def run_frames(config, frames, *, rng, idle=0.3, stall=0.3, max_cycles=100_000):
    """Stream (shape, x, input beats) frames back to back; return outputs, flags per frame."""
    dut = WindowGenerator(config)
    results = []

    async def testbench(ctx):
        for shape, beats in frames:
            ctx.set(dut.shape, shape.port_fields())
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
                            "error": {k: int(getattr(error, k)) for k in
                                      ("config", "short_frame", "long_frame")}})
            ctx.set(dut.i.valid, 0)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return results


NO_ERROR = {"config": 0, "short_frame": 0, "long_frame": 0}

SHAPES = [
    ConvShape(3, 5, 6, kernel=(3, 3), padding=(1, 1, 1, 1)),
    ConvShape(2, 6, 5, kernel=(1, 1)),
    ConvShape(4, 7, 8, kernel=(2, 3), stride=(2, 3), padding=(0, 1, 2, 0)),
    ConvShape(1, 9, 9, kernel=(3, 2), dilation=(2, 3), padding=(2, 1, 0, 2)),
    ConvShape(3, 1, 7, kernel=(1, 3), padding=(0, 0, 1, 1)),
    ConvShape(2, 8, 1, kernel=(3, 1), stride=(4, 1)),
    ConvShape(1, 4, 4, kernel=(3, 3), padding=(1, 1, 1, 1), stride=(4, 4)),
    ConvShape(2, 3, 3, kernel=(3, 3)),  # kernel equal to the image
]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s.kernel}-{s.stride}-{s.dilation}-{s.padding}-{s.channels}x{s.height}x{s.width}")
def test_windows_match_golden(shape):
    config = PRESETS["tiny"].replace(array_block=3)
    rng = np.random.default_rng(shape.height * 31 + shape.width)
    x = rng.integers(-128, 128, (shape.channels, shape.height, shape.width))
    (result,) = run_frames(config, [(shape, pixel_beats(config, x))], rng=rng)
    assert result["error"] == NO_ERROR
    expected = window_beats(config, shape, x)
    assert len(result["out"]) == len(expected)
    for index, (want, got) in enumerate(zip(expected, result["out"])):
        assert got == want, f"beat {index}: expected {want}, got {got}"
