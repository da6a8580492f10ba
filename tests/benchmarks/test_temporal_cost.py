"""Temporal's cost per step against the baseline, and its throughput with 1, 8 and 32
runs in flight, on the embedded-style dev server (SQLite), at zero simulated latency.

At zero latency a step's time is orchestration: for Temporal, three activity round
trips (reason, act, verify) and the commit local activity through the server; for
the baseline, three HTTP calls and a list append.

Run with `python -m pytest tests/benchmarks/test_temporal_cost.py --benchmark-enable`.
Figures are in each benchmark's extra info: `steps_per_s` (throughput), `per_step_ms`
(wall time per step and run in flight) and `overhead_p50_ms` / `overhead_p99_ms`
(step time minus time inside the LLM and tool services, from the measurement rows).
By default (benchmarks disabled) each case runs once, as a test of its behaviour.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from backends.base import load_backend
from harness.evaluate import step_table
from harness.measure import read_rows
from harness.oracle import run_ids
from harness.platform.local import LocalPlatform
from harness.runner import drive_load
from tests.backends.temporal.support import backend_env, dev_server
from tests.conftest import ScenarioFactory

pytestmark = pytest.mark.integration

STEPS_PER_RUN = 5
ROUNDS = 3


@pytest.fixture(scope="module")
def temporal_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with dev_server(tmp_path_factory.mktemp("temporal-cost")) as server:
        yield server.address


@pytest.mark.parametrize("concurrency", [1, 8, pytest.param(32, marks=pytest.mark.slow)])
@pytest.mark.parametrize("backend_name", ["baseline", "temporal"])
def test_cost_per_step(
    benchmark: Any,
    write_scenario: ScenarioFactory,
    tmp_path: Path,
    temporal_address: str,
    backend_name: str,
    concurrency: int,
) -> None:
    runs = 2 * concurrency
    path = write_scenario(
        runs=runs,
        steps=STEPS_PER_RUN,
        load={"concurrency": concurrency},
        workers=1,
        thought_bytes=256,
        verify={"failure_probability": 0.0},
        deadline_s=300,  # a loaded machine must not turn a benchmark into a failure
    )
    loop = asyncio.new_event_loop()
    walls: list[float] = []
    finished: list[bool] = []
    with LocalPlatform(tmp_path) as platform:
        env = backend_env(path, tmp_path, platform, temporal_address)
        backend = load_backend(backend_name)
        for spec in backend.components(env):
            platform.start(spec)
        loop.run_until_complete(backend.setup(env))
        rounds = itertools.count()

        def one_round() -> None:
            ids = run_ids(env.scenario, first=next(rounds) * runs)
            began = time.perf_counter()
            timings = loop.run_until_complete(
                drive_load(env.scenario, backend, lambda _: None, ids)
            )
            walls.append(time.perf_counter() - began)
            finished.extend(t.finished_in_time for t in timings)

        try:
            benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1, warmup_rounds=1)
        finally:
            loop.run_until_complete(backend.teardown())
            loop.close()
        per_step = step_table(pd.DataFrame(read_rows(env.measurements_dir)))

    assert finished and all(finished)
    steps = runs * STEPS_PER_RUN
    assert len(per_step) == len(walls) * steps  # every step of every round committed
    wall = sum(walls) / len(walls)
    benchmark.extra_info.update(
        {
            "backend": backend_name,
            "concurrency": concurrency,
            "steps_per_round": steps,
            "steps_per_s": round(steps / wall, 1),
            "per_step_ms": round(wall / steps * concurrency * 1000, 2),
            "step_p50_ms": round(float(per_step["step_ms"].median()), 2),
            "overhead_p50_ms": round(float(per_step["overhead_ms"].median()), 2),
            "overhead_p99_ms": round(float(per_step["overhead_ms"].quantile(0.99)), 2),
        }
    )
