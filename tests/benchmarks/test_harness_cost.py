"""The harness's own cost per step: baseline backend, zero simulated latency.

Run with `python -m pytest tests/benchmarks --benchmark-enable`; the figure is
`steps_per_s` / `per_step_us` in the benchmark's extra info. By default (benchmarks
disabled) each benchmark runs once, as a test of its behaviour.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backends.base import BackendEnv
from backends.baseline import BaselineBackend
from harness.oracle import run_ids
from harness.platform.local import LocalPlatform
from harness.runner import drive_load, service_specs
from harness.scenario import load_scenario
from tests.conftest import ScenarioFactory

pytestmark = pytest.mark.integration

RUNS_PER_ROUND = 40
STEPS_PER_RUN = 10


@pytest.fixture
def baseline_stack(write_scenario: ScenarioFactory, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Services and one baseline worker, started once; each round starts fresh runs."""
    path = write_scenario(
        runs=RUNS_PER_ROUND,
        steps=STEPS_PER_RUN,
        load={"concurrency": 16},
        thought_bytes=256,
        verify={"failure_probability": 0.0},
    )
    scenario = load_scenario(path)
    with LocalPlatform(tmp_path) as platform:
        started = {s.role: platform.start(s) for s in service_specs(scenario, path, tmp_path)}
        backend = BaselineBackend()
        env = BackendEnv(
            scenario=scenario,
            scenario_path=path,
            bench_id="bench",
            llm_url=f"http://127.0.0.1:{started['llm'].spec.port}/v1",
            tools_url=f"http://127.0.0.1:{started['tools'].spec.port}",
            workdir=tmp_path,
            measurements_dir=tmp_path / "measurements",
        )
        for spec in backend.components(env):
            platform.start(spec)
        yield {"scenario": scenario, "backend": backend, "env": env}


def test_harness_cost_per_step_with_the_baseline(
    benchmark: Any, baseline_stack: dict[str, Any]
) -> None:
    scenario, backend, env = (
        baseline_stack["scenario"],
        baseline_stack["backend"],
        baseline_stack["env"],
    )
    rounds = itertools.count()
    finished: list[bool] = []

    async def one_round() -> None:
        ids = run_ids(scenario, first=next(rounds) * RUNS_PER_ROUND)
        await backend.setup(env)
        try:
            timings = await drive_load(scenario, backend, lambda _: None, ids)
        finally:
            await backend.teardown()
        finished.extend(t.finished_in_time for t in timings)

    benchmark.pedantic(lambda: asyncio.run(one_round()), rounds=5, iterations=1, warmup_rounds=1)

    assert finished and all(finished)
    steps = RUNS_PER_ROUND * STEPS_PER_RUN
    if benchmark.stats is not None:  # None when benchmarks are disabled
        mean_s = benchmark.stats.stats.mean
        benchmark.extra_info["steps_per_round"] = steps
        benchmark.extra_info["steps_per_s"] = round(steps / mean_s, 1)
        benchmark.extra_info["per_step_us"] = round(mean_s / steps * 1e6, 1)
