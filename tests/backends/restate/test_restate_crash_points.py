"""Restate's own crash points, every one at every step, on real workers killed by a
real SIGKILL on the edges of the invocation's journal: after a `ctx.run` action's
effect and before its result is journaled (act, reason), and after the step's results
are acknowledged and its K/V state write was issued.

One `crash_point` fault (`point: own, step: all`) expands into one crash point per
(point, step) pair, each pinned to a run of its own; runs go one at a time. What the
verdicts must show is what Restate documents: a journaled action is replayed, not
re-executed; one whose result was not recorded is executed again (at-least-once).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.runner import BenchmarkRun
from tests.backends.crash_support import fired, repeated
from tests.backends.pgstore.pgstore_support import Outcome
from tests.backends.restate.support import BACKEND
from tests.conftest import ScenarioFactory

pytestmark = pytest.mark.integration


async def test_restate_reruns_the_unjournaled_action_and_replays_the_rest(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    path = write_scenario(
        runs=6,
        steps=2,
        load={"concurrency": 1},
        verify={"failure_probability": 0.0},
        faults=[{"kind": "crash_point", "point": "own", "step": "all"}],
    )
    outcome = Outcome(await BenchmarkRun(path, [BACKEND], tmp_path / "r").execute(), BACKEND)
    killed = fired(outcome)
    assert len(killed) == 6, killed
    assert outcome.summary["integrity"] == 1.0, outcome.report()
    runs = outcome.runs
    assert runs["state_match"].all() and runs["effects_exactly_once"].all()

    for step in (0, 1):
        # at-least-once: the effect happened, its result never reached the journal, so the
        # retry ran the act again with the same idempotency key and the ledger applied it once
        unjournaled = killed[f"restate.after_run_effect:{step}"]
        assert repeated(runs, unjournaled) == (0, 1, 0)
        ledger = outcome.ledger(unjournaled, step)
        assert ledger["idempotency_key"].nunique() == len(ledger) - 1
        assert ledger["applied"].sum() == ledger["idempotency_key"].nunique()
        # the LLM answered, the answer was not journaled: asked again, nothing else repeated
        assert repeated(runs, killed[f"restate.after_reason_effect:{step}"]) == (1, 0, 0)
        # every result of the step was journaled: the replay re-executes nothing
        assert repeated(runs, killed[f"restate.after_state_write:{step}"]) == (0, 0, 0)
