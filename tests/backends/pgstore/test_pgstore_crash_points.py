"""pgstore's and pgstore-naive's own crash points, every one at every step, on real
workers killed by a real SIGKILL at the boundary between their writes.

One `crash_point` fault (`point: own, step: all`) expands into one crash point per
(point, step) pair, each pinned to a run of its own, so each run's verdicts show what
the store does at exactly that boundary. Runs go one at a time: a kill interrupts
only the run it names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.backends.crash_support import fired, repeated
from tests.backends.pgstore.pgstore_support import run_bench
from tests.conftest import ScenarioFactory

pytestmark = pytest.mark.integration

EVERY_OWN_POINT = {"kind": "crash_point", "point": "own", "step": "all"}
SERIAL: dict[str, Any] = {"steps": 2, "load": {"concurrency": 1}, "faults": [EVERY_OWN_POINT]}


async def test_pgstore_recovers_at_each_of_its_own_boundaries_and_repeats_only_the_rolled_back_act(
    write_scenario: ScenarioFactory, tmp_path: Path, pg_dsn: str
) -> None:
    path = write_scenario(runs=9, **SERIAL)
    (outcome,) = await run_bench(path, ["pgstore"], tmp_path / "r", pg_dsn)
    killed = fired(outcome)
    assert len(killed) == 9, killed
    assert outcome.summary["integrity"] == 1.0, outcome.report()
    runs = outcome.runs

    for step in (0, 1):
        # the decision was recorded: the restarted worker reuses it
        assert repeated(runs, killed[f"pgstore.after_reason_event:{step}"]) == (0, 0, 0)
        # the act event rolled back: the act runs again under the same key, applied once
        rolled_back = killed[f"pgstore.before_act_commit:{step}"]
        assert repeated(runs, rolled_back) == (0, 1, 0)
        keys = outcome.ledger(rolled_back, step)["idempotency_key"]
        assert keys.nunique() == len(keys) - 1
        # the act event committed: its output is reused, the tool is not called again
        assert repeated(runs, killed[f"pgstore.after_act_event:{step}"]) == (0, 0, 0)
        # the step's commit rolled back: verify (pure) runs again, nothing else
        assert repeated(runs, killed[f"pgstore.before_step_commit:{step}"]) == (0, 0, 0)
    claimed = next(v for k, v in killed.items() if k.startswith("pgstore.after_claim"))
    assert repeated(runs, claimed) == (0, 0, 0)


async def test_pgstore_naive_applies_an_effect_twice_when_killed_before_its_row_commits(
    write_scenario: ScenarioFactory, tmp_path: Path, pg_dsn: str
) -> None:
    """Recorded anomaly: the row overwrite rolled back, so nothing says the step's act
    happened; the restarted worker runs the step again under a fresh key and the tool
    applies the effect a second time. After the commit, nothing is repeated."""
    path = write_scenario(runs=5, **SERIAL)
    (outcome,) = await run_bench(path, ["pgstore-naive"], tmp_path / "r", pg_dsn)
    killed = fired(outcome)
    assert len(killed) == 5, killed
    runs = outcome.runs
    print(outcome.report())

    for step in (0, 1):
        rolled_back = runs.loc[killed[f"pgstore-naive.before_row_commit:{step}"]]
        assert not rolled_back["effects_exactly_once"]
        assert rolled_back["state_match"] and rolled_back["no_duplicate_step"]
        assert rolled_back["tool_applied"] > rolled_back["tool_expected"]
        assert runs.loc[killed[f"pgstore-naive.after_row_commit:{step}"], "passed"]
    claimed = next(v for k, v in killed.items() if k.startswith("pgstore-naive.after_claim"))
    assert runs.loc[claimed, "passed"]
    assert (runs["status"] == runs["expected_status"]).all()  # durable: every run recovers
    assert outcome.summary["integrity"] == pytest.approx(3 / 5)
