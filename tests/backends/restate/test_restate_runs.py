"""The Restate backend end to end through the runner, on a real restate-server.

The server and the workers are real subprocesses; faults are real signals and the
fault proxy's real cuts. Every run's state is read back from the server (the
workflow's K/V state through the admin SQL API) and judged against the oracle.
"""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import pandas as pd
import pytest

from backends.restate.server import SERVER_COMPONENT
from harness.oracle import expected_run, run_ids
from harness.runner import BenchmarkRun
from tests.backends.restate.support import (
    BACKEND,
    POLL_S,
    WAIT_S,
    act_in_flight,
    commits_reach,
    persisted,
    rows_of,
)
from tests.conftest import ScenarioFactory

pytestmark = pytest.mark.integration

SLOW_TOOL_MS = 400  # an act stays in flight long enough to be killed mid-call


def _detail(runs: pd.DataFrame, verdict: str, key: str) -> int:
    return sum(int(json.loads(d)[verdict][key]) for d in runs["verdict_detail"])


async def test_runs_complete_with_full_integrity_and_journal_figures(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    bench = BenchmarkRun(write_scenario(), [BACKEND], tmp_path / "r")
    results = await bench.execute()

    summary = results.read_json("summary.json")[BACKEND]
    assert summary["runs"] == summary["passed"] == 6
    assert summary["integrity"] == 1.0
    oracle = [expected_run(bench.scenario, r) for r in run_ids(bench.scenario)]
    assert summary["committed_steps"] == sum(len(o.state.steps) for o in oracle)
    runs = pd.read_parquet(results.path / "runs.parquet")
    assert (runs["history_length"] > 0).all()  # journal entries
    assert (runs["bytes_persisted"] > 0).all()  # journal and K/V bytes
    extras = [p["extra"] for p in persisted(results.path)]
    assert {e["restate_status"] for e in extras} == {"completed"}
    assert {e["completion_result"] for e in extras} == {"success"}
    steps = pd.read_parquet(results.path / "steps.parquet")
    commits = steps[steps["phase"] == "commit"]
    assert len(commits) == summary["committed_steps"]  # one commit row per step, no replay's
    details = results.read_json("manifest.json")["backend_details"][BACKEND]
    assert details["server"] == "embedded restate-server"
    assert details["restate_server"].startswith("restate-server 1.")
    assert details["service"].startswith("durabench_")
    assert (results.backend_dir(BACKEND) / "restate-data").is_dir()


async def test_an_approval_resolves_the_durable_promise(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    path = write_scenario(
        verify={"failure_probability": 0.0},
        approval={"after_step": 1, "delay_s": 0.05, "ttl_s": 10},
    )
    results = await BenchmarkRun(path, [BACKEND], tmp_path / "r").execute()
    assert results.read_json("summary.json")[BACKEND]["integrity"] == 1.0
    steps = pd.read_parquet(results.path / "steps.parquet")
    approvals = steps[steps["phase"] == "approval"]
    assert len(approvals) == 6
    assert (approvals["outcome"] == "ok").all()


async def test_a_run_nobody_approves_expires_on_its_durable_timer(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    path = write_scenario(runs=2, approval={"after_step": 0, "delay_s": None, "ttl_s": 0.5})
    results = await BenchmarkRun(path, [BACKEND], tmp_path / "r").execute()
    runs = pd.read_parquet(results.path / "runs.parquet")
    assert set(runs["status"]) == {"expired"}
    assert runs["passed"].all()


async def test_a_worker_killed_mid_act_is_recovered_by_restate_and_nothing_is_lost(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    """SIGKILL to the worker holding an act in flight: the server retries the
    invocations the dead worker held on the other worker (the port both share), the
    retry replays the journal and runs the unacknowledged act again with its key, so
    the ledger records a duplicate execution and applies the effect once."""
    path = write_scenario(
        runs=6,
        steps=5,
        load={"concurrency": 6},
        workers=2,
        verify={"failure_probability": 0.0},
        tool_latency={"distribution": "constant", "ms": SLOW_TOOL_MS},
        deadline_s=60,
    )
    bench = BenchmarkRun(path, [BACKEND], tmp_path / "r")

    async def kill_mid_act() -> str:
        await commits_reach(bench, BACKEND, 6)
        assert bench.platform is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_S
        while (worker := act_in_flight(rows_of(bench, BACKEND))) is None:
            assert loop.time() < deadline, "no act in flight to kill"
            await asyncio.sleep(POLL_S)
        victim = f"restate-{worker}"
        bench.platform.signal(victim, signal.SIGKILL)
        return victim

    killer = asyncio.create_task(kill_mid_act())
    results = await bench.execute()
    victim = await killer

    summary = results.read_json("summary.json")[BACKEND]
    assert summary["integrity"] == 1.0, summary["anomalies"]
    runs = pd.read_parquet(results.path / "runs.parquet")
    assert runs["state_match"].all()
    assert runs["no_lost_step"].all() and runs["no_duplicate_step"].all()
    assert runs["effects_exactly_once"].all()
    # at-least-once ctx.run: the killed acts ran again, the ledger absorbed them
    assert runs["tool_executions"].sum() > runs["tool_applied"].sum()
    assert _detail(runs, "effects_exactly_once", "deduplicated_retries") > 0
    log = (results.backend_dir(BACKEND) / "logs" / f"{victim}.log").read_text()
    assert "restarts=1" in log  # the platform restarted it like a pod


async def test_a_server_restart_on_its_data_directory_loses_nothing(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    """The `restart` fault kills restate-server at once and starts it again on the
    same data directory and ports: every invocation continues where its journal left it."""
    path = write_scenario(
        runs=6,
        steps=6,
        load={"concurrency": 6},
        verify={"failure_probability": 0.0},
        tool_latency={"distribution": "constant", "ms": 60},
        deadline_s=90,
        faults=[{"kind": "restart", "target": "server", "after_steps": 8}],
    )
    results = await BenchmarkRun(path, [BACKEND], tmp_path / "r").execute()

    faults = pd.read_parquet(results.path / "faults.parquet")
    assert list(faults["outcome"]) == ["ok"], faults[["kind", "outcome", "detail"]]
    assert SERVER_COMPONENT in faults["selected"].iloc[0][0]
    summary = results.read_json("summary.json")[BACKEND]
    assert summary["integrity"] == 1.0, summary["anomalies"]
    assert summary["exposure"]["exposed_runs"] > 0
    runs = pd.read_parquet(results.path / "runs.parquet")
    assert runs["state_match"].all() and runs["no_lost_step"].all()
    assert runs["effects_exactly_once"].all()


async def test_a_partition_between_server_and_workers_heals_without_loss(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    """The server reaches its deployment through the fault proxy's worker->server link;
    a partition holds every invocation's traffic, the heal lets it through."""
    path = write_scenario(
        runs=4,
        steps=6,
        load={"concurrency": 4},
        verify={"failure_probability": 0.0},
        tool_latency={"distribution": "constant", "ms": 20},
        deadline_s=60,
        faults=[
            {
                "kind": "network",
                "target": "worker->server",
                "mode": "partition",
                "after_steps": 6,
                "duration_s": 1.0,
            }
        ],
    )
    results = await BenchmarkRun(path, [BACKEND], tmp_path / "r").execute()
    faults = pd.read_parquet(results.path / "faults.parquet")
    assert list(faults["outcome"]) == ["ok"], faults[["kind", "outcome", "detail"]]
    summary = results.read_json("summary.json")[BACKEND]
    assert summary["integrity"] == 1.0, summary["anomalies"]
    assert summary["exposure"]["exposed_runs"] > 0
    details = results.read_json("manifest.json")["backend_details"][BACKEND]
    # registered at the proxy's port, which forwards to the port the workers share
    assert not details["deployment_uri"].endswith(f":{details['workers_port']}")
