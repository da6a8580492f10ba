"""The Temporal backend end to end through the runner, on a real dev server.

Workers are real subprocesses; faults are real signals. Every run's state is read
back from the server (result, query or history) and judged against the oracle.
"""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from backends.temporal.server import SERVER_COMPONENT
from harness.measure import read_rows
from harness.oracle import expected_run, run_ids
from harness.runner import BenchmarkRun
from tests.backends.temporal.support import HISTORY_COUNT_LIMIT, DevServer
from tests.conftest import ScenarioFactory

pytestmark = pytest.mark.integration

FAST_FAILOVER = "temporal?heartbeat_s=1&sticky_s=1&task_timeout_s=2"
POLL_S = 0.05
KILL_WAIT_S = 60.0  # bound on waiting for the commits that trigger a fault
SERVER_DOWN_S = 1.0


def _persisted(results_path: Path) -> list[dict[str, Any]]:
    lines = (results_path / "persisted.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def _detail(runs: pd.DataFrame, verdict: str, key: str) -> int:
    return sum(int(json.loads(d)[verdict][key]) for d in runs["verdict_detail"])


async def _commits_reach(bench: BenchmarkRun, backend: str, count: int) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + KILL_WAIT_S
    while loop.time() < deadline:
        await asyncio.sleep(POLL_S)
        if bench.platform is None or bench.results is None:
            continue
        rows = read_rows(bench.results.backend_dir(backend) / "measurements")
        if sum(1 for r in rows if r["phase"] == "commit") >= count:
            return
    raise AssertionError(f"fewer than {count} commits after {KILL_WAIT_S}s")


async def test_runs_complete_with_full_integrity_and_history_figures(
    write_scenario: ScenarioFactory, tmp_path: Path, temporal_server: DevServer
) -> None:
    bench = BenchmarkRun(
        write_scenario(), ["temporal"], tmp_path / "r", external=temporal_server.external()
    )
    results = await bench.execute()

    summary = results.read_json("summary.json")["temporal"]
    assert summary["runs"] == summary["passed"] == 6
    assert summary["integrity"] == 1.0
    oracle = [expected_run(bench.scenario, r) for r in run_ids(bench.scenario)]
    assert summary["committed_steps"] == sum(len(o.state.steps) for o in oracle)
    runs = pd.read_parquet(results.path / "runs.parquet")
    assert (runs["history_length"] > 0).all()
    assert (runs["bytes_persisted"] > 0).all()
    assert {p["extra"]["temporal_status"] for p in _persisted(results.path)} == {"COMPLETED"}
    steps = pd.read_parquet(results.path / "steps.parquet")
    commits = steps[steps["phase"] == "commit"]
    assert (commits["outcome"] == "ok").all()
    assert (commits["bytes"] > 0).all()  # history growth per step, Temporal's own figure
    details = results.read_json("manifest.json")["backend_details"]["temporal"]
    assert details["workflow_version"] == "v1"
    assert details["server"] == "external"
    assert details["activity_policy"]["start_to_close_s"] == bench.scenario.deadline_s


async def test_approval_is_a_signal(
    write_scenario: ScenarioFactory, tmp_path: Path, temporal_server: DevServer
) -> None:
    path = write_scenario(
        verify={"failure_probability": 0.0},
        approval={"after_step": 1, "delay_s": 0.05, "ttl_s": 10},
    )
    results = await BenchmarkRun(
        path, ["temporal"], tmp_path / "r", external=temporal_server.external()
    ).execute()
    assert results.read_json("summary.json")["temporal"]["integrity"] == 1.0
    steps = pd.read_parquet(results.path / "steps.parquet")
    approvals = steps[steps["phase"] == "approval"]
    assert len(approvals) == 6
    assert (approvals["outcome"] == "ok").all()


async def test_a_run_nobody_approves_expires_on_its_durable_timer(
    write_scenario: ScenarioFactory, tmp_path: Path, temporal_server: DevServer
) -> None:
    path = write_scenario(runs=2, approval={"after_step": 0, "delay_s": None, "ttl_s": 0.5})
    results = await BenchmarkRun(
        path, ["temporal"], tmp_path / "r", external=temporal_server.external()
    ).execute()
    runs = pd.read_parquet(results.path / "runs.parquet")
    assert set(runs["status"]) == {"expired"}
    assert runs["passed"].all()


def _act_in_flight(rows: list[dict[str, Any]]) -> bool:
    """Some act was invoked (its `invoke` row is written before the tool call) and has
    not completed: with TOOL_LATENCY_MS per call it stays in flight for a while."""
    invoked = {(r["run_id"], r["step"], r["attempt"]) for r in rows if r["phase"] == "act"}
    completed = {
        (r["run_id"], r["step"], r["attempt"])
        for r in rows
        if r["phase"] == "act" and r["outcome"] != "invoke"
    }
    return bool(invoked - completed)


TOOL_LATENCY_MS = 600


async def test_a_worker_killed_mid_activity_is_replaced_and_nothing_is_lost(
    write_scenario: ScenarioFactory, tmp_path: Path, temporal_server: DevServer
) -> None:
    """SIGKILL while an act is in flight: the server retries the attempts the dead
    worker held; the retried act reuses its idempotency key, so the ledger records a
    duplicate execution but applies the effect once."""
    path = write_scenario(
        runs=6,
        steps=6,
        load={"concurrency": 6},
        workers=1,
        verify={"failure_probability": 0.0},
        tool_latency={"distribution": "constant", "ms": TOOL_LATENCY_MS},
        deadline_s=60,
    )
    bench = BenchmarkRun(path, [FAST_FAILOVER], tmp_path / "r", external=temporal_server.external())
    victim = "temporal-worker-0"

    async def kill_mid_act() -> int:
        await _commits_reach(bench, FAST_FAILOVER, 6)
        assert bench.platform is not None and bench.results is not None
        measurements = bench.results.backend_dir(FAST_FAILOVER) / "measurements"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + KILL_WAIT_S
        while not _act_in_flight(read_rows(measurements)):
            assert loop.time() < deadline, "no act in flight to kill"
            await asyncio.sleep(0.01)
        bench.platform.signal(victim, signal.SIGKILL)
        while loop.time() < deadline:  # the platform restarts it like a pod
            await asyncio.sleep(POLL_S)
            if (restarts := bench.platform.component(victim).restarts) > 0:
                return restarts
        raise AssertionError(f"{victim} was not restarted")

    killer = asyncio.create_task(kill_mid_act())
    results = await bench.execute()
    assert await killer == 1

    summary = results.read_json("summary.json")[FAST_FAILOVER]
    assert summary["integrity"] == 1.0
    runs = pd.read_parquet(results.path / "runs.parquet")
    assert runs["state_match"].all()
    assert runs["effects_exactly_once"].all()
    # at-least-once activities: the killed attempts ran again, the ledger absorbed them
    assert runs["tool_executions"].sum() > runs["tool_applied"].sum()
    assert _detail(runs, "effects_exactly_once", "deduplicated_retries") > 0


async def test_a_run_past_the_history_limit_is_terminated_by_the_server(
    write_scenario: ScenarioFactory, tmp_path: Path, temporal_server: DevServer
) -> None:
    """The session server's history-count limit is lowered to HISTORY_COUNT_LIMIT events
    (Temporal's default is 51,200): a long horizon reaches it and inspect says so."""
    path = write_scenario(runs=1, steps=200, verify={"failure_probability": 0.0}, deadline_s=120)
    results = await BenchmarkRun(
        path, ["temporal"], tmp_path / "r", external=temporal_server.external()
    ).execute()
    [persisted] = _persisted(results.path)
    assert persisted["extra"]["temporal_status"] == "TERMINATED"
    assert "history count exceeds limit" in persisted["extra"]["reason"]
    # the server checks the limit as a workflow task's events are appended: it ends the
    # run at the first batch that reaches it (a batch is a few events plus its termination)
    assert HISTORY_COUNT_LIMIT <= persisted["history_length"] < HISTORY_COUNT_LIMIT + 8
    assert 0 < len(persisted["state"]["steps"]) < 200
    runs = pd.read_parquet(results.path / "runs.parquet")
    assert not runs["complete"].any()
    assert runs["no_lost_step"].all()  # every acknowledged commit is in the history


async def test_killing_and_restarting_the_embedded_server_mid_run_loses_nothing(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    """No --temporal-address: durabench runs its own dev server on a SQLite file. A
    SIGKILL of the server mid-run, then a restart on the same file, loses no step."""
    path = write_scenario(
        runs=6,
        steps=6,
        load={"concurrency": 6},
        verify={"failure_probability": 0.0},
        tool_latency={"distribution": "constant", "ms": 100},
        deadline_s=90,
    )
    bench = BenchmarkRun(path, [FAST_FAILOVER], tmp_path / "r")

    async def kill_and_restart_server() -> tuple[int, int]:
        await _commits_reach(bench, FAST_FAILOVER, 6)
        platform = bench.platform
        assert platform is not None
        spec = platform.component(SERVER_COMPONENT).spec
        killed = platform.signal(SERVER_COMPONENT, signal.SIGKILL)
        await asyncio.sleep(SERVER_DOWN_S)  # the fault's duration, not an assertion
        platform.stop(SERVER_COMPONENT)  # reap the dead process
        restarted = await asyncio.to_thread(platform.start, spec)  # same ports, same db file
        return killed, restarted.pid

    restarter = asyncio.create_task(kill_and_restart_server())
    results = await bench.execute()
    killed, restarted = await restarter
    assert killed != restarted

    summary = results.read_json("summary.json")[FAST_FAILOVER]
    assert summary["integrity"] == 1.0
    runs = pd.read_parquet(results.path / "runs.parquet")
    assert runs["state_match"].all()
    assert runs["no_lost_step"].all()
    details = results.read_json("manifest.json")["backend_details"][FAST_FAILOVER]
    assert details["server"] == "embedded dev server"
    assert (results.backend_dir(FAST_FAILOVER) / "temporal.db").is_file()
