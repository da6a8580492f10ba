"""Locust drives agent runs for real: Locust's own processes, real backends, real faults.

Locust's statistics (what the load tool saw) and durabench's results (what the checker
found persisted) are two independent accounts of the same runs: they must agree.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from harness.load.driver import LocustDriver, LocustPlan
from harness.load.hdr import read_hdr_file
from harness.load.shapes import ConstantShape
from harness.results import ResultsDir
from harness.runner import BenchmarkRun
from tests.conftest import ScenarioFactory

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
LOCUST_TIMEOUT_S = 240.0  # bound on one Locust test on a loaded machine (never reached)
# a few runs of a few short steps: each run takes some tens of milliseconds of real work
LOAD = {
    "runs": 10,
    "steps": 4,
    "verify": {"failure_probability": 0.0},
    "llm": {"latency": {"distribution": "constant", "ms": 5}},
}


def locust_entries(results: ResultsDir, backend: str) -> dict[str, dict[str, Any]]:
    """Locust's own final stats file (its --json-file), per request name."""
    entries = json.loads((results.path / "locust" / f"{backend}.json").read_text())
    return {e["name"]: e for e in entries}


def successes(entry: dict[str, Any]) -> int:
    return int(entry["num_requests"]) - int(entry["num_failures"])


@pytest.mark.parametrize("backend", ["baseline", "pgstore"])
async def test_locust_and_durabench_agree_on_completed_runs(
    backend: str, write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    plan = LocustPlan(ConstantShape(users=3, spawn_rate=10), runs=10, timeout_s=LOCUST_TIMEOUT_S)
    bench = BenchmarkRun(
        write_scenario(**LOAD), [backend], tmp_path / "r", driver=LocustDriver(plan)
    )
    results = await bench.execute()

    runs = pd.read_parquet(results.path / "runs.parquet")
    summary = results.read_json("summary.json")[backend]
    stats = locust_entries(results, backend)
    assert set(stats) == {"agent_start", "agent_run"}
    assert {e["method"] for e in stats.values()} == {backend}, "requests are typed by backend"
    # every run Locust started was inspected and judged, with unique logical ids
    assert stats["agent_start"]["num_requests"] == len(runs) == 10
    assert sorted(runs["run_id"]) == [f"run-{i:06d}" for i in range(10)]
    # Locust's completed runs are exactly the checker's complete runs
    assert successes(stats["agent_run"]) == summary["completed"] == int(runs["complete"].sum())
    assert summary["integrity"] == 1.0
    for report in ("_stats.csv", "_stats_history.csv", ".html"):
        assert (results.path / "locust" / f"{backend}{report}").is_file(), report
    load = results.read_json("load.json")[backend]
    assert load["mode"] == "local" and load["started"] == 10
    assert load["locust"]["agent_run"]["successes"] == summary["completed"]


async def test_a_worker_kill_under_load_fails_the_same_runs_in_both_accounts(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    """The scenario's faults apply during Locust load: the baseline loses runs, Locust sees
    them miss their deadline, and the checker finds them incomplete."""
    path = write_scenario(
        **{**LOAD, "runs": 12, "steps": 12, "deadline_s": 20},
        faults=[{"kind": "kill", "after_steps": 10, "restart_delay_s": 0.1}],
    )
    plan = LocustPlan(ConstantShape(users=4, spawn_rate=20), runs=12, timeout_s=LOCUST_TIMEOUT_S)
    results = await BenchmarkRun(
        path, ["baseline"], tmp_path / "r", driver=LocustDriver(plan)
    ).execute()

    faults = pd.read_parquet(results.path / "faults.parquet")
    assert list(faults["outcome"]) == ["ok"]
    runs = pd.read_parquet(results.path / "runs.parquet")
    stats = locust_entries(results, "baseline")
    lost = int((~runs["complete"].astype(bool)).sum())
    assert lost > 0, "the killed worker held runs"
    # a run is lost to Locust either as a failed run, or as a start the dead worker refused
    refused = sum(1 for p in results.read_jsonl("persisted.jsonl") if p["start_error"])
    assert stats["agent_run"]["num_failures"] + stats["agent_start"]["num_failures"] == lost
    assert stats["agent_start"]["num_failures"] == refused
    assert successes(stats["agent_run"]) == int(runs["complete"].sum())


async def test_without_waiting_every_started_run_is_still_judged(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    plan = LocustPlan(
        ConstantShape(users=2, spawn_rate=10),
        runs=8,
        wait=False,
        user_rate=20.0,
        timeout_s=LOCUST_TIMEOUT_S,
    )
    results = await BenchmarkRun(
        write_scenario(**LOAD), ["baseline"], tmp_path / "r", driver=LocustDriver(plan)
    ).execute()

    stats = locust_entries(results, "baseline")
    assert set(stats) == {"agent_start"}, "users that do not wait report no agent_run"
    runs = pd.read_parquet(results.path / "runs.parquet")
    assert stats["agent_start"]["num_requests"] == len(runs) == 8
    assert runs["complete"].all() and runs["passed"].all()


def test_distributed_locust_accounts_for_every_run_its_workers_started(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    """`durabench load --workers 2`: Locust's master and two worker processes on loopback;
    the master's merged stats hold every run either worker started."""
    path = write_scenario(**{**LOAD, "runs": 16, "steps": 6})
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness.cli",
            "load",
            str(path),
            "--backend",
            "baseline",
            "--users",
            "4",
            "--spawn-rate",
            "50",
            "--runs",
            "16",
            "--workers",
            "2",
            "--timeout",
            str(LOCUST_TIMEOUT_S),
            "--out",
            str(tmp_path / "r"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=LOCUST_TIMEOUT_S + 120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    results = ResultsDir.open((tmp_path / "r" / "latest").resolve())
    load = results.read_json("load.json")["baseline"]
    assert load["mode"] == "distributed" and load["workers"] == 2
    by_worker = load["started_by_worker"]
    assert sorted(by_worker) == ["0", "1"], "both Locust workers started runs"
    stats = locust_entries(results, "baseline")
    assert stats["agent_start"]["num_requests"] == sum(by_worker.values()) == 16
    runs = pd.read_parquet(results.path / "runs.parquet")
    assert len(runs) == 16 and runs["run_id"].is_unique
    assert successes(stats["agent_run"]) == int(runs["complete"].sum()) == 16
    # the percentiles are the master's merged HDR histograms (tests/load/test_hdr_merge.py)
    hdr = read_hdr_file(results.path / load["reports"]["hdr"])
    for name in ("agent_start", "agent_run"):
        assert load["locust"][name]["percentiles"] == "hdr"
        assert hdr[name]["count"] == stats[name]["num_requests"]
        assert load["locust"][name]["p99_ms"] == hdr[name]["p99_ms"]
    logs = results.path / "baseline" / "logs"
    assert (logs / "locust-worker-0.log").is_file() and (logs / "locust-worker-1.log").is_file()
