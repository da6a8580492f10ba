"""What durability costs per step on the Postgres state stores, against the raw floor.

On ONE embedded Postgres (fsync=on, synchronous_commit=on), with zero simulated LLM
and tool latency and 8 concurrent runs, this measures:
- the raw floor: one single-row INSERT committed with synchronous_commit=on (alone,
  and with 8 clients committing at once);
- one pgstore phase commit (the fenced event append) alone on one connection;
- the baseline (no durability), pgstore and pgstore-naive, each with 1 and with 2
  worker processes: steps/s, the per-step orchestration overhead, and for the stores
  the time of each durable commit as the worker saw it.

Run with `python -m pytest tests/benchmarks/test_pgstore_cost.py --benchmark-enable -s`;
the figures are in each benchmark's extra info and printed. Targets from the issue
(reported, not asserted): pgstore at most 3x the floor per committed phase, and at
least 300 durable RAV steps/s with 8 concurrent runs. By default (benchmarks
disabled) each benchmark runs once, as a test of its behaviour.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg
import pytest

from backends.base import Backend, BackendEnv, ExternalServices, load_backend
from backends.pgstore import store
from backends.pgstore.fold import Event
from harness.evaluate import step_table
from harness.measure import read_rows
from harness.oracle import run_ids
from harness.platform.local import LocalPlatform
from harness.postgres import EmbeddedServer, with_search_path
from harness.runner import drive_load, service_specs
from harness.scenario import Scenario, load_scenario
from tests.conftest import ScenarioFactory

pytestmark = pytest.mark.integration

CONCURRENT_RUNS = 8
RUNS_PER_ROUND = 40
STEPS_PER_RUN = 10
ROUNDS = 5
FLOOR_INSERTS = 400
TARGET_FLOOR_MULTIPLE = 3.0
TARGET_STEPS_PER_S = 300.0
MEASURED: dict[str, dict[str, float]] = {}  # backend -> figures, for the comparisons


@pytest.fixture(scope="module")
def server(pg_server: EmbeddedServer) -> EmbeddedServer:
    return pg_server


def commit_floor_ms(dsn: str) -> tuple[float, float]:
    """Mean and median latency of one single-row INSERT, each its own committed
    transaction with synchronous_commit=on, from a Python client (psycopg)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS floor_probe (id bigserial PRIMARY KEY, v text)")
        assert conn.execute("SHOW synchronous_commit").fetchone() == ("on",)
        samples = []
        for i in range(FLOOR_INSERTS + 50):
            began = time.perf_counter()
            conn.execute("INSERT INTO floor_probe (v) VALUES (%s)", (f"row {i}",))
            if i >= 50:  # warm-up: connection, plan cache
                samples.append((time.perf_counter() - began) * 1000)
    return statistics.fmean(samples), statistics.median(samples)


async def concurrent_floor_ms(dsn: str, clients: int = CONCURRENT_RUNS) -> float:
    """Median latency of the same INSERT when `clients` connections commit at once from
    one asyncio process (what each of 8 concurrent runs can at best expect)."""
    samples: list[float] = []

    async def client(conn: psycopg.AsyncConnection[Any]) -> None:
        for i in range(FLOOR_INSERTS // clients + 10):
            began = time.perf_counter()
            await conn.execute("INSERT INTO floor_probe (v) VALUES (%s)", (f"row {i}",))
            if i >= 10:
                samples.append((time.perf_counter() - began) * 1000)

    conns = [await psycopg.AsyncConnection.connect(dsn, autocommit=True) for _ in range(clients)]
    try:
        await asyncio.gather(*(client(c) for c in conns))
    finally:
        for conn in conns:
            await conn.close()
    return statistics.median(samples)


def test_raw_floor_one_committed_insert(benchmark: Any, server: EmbeddedServer) -> None:
    results: list[tuple[float, float]] = []
    benchmark.pedantic(lambda: results.append(commit_floor_ms(server.dsn)), rounds=3, iterations=1)
    p50_ms = statistics.median(r[1] for r in results)
    MEASURED["floor"] = {
        "commit_ms": p50_ms,  # medians throughout: the machine is shared, means chase spikes
        "commit_mean_ms": statistics.fmean(r[0] for r in results),
        "commit_8_concurrent_ms": asyncio.run(concurrent_floor_ms(server.dsn)),
    }
    benchmark.extra_info.update({k: round(v, 4) for k, v in MEASURED["floor"].items()})
    print(
        f"\nraw floor: {p50_ms:.3f} ms (p50) per committed single-row INSERT"
        f" ({MEASURED['floor']['commit_8_concurrent_ms']:.3f} ms with 8 clients at once)"
    )
    assert p50_ms > 0


async def append_alone_ms(dsn: str, appends: int = FLOOR_INSERTS) -> float:
    """Median latency of one pgstore phase commit (a fenced append of a reason event with a
    256-byte thought) on one connection, with nothing else running: the store's own cost
    per committed phase, without the worker's event loop or the services around it."""
    schema = f"db_append_alone_{time.time_ns()}"
    async with await psycopg.AsyncConnection.connect(
        with_search_path(dsn, schema), autocommit=True
    ) as conn:
        await store.ensure_tables(conn, schema)
        for i in range(appends // 10):
            await store.start_run(conn, f"run-{i:06d}", {}, "durabench_probe_work")
        claims = await store.claim(conn, "probe", appends, lease_s=600)
        event = Event(
            "reason", 0, 1, {"decision": {"tool": "t", "arguments": {"q": 1}, "thought": "x" * 256}}
        )
        samples = []
        for claim in claims:
            for _ in range(10):
                began = time.perf_counter()
                await store.append(
                    conn, claim.run_id, claim.token, [event], lease_s=600, done_channel="d"
                )
                samples.append((time.perf_counter() - began) * 1000)
    return statistics.median(samples[10:])


def test_pgstore_append_alone(benchmark: Any, server: EmbeddedServer) -> None:
    results: list[float] = []
    benchmark.pedantic(
        lambda: results.append(asyncio.run(append_alone_ms(server.dsn))), rounds=3, iterations=1
    )
    fig = {"append_ms": statistics.median(results)}
    floor = MEASURED.get("floor", {}).get("commit_ms")
    if floor:
        fig["append_x_floor"] = fig["append_ms"] / floor
        fig["meets_floor_target"] = float(fig["append_x_floor"] <= TARGET_FLOOR_MULTIPLE)
    MEASURED["pgstore-append-alone"] = fig
    benchmark.extra_info.update({k: round(v, 4) for k, v in fig.items()})
    print("\npgstore append alone: " + ", ".join(f"{k}={v:.3f}" for k, v in fig.items()))


@dataclass
class Stack:
    scenario: Scenario
    workers: int
    backend: Backend
    env: BackendEnv
    loop: asyncio.AbstractEventLoop


@pytest.fixture
def stack(
    request: pytest.FixtureRequest,
    write_scenario: ScenarioFactory,
    tmp_path: Path,
    server: EmbeddedServer,
) -> Iterator[Stack]:
    """Services and one backend's workers on the shared server, set up once on a loop
    of their own; each benchmark round only drives fresh runs."""
    name, workers = request.param
    path = write_scenario(
        runs=RUNS_PER_ROUND,
        steps=STEPS_PER_RUN,
        load={"concurrency": CONCURRENT_RUNS},
        thought_bytes=256,
        verify={"failure_probability": 0.0},
        deadline_s=120,
    )
    scenario = load_scenario(path)
    loop = asyncio.new_event_loop()
    with LocalPlatform(tmp_path) as platform:
        started = {s.role: platform.start(s) for s in service_specs(scenario, path, tmp_path)}
        backend = load_backend(f"{name}?workers={workers}")
        env = BackendEnv(
            scenario=scenario,
            scenario_path=path,
            bench_id=f"cost-{tmp_path.name}",
            llm_url=f"http://127.0.0.1:{started['llm'].spec.port}/v1",
            tools_url=f"http://127.0.0.1:{started['tools'].spec.port}",
            workdir=tmp_path / "backend",
            measurements_dir=tmp_path / "measurements",
            external=ExternalServices(pg_dsn=server.dsn),
        )
        for spec in backend.components(env):
            platform.start(spec)
        loop.run_until_complete(backend.setup(env))
        try:
            yield Stack(scenario, workers, backend, env, loop)
        finally:
            loop.run_until_complete(backend.teardown())
            loop.close()


def figures(stack: Stack, wall_s: float, steps: int) -> dict[str, float]:
    rows = pd.DataFrame(read_rows(stack.env.measurements_dir))
    per_step = step_table(rows)
    result = {
        "steps_per_s": steps / wall_s,
        "overhead_p50_ms": float(per_step["overhead_ms"].median()),
        "overhead_mean_ms": float(per_step["overhead_ms"].mean()),
        "commit_row_p50_ms": float(
            (
                (rows[rows["phase"] == "commit"]["end"] - rows[rows["phase"] == "commit"]["start"])
                * 1000
            ).median()
        ),
    }
    commits = rows[(rows["phase"] == "commit") & (rows["outcome"] == "ok")]
    if "extra" in commits and commits["extra"].notna().any():
        extra = pd.DataFrame(list(commits["extra"].dropna()))
        if "appends" in extra:
            result["appends_per_step"] = float(extra["appends"].mean())
            result["append_ms"] = float((extra["append_ms"] / extra["appends"]).median())
    else:
        result["appends_per_step"] = 1.0 if commits["bytes"].notna().any() else 0.0
        result["append_ms"] = result["commit_row_p50_ms"] if result["appends_per_step"] else 0.0
    return result


BACKENDS = [
    (name, workers) for workers in (1, 2) for name in ("baseline", "pgstore", "pgstore-naive")
]


@pytest.mark.parametrize(
    "stack", BACKENDS, indirect=True, ids=[f"{name}-{workers}w" for name, workers in BACKENDS]
)
def test_step_cost_with_8_concurrent_runs(benchmark: Any, stack: Stack) -> None:
    rounds = itertools.count()
    finished: list[bool] = []
    walls: list[float] = []

    def one_round() -> None:
        ids = run_ids(stack.scenario, first=next(rounds) * RUNS_PER_ROUND)
        began = time.perf_counter()
        timings = stack.loop.run_until_complete(
            drive_load(stack.scenario, stack.backend, lambda _: None, ids)
        )
        walls.append(time.perf_counter() - began)
        finished.extend(t.finished_in_time for t in timings)

    benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    assert finished and all(finished)

    measured = walls[1:] or walls  # the warm-up round (when benchmarking) is not counted
    steps = RUNS_PER_ROUND * STEPS_PER_RUN
    fig = figures(stack, statistics.fmean(measured), steps)
    name = f"{stack.backend.name}-{stack.workers}w"
    floor = MEASURED.get("floor", {}).get("commit_ms")
    floor_8 = MEASURED.get("floor", {}).get("commit_8_concurrent_ms")
    baseline = MEASURED.get(f"baseline-{stack.workers}w", {}).get("overhead_p50_ms")
    if floor and floor_8 and fig.get("appends_per_step"):
        fig["append_x_floor"] = fig["append_ms"] / floor
        fig["append_x_floor_8_concurrent"] = fig["append_ms"] / floor_8
        if baseline is not None:
            durable = fig["overhead_p50_ms"] - baseline
            fig["durability_ms_per_step"] = durable
            fig["durability_ms_per_commit"] = durable / fig["appends_per_step"]
            fig["durability_per_commit_x_floor"] = fig["durability_ms_per_commit"] / floor
    if (
        stack.backend.name == "pgstore" and "append_x_floor" in fig
    ):  # against the floor at the same concurrency
        fig["meets_floor_target"] = float(
            fig["append_x_floor_8_concurrent"] <= TARGET_FLOOR_MULTIPLE
        )
        fig["meets_throughput_target"] = float(fig["steps_per_s"] >= TARGET_STEPS_PER_S)
    MEASURED[name] = fig
    benchmark.extra_info.update({k: round(v, 4) for k, v in fig.items()})
    print(f"\n{name}: " + ", ".join(f"{k}={v:.3f}" for k, v in fig.items()))
