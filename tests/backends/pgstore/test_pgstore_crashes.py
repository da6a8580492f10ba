"""Workers killed or paused mid-run, on both Postgres state stores.

The crash points are hit deterministically: a scenario `crash_point` fault makes the
worker SIGKILL itself (a real signal) the first time it reaches that point, and the
platform restarts it like a pod. Points:
- `after_act`: the tool call returned, its result is not yet persisted (for both
  stores: "between an act and its commit");
- `after_act_recorded`: pgstore marks it: the act event is committed, verify is not;
- `after_commit`: the step is durably committed (and acknowledged), the next reason
  has not started.

pgstore must keep integrity 1.0 through all of them. pgstore-naive is run through
the same faults and what it does is asserted as observed, not hidden.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.oracle import expected_run, run_ids
from harness.runner import BenchmarkRun
from harness.scenario import load_scenario
from tests.backends.pgstore.pgstore_support import SLOW, pause_until_taken_over, query, run_bench
from tests.conftest import ScenarioFactory

pytestmark = pytest.mark.integration

# One run in flight at a time, so a kill interrupts exactly the run it names.
SERIAL = {"load": {"concurrency": 1}}
AFTER_ACT = {"kind": "crash_point", "point": "after_act", "run": "run-000001", "step": 1}
AFTER_RECORD = {
    "kind": "crash_point",
    "point": "after_act_recorded",
    "run": "run-000004",
    "step": 1,
}
AFTER_COMMIT = {"kind": "crash_point", "point": "after_commit", "run": "run-000003", "step": 2}


async def test_pgstore_keeps_integrity_through_sigkills_at_every_crash_point(
    write_scenario: ScenarioFactory, tmp_path: Path, pg_dsn: str
) -> None:
    path = write_scenario(**SERIAL, faults=[AFTER_ACT, AFTER_RECORD, AFTER_COMMIT])
    (outcome,) = await run_bench(path, ["pgstore?snapshot_every=4"], tmp_path / "r", pg_dsn)
    assert sorted(p.name for p in (outcome.workdir / "failpoints").iterdir()) == [
        "after_act:run-000001:1.fired",
        "after_act_recorded:run-000004:1.fired",
        "after_commit:run-000003:2.fired",
    ]
    log = (outcome.workdir / "logs" / "pgstore-worker-0.log").read_text()
    assert "restarts=3" in log
    assert outcome.summary["integrity"] == 1.0, outcome.report()

    # killed after the act: the restarted worker sent it again with the same key,
    # and the tool ledger absorbed it (two executions, one applied)
    redone = outcome.ledger("run-000001", 1)
    first = redone[redone["attempt"] == 1]
    assert len(first) == 2 and first["applied"].sum() == 1
    assert first["idempotency_key"].nunique() == 1
    # killed after the act event: the recorded tool result was reused, not re-executed
    reused = outcome.ledger("run-000004", 1)
    assert len(reused[reused["attempt"] == 1]) == 1
    # killed after a commit: nothing was repeated, and no LLM answer was asked twice
    runs = outcome.runs
    assert (runs["llm_calls"] == runs["llm_calls_expected"]).all(), outcome.report()
    assert outcome.summary["wasted"]["tool_executions"] == 1
    assert (runs["tool_applied"] == runs["tool_expected"]).all(), outcome.report()
    # snapshots were written and the runs were folded from them after the restarts
    persisted = outcome.results.read_jsonl("persisted.jsonl")
    assert all(p["extra"]["snapshots"] >= 1 for p in persisted)


async def test_pgstore_naive_repeats_the_interrupted_step_with_a_fresh_key(
    write_scenario: ScenarioFactory, tmp_path: Path, pg_dsn: str
) -> None:
    """Recorded anomaly: after a kill between act and save, the restarted worker
    re-runs the step from its last saved state; the act goes out under a new key, so
    the tool applies the same effect twice (effects_exactly_once false). The state
    itself still matches (the workload is deterministic). A kill right after the save
    costs nothing for that run."""
    path = write_scenario(**SERIAL, faults=[AFTER_ACT, AFTER_COMMIT])
    (outcome,) = await run_bench(path, ["pgstore-naive"], tmp_path / "r", pg_dsn)
    assert len(list((outcome.workdir / "failpoints").iterdir())) == 2
    runs = outcome.runs
    print(outcome.report())

    hit = runs.loc["run-000001"]
    assert not hit["effects_exactly_once"]
    assert hit["state_match"] and hit["no_lost_step"] and hit["no_duplicate_step"]
    duplicated = outcome.ledger("run-000001", 1)
    first = duplicated[duplicated["attempt"] == 1]
    assert first["applied"].sum() == 2
    assert first["idempotency_key"].nunique() == 2
    assert hit["llm_calls"] == hit["llm_calls_expected"] + 1  # the reason ran again too

    assert runs.loc["run-000003", "passed"]  # killed after its save: resumed cleanly
    assert outcome.summary["integrity"] == pytest.approx(5 / 6)
    assert (runs["status"] == runs["expected_status"]).all()


async def test_a_paused_pgstore_worker_cannot_commit_after_its_lease_was_taken_over(
    write_scenario: ScenarioFactory, tmp_path: Path, pg_dsn: str
) -> None:
    path = write_scenario(**SLOW)
    seen: dict[str, Any] = {}

    async def pause(bench: BenchmarkRun) -> None:
        seen.update(await pause_until_taken_over(bench, pg_dsn, "runs"))

    (outcome,) = await run_bench(path, ["pgstore?lease_s=1"], tmp_path / "r", pg_dsn, pause)
    assert outcome.summary["integrity"] == 1.0, outcome.report()

    fenced = [
        r
        for r in outcome.rows
        if r["phase"] == "commit" and r["outcome"] == "fail" and r.get("extra", {}).get("fenced")
    ]
    assert fenced, "the resumed worker's writes were not refused"
    print("fenced:", sorted((r["run_id"], r["extra"]["by"]) for r in fenced))
    assert seen["worker"] in {r["worker"] for r in fenced}
    # no event written with a stale token after a takeover: tokens never go down
    tokens = await query(
        pg_dsn,
        str(seen["schema"]),
        "SELECT run_id, array_agg(token ORDER BY seq) FROM events GROUP BY run_id",
    )
    for run_id, sequence in tokens:
        assert sequence == sorted(sequence), run_id
    taken = {run_id for run_id, sequence in tokens if max(sequence) > 1}
    assert seen["taken"] and set(seen["taken"]) <= taken
    assert {r["run_id"] for r in fenced} <= taken


async def test_a_paused_naive_worker_keeps_writing_after_its_run_was_picked_up(
    write_scenario: ScenarioFactory, tmp_path: Path, pg_dsn: str
) -> None:
    """Recorded anomaly: with no fencing, the resumed worker finishes its in-flight
    step and keeps driving the runs another worker picked up meanwhile; both execute
    the same steps under fresh keys, so effects are applied twice."""
    path = write_scenario(**SLOW)
    seen: dict[str, Any] = {}

    async def pause(bench: BenchmarkRun) -> None:
        seen.update(await pause_until_taken_over(bench, pg_dsn, "agent_runs"))

    (outcome,) = await run_bench(path, ["pgstore-naive?stale_s=1"], tmp_path / "r", pg_dsn, pause)
    print(outcome.report())
    taken = list(seen["taken"])
    assert taken
    runs = outcome.runs
    scenario = load_scenario(path)
    assert sorted(runs.index) == run_ids(scenario)
    # the paused worker went on acting for the runs it had lost
    resumed_at = float(seen["resumed_at"])
    after_resume = [
        r
        for r in outcome.rows
        if r["worker"] == seen["worker"] and r["run_id"] in taken and r["start"] >= resumed_at
    ]
    assert any(r["phase"] == "act" for r in after_resume)
    assert not runs.loc[taken, "effects_exactly_once"].any()
    assert outcome.summary["integrity"] < 1.0
    assert outcome.summary["wasted"]["tool_executions"] > 0
    for run_id in taken:
        assert runs.loc[run_id, "tool_applied"] > expected_run(scenario, run_id).tool_calls
