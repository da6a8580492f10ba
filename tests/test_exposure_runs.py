"""Exposure on real runs: faults that touch no run make the cell inconclusive (never a
pass), and a kill cell sized to expose runs shows pgstore-naive's missing idempotency
keys while pgstore holds."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from harness.runner import BenchmarkRun
from harness.scenario import load_scenario
from harness.suite import EXIT_INCONCLUSIVE, Cell, SuiteResult, _fill
from tests.conftest import ScenarioFactory

pytestmark = pytest.mark.integration

# seed 12 at 0.5 arrivals/s: the first run arrives 2.97 s after the load starts, so a
# kill at 0.5 s and a pause from 1.0 s to 1.5 s find every worker idle
IDLE_FAULTS = {
    "seed": 12,
    "runs": 2,
    "steps": 3,
    "load": {"concurrency": None, "arrival_rate": 0.5},
    "faults": [
        {"kind": "kill", "at_s": 0.5},
        {"kind": "pause", "at_s": 1.0, "duration_s": 0.5},
    ],
    "expect": {"integrity": {"baseline": 1.0}},
}


async def test_faults_that_touch_no_run_make_the_cell_inconclusive(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    path = write_scenario(**IDLE_FAULTS)
    results = await BenchmarkRun(path, ["baseline"], tmp_path).execute()
    summary = results.read_json("summary.json")["baseline"]
    assert summary["integrity"] == 1.0, "every run passed ..."
    assert summary["result"] == "inconclusive", "... and that proves nothing"
    assert summary["exposure"]["exposed_runs"] == 0
    assert summary["exposure"]["exposing_nothing"] == ["kill#0.0", "pause#1.0"]
    faults = pd.read_parquet(results.path / "faults.parquet")
    assert list(faults["outcome"]) == ["ok", "ok"] and faults["exposed_runs"].eq(0).all()
    runs = pd.read_parquet(results.path / "runs.parquet")
    assert not runs["exposed"].any() and runs["exposed_by"].map(len).eq(0).all()
    cell = Cell("kill", "baseline", status="ok")
    _fill(cell, load_scenario(path), summary)
    assert cell.inconclusive and cell.met is None, "never shown as met"
    assert SuiteResult(tmp_path, [cell]).exit_code == EXIT_INCONCLUSIVE


# one worker, so every kill hits the runs in flight (eight of them); timed by committed
# steps, so each lands mid-load however long the workers take to start
EXPOSING_KILLS = {
    "runs": 16,
    "steps": 10,
    "load": {"concurrency": 8},
    "workers": 1,
    "llm": {"latency": {"distribution": "constant", "ms": 10}},
    "tool_latency": {"distribution": "constant", "ms": 2},
    "verify": {"failure_probability": 0.0, "on_failure": "retry_act", "max_attempts": 3},
    "faults": [{"kind": "kill", "after_steps": n, "restart_delay_s": 0.1} for n in (20, 70, 120)],
}


async def test_a_kill_cell_sized_to_expose_fails_pgstore_naive_and_not_pgstore(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    path = write_scenario(**EXPOSING_KILLS)
    results = await BenchmarkRun(path, ["pgstore-naive", "pgstore"], tmp_path).execute()
    summary = results.read_json("summary.json")
    naive, pgstore = summary["pgstore-naive"], summary["pgstore"]
    assert naive["exposure"]["exposed_runs"] >= 8
    assert naive["result"] == "fail" and naive["anomalies"]["effects_exactly_once"] > 0
    assert naive["evidence"]["upper"] < 1.0, "the interval itself says integrity < 1"
    assert pgstore["exposure"]["exposed_runs"] >= 8
    assert pgstore["result"] == "pass", pgstore["result_reason"]
