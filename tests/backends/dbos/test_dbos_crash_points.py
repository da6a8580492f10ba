"""DBOS's own crash points, every one at every step, and the shared ones where DBOS's
at-least-once steps show, on real workers killed by a real SIGKILL at the edges of
DBOS's step records (before an act's output row is written, inside its transaction,
after it committed, inside verify's) and right after a dequeue.

One `crash_point` fault (`point: own | all, step: all`) expands into one crash point per
(point, step) pair, each pinned to a run of its own; runs go one at a time, so a kill
interrupts only the run it names. DBOS recovers each by its own mechanism: the
restarted worker (same executor id) puts its PENDING workflow back on the queue.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.backends.crash_support import fired, repeated
from tests.backends.pgstore.pgstore_support import run_bench
from tests.conftest import ScenarioFactory

pytestmark = pytest.mark.integration

pytest.importorskip("dbos")

SERIAL: dict[str, Any] = {"steps": 2, "load": {"concurrency": 1}}


async def test_dbos_runs_an_act_again_when_its_output_was_not_recorded_and_replays_the_rest(
    write_scenario: ScenarioFactory, tmp_path: Path, pg_dsn: str
) -> None:
    faults = [{"kind": "crash_point", "point": "own", "step": "all"}]
    path = write_scenario(runs=9, faults=faults, **SERIAL)
    (outcome,) = await run_bench(path, ["dbos"], tmp_path / "r", pg_dsn)
    killed = fired(outcome)
    assert len(killed) == 9, killed
    assert outcome.summary["integrity"] == 1.0, outcome.report()
    runs = outcome.runs

    for step in (0, 1):
        # at-least-once: the effect happened, its output row never reached (or never
        # committed in) the system database, so recovery ran the step again under the same
        # key: the raw execution is counted, the ledger applied it once
        for point in ("dbos.before_act_output", "dbos.before_act_commit"):
            unrecorded = killed[f"{point}:{step}"]
            assert repeated(runs, unrecorded) == (0, 1, 0), point
            ledger = outcome.ledger(unrecorded, step)
            assert ledger["idempotency_key"].nunique() == len(ledger) - 1, point
            assert runs.loc[unrecorded, "effects_exactly_once"], point
        # the act's output committed: replayed, the tool is not called again
        assert repeated(runs, killed[f"dbos.after_act_output:{step}"]) == (0, 0, 0)
        # verify's row rolled back: verify (pure) runs again, nothing is re-executed
        assert repeated(runs, killed[f"dbos.before_verify_commit:{step}"]) == (0, 0, 0)
    dequeued = next(v for k, v in killed.items() if k.startswith("dbos.after_dequeue"))
    assert repeated(runs, dequeued) == (0, 0, 0)
    assert (runs["status"] == runs["expected_status"]).all()


async def test_dbos_steps_are_at_least_once_at_the_shared_phase_boundaries(
    write_scenario: ScenarioFactory, tmp_path: Path, pg_dsn: str
) -> None:
    """A kill inside a step (its function done, its output not recorded) runs that step
    again: a second LLM call after `after_reason`, a second tool execution after
    `after_act`; after the step is recorded (`after_verify` is still inside verify,
    `after_commit` is after it) nothing is repeated but the pure verify."""
    faults = [
        {"kind": "crash_point", "point": point, "step": 1}
        for point in ("after_reason", "after_act", "after_verify", "after_commit")
    ]
    runs_named = [f"run-{i:06d}" for i in range(4)]
    for fault, run in zip(faults, runs_named, strict=True):
        fault["run"] = run
    path = write_scenario(runs=4, faults=faults, **SERIAL)
    (outcome,) = await run_bench(path, ["dbos"], tmp_path / "r", pg_dsn)
    killed = fired(outcome)
    assert len(killed) == 4, killed
    assert outcome.summary["integrity"] == 1.0, outcome.report()
    runs = outcome.runs
    assert repeated(runs, killed["after_reason:1"]) == (1, 0, 0)
    assert repeated(runs, killed["after_act:1"]) == (0, 1, 0)
    assert repeated(runs, killed["after_verify:1"]) == (0, 0, 0)
    assert repeated(runs, killed["after_commit:1"]) == (0, 0, 0)
