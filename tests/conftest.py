"""Shared fixtures: run a cocotb bench on a cached Verilator build."""

import pytest

from convaccel.sim.regression import REGRESSION_CONFIGS, regression_seeds


def pytest_generate_tests(metafunc):
    # Any test taking `sim_config` / `sim_seed` runs over the regression matrix.
    if "sim_config" in metafunc.fixturenames:
        metafunc.parametrize("sim_config", list(REGRESSION_CONFIGS))
    if "sim_seed" in metafunc.fixturenames:
        metafunc.parametrize("sim_seed", regression_seeds())


@pytest.fixture
def run_bench(request):
    """``run_bench(design, config, seed)``: build once, run the design's bench."""
    from convaccel.sim.build import build, run

    def runner(design, config, seed, **kwargs):
        built = build(design, config)
        return run(built, f"{design}_bench", seed=seed, pytest_id=request.node.nodeid,
                   name=f"{design}-{request.node.name}".replace("[", "-").replace("]", ""),
                   **kwargs)

    return runner
