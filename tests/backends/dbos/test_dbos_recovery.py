"""DBOS under the faults its design answers with recovery: a worker killed mid-run with a
real SIGKILL (its PENDING workflows are re-enqueued by its restarted executor, DBOS's
documented recovery), and the embedded Postgres killed and restarted on the same data
directory (every recorded step is a committed row: nothing is lost)."""

from __future__ import annotations

import contextlib
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from tests.backends.pgstore.pgstore_support import Outcome, run_bench
from tests.conftest import ScenarioFactory

pytestmark = pytest.mark.integration

pytest.importorskip("dbos")

BUSY: dict[str, Any] = {
    "runs": 6,
    "steps": 8,
    "load": {"concurrency": 6},
    "workers": 2,
    "llm": {"latency": {"distribution": "constant", "ms": 15}},
    "tool_latency": {"distribution": "constant", "ms": 10},
    "deadline_s": 90,
}


def processes_per_run(outcome: Outcome) -> dict[str, set[str]]:
    """Run id -> the worker processes (`worker-N-PID`) that recorded a phase of it."""
    held: dict[str, set[str]] = defaultdict(set)
    for path in (outcome.workdir / "measurements").glob("*.jsonl"):
        for row in read_rows_of(path):
            held[str(row["run_id"])].add(path.stem)
    return held


def read_rows_of(path: Path) -> list[dict[str, Any]]:
    rows = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):  # a torn last line of a killed worker
            rows.append(json.loads(line))
    return [r for r in rows if "run_id" in r]


def assert_every_run_matches(outcome: Outcome) -> None:
    runs = outcome.runs
    assert outcome.summary["integrity"] == 1.0, outcome.report()
    assert runs["complete"].all() and runs["state_match"].all(), outcome.report()
    assert runs["no_lost_step"].all() and runs["no_duplicate_step"].all()
    assert runs["effects_exactly_once"].all() and runs["ledger_agrees"].all()
    assert (runs["tool_applied"] == runs["tool_expected"]).all(), outcome.report()


async def test_a_worker_killed_mid_run_is_recovered_by_dbos_with_state_match(
    write_scenario: ScenarioFactory, tmp_path: Path, pg_dsn: str
) -> None:
    path = write_scenario(
        **BUSY,
        faults=[{"kind": "kill", "select": "all", "after_steps": 12, "restart_delay_s": 0.3}],
    )
    (outcome,) = await run_bench(path, ["dbos"], tmp_path / "r", pg_dsn)
    faults = outcome.table("faults")
    assert (faults["outcome"] == "ok").all(), faults[["kind", "outcome", "detail"]]
    assert_every_run_matches(outcome)
    exposed = outcome.runs[outcome.runs["exposed"]]
    assert len(exposed) > 0, "the kill exposed no run"
    # the killed executors' runs were finished by other processes: DBOS's recovery
    resumed = {r for r, procs in processes_per_run(outcome).items() if len(procs) > 1}
    assert resumed & set(exposed.index), processes_per_run(outcome)


async def test_a_postgres_restart_loses_nothing(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    path = write_scenario(
        **BUSY, faults=[{"kind": "restart", "target": "store", "after_steps": 12}]
    )
    (outcome,) = await run_bench(path, ["dbos"], tmp_path / "r")  # the embedded store
    faults = outcome.table("faults")
    restart = faults[faults["kind"] == "restart"]
    assert (restart["outcome"] == "ok").all(), faults[["kind", "outcome", "detail"]]
    assert_every_run_matches(outcome)
    assert outcome.runs["exposed"].sum() > 0


@pytest.mark.parametrize(
    ("delay_s", "status"), [(0.3, "completed"), (None, "expired")], ids=["approved", "zombie"]
)
async def test_the_approval_is_a_recv_whose_timeout_is_the_ttl(
    write_scenario: ScenarioFactory,
    tmp_path: Path,
    pg_dsn: str,
    delay_s: float | None,
    status: str,
) -> None:
    path = write_scenario(
        runs=2, steps=3, approval={"after_step": 1, "delay_s": delay_s, "ttl_s": 1.5}
    )
    (outcome,) = await run_bench(path, ["dbos"], tmp_path / "r", pg_dsn)
    runs = outcome.runs
    assert outcome.summary["integrity"] == 1.0, outcome.report()
    assert (runs["status"] == runs["expected_status"]).all(), outcome.report()
    waited = runs[runs["status"] != "aborted"]  # a run aborted before step 1 never waits
    assert len(waited) > 0 and (waited["status"] == status).all(), outcome.report()
    approvals = [r for r in outcome.rows if r["phase"] == "approval"]
    assert len(approvals) == len(waited)  # one row per wait, written once
    assert all((r["outcome"] == "ok") == (status == "completed") for r in approvals)
