"""Grouped-convolution tile map: reference function and the GroupTileMap unit."""

import itertools

import numpy as np
import pytest
from amaranth.sim import Simulator

from convaccel.hw import PRESETS
from convaccel.hw.group_tiles import GroupTileMap, group_tile_ranges


def brute_force_tiles(c, m, groups, rows, cols):
    """Per chunk, the set of output tiles holding a weight of the chunk's channels."""
    c_per, m_per = c // groups, m // groups
    tiles = []
    for chunk in range(-(-c // rows)):
        channels = range(chunk * rows, min(c, chunk * rows + rows))
        tiles.append({o // cols for ch in channels for o in range(m) if o // m_per == ch // c_per})
    return tiles


SHAPES = [(c, m, g, rows, cols)
          for c, m, rows, cols in itertools.product((1, 3, 4, 6, 8, 12), (1, 2, 4, 6, 8, 12),
                                                    (1, 2, 3, 4), (1, 2, 3, 4))
          for g in range(1, c + 1) if c % g == 0 and m % g == 0]


def test_reference_ranges_cover_exactly_the_non_zero_tiles():
    for c, m, g, rows, cols in SHAPES:
        ranges = group_tile_ranges(c, m, g, rows, cols)
        expected = brute_force_tiles(c, m, g, rows, cols)
        if g == 1:
            assert ranges == [(0, (m - 1) // cols)]
            continue
        assert [set(range(lo, hi + 1)) for lo, hi in ranges] == expected, (c, m, g, rows, cols)


@pytest.mark.parametrize("c, m, groups", [(4, 6, 4), (6, 4, 4), (4, 4, 0)])
def test_reference_rejects_groups_that_do_not_divide(c, m, groups):
    with pytest.raises(ValueError, match="groups"):
        group_tile_ranges(c, m, groups, 2, 2)


def run_map(config, cases):
    """Run ``(C, M, G)`` cases through GroupTileMap; return (ready, error, chunks, tiles, cycles)."""
    dut = GroupTileMap(config)
    results = []

    async def testbench(ctx):
        for c, m, g in cases:
            ctx.set(dut.in_channels, c)
            ctx.set(dut.out_channels, m)
            ctx.set(dut.groups, g)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            cycles = 1
            while ctx.get(dut.busy):
                await ctx.tick()
                cycles += 1
                assert cycles < 10_000, "GroupTileMap did not finish"
            tiles = [(int(ctx.get(dut.tiles[k].lo)), int(ctx.get(dut.tiles[k].hi)))
                     for k in range(dut.chunk_max)]
            results.append((ctx.get(dut.ready), ctx.get(dut.error), ctx.get(dut.chunks),
                            tiles, cycles))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return results


@pytest.mark.parametrize("rows, cols", [(2, 2), (2, 3), (3, 2), (1, 4), (4, 1)])
def test_hardware_map_matches_reference(rows, cols):
    config = PRESETS["tiny"].replace(array_rows=rows, array_cols=cols, max_in_channels=12,
                                     max_out_channels=12)
    cases = [(c, m, g) for c, m, g, r, k in SHAPES if (r, k) == (rows, cols)]
    rng = np.random.default_rng(rows * 10 + cols)
    cases = [cases[i] for i in rng.permutation(len(cases))]   # back to back, any order
    for (c, m, g), (ready, error, chunks, tiles, cycles) in zip(cases, run_map(config, cases)):
        ranges = group_tile_ranges(c, m, g, rows, cols)
        assert ready and not error, (c, m, g)
        assert chunks == len(ranges), (c, m, g)
        assert tiles[:len(ranges)] == ranges, (c, m, g)
        assert cycles <= max(c, m) // g + max(c, m) + g + 4, (c, m, g, cycles)


def test_hardware_map_flags_bad_groups_and_recovers():
    config = PRESETS["tiny"].replace(max_in_channels=12, max_out_channels=12)
    cases = [(4, 6, 4), (6, 4, 4), (4, 4, 0), (3, 3, 12), (0, 4, 2), (4, 0, 1), (4, 4, 2)]
    results = run_map(config, cases)
    for case, (ready, error, *_rest) in zip(cases[:4], results[:4]):
        assert error and not ready, case
    # Zero channels are reported by the other units; the map only finishes.
    assert all(ready and not error for ready, error, *_rest in results[4:6])
    ready, error, chunks, tiles, _ = results[-1]
    assert ready and not error and tiles[:chunks] == group_tile_ranges(4, 4, 2, 2, 2)
