"""Temporal's own crash points, every one at every step, on real workers killed by a
real SIGKILL on the edges of Temporal's event history: after an activity's effect and
before its completion reaches the server, inside a workflow task before it completes,
and right after a workflow task completed.

One `crash_point` fault (`point: own, step: all`) expands into one crash point per
(point, step) pair, each pinned to a run of its own; runs go one at a time.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.runner import BenchmarkRun
from tests.backends.crash_support import fired, repeated
from tests.backends.pgstore.pgstore_support import Outcome
from tests.backends.temporal.support import DevServer
from tests.conftest import ScenarioFactory

pytestmark = pytest.mark.integration

BACKEND = "temporal?heartbeat_s=1&sticky_s=1&task_timeout_s=2"


async def test_temporal_retries_the_unreported_activity_and_replays_the_rest(
    write_scenario: ScenarioFactory, tmp_path: Path, temporal_server: DevServer
) -> None:
    path = write_scenario(
        runs=6,
        steps=2,
        load={"concurrency": 1},
        faults=[{"kind": "crash_point", "point": "own", "step": "all"}],
    )
    bench = BenchmarkRun(path, [BACKEND], tmp_path / "r", external=temporal_server.external())
    outcome = Outcome(await bench.execute(), BACKEND)
    killed = fired(outcome)
    assert len(killed) == 6, killed
    assert outcome.summary["integrity"] == 1.0, outcome.report()
    runs = outcome.runs

    for step in (0, 1):
        # at-least-once: the effect happened, the completion never reached the server, so
        # the activity ran again with the same idempotency key and the ledger applied it once
        unreported = killed[f"temporal.after_activity_effect:{step}"]
        assert repeated(runs, unreported) == (0, 1, 0)
        ledger = outcome.ledger(unreported, step)
        assert ledger["idempotency_key"].nunique() == len(ledger) - 1
        # the step's results were in the history: the replay re-executes no activity
        replayed = killed[f"temporal.before_workflow_task_completion:{step}"]
        assert repeated(runs, replayed) == (0, 0, 0)
        # killed as the scheduled reason started, before the LLM call: retried, nothing lost
        assert repeated(runs, killed[f"temporal.after_workflow_task:{step}"]) == (0, 0, 0)
