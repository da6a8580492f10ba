"""The Cloudflare backend on the real local runtime (wrangler dev, workerd), killed with
real signals: what the runtime does after a crash, and what the Workflow's steps
guarantee once something wakes an instance again.

- A killed runtime (wrangler and workerd SIGKILLed together, restarted by the supervisor
  on the same persist directory) resumes no instance: the ones in flight stay `running`
  with the steps they had persisted, and no workerd of the old runtime is left behind.
- With `recover=wake` (an event sent to every open instance after a restart) each crash
  point shows the step semantics: an output persisted is replayed, never re-executed;
  a phase whose output was not persisted runs again (the act under its first key, so
  the tool applies it once).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.platform.local import process_tree
from tests.backends.cloudflare.cloudflare_support import needs_runtime
from tests.backends.crash_support import fired, repeated
from tests.backends.pgstore.pgstore_support import run_bench
from tests.conftest import ScenarioFactory

pytestmark = [pytest.mark.integration, needs_runtime]

SLOW_LLM: dict[str, Any] = {"llm": {"latency": {"distribution": "constant", "ms": 15}}}


def _left_in(directory: Path) -> list[int]:
    """Processes still running in `directory` (wrangler and workerd run in the backend's
    work directory): none may outlive the run."""
    found = []
    for pid in process_tree(1):
        try:
            cwd = Path(f"/proc/{pid}/cwd").resolve()
        except OSError:
            continue
        if cwd.is_relative_to(directory.resolve()):
            found.append(pid)
    return found


def _persisted(path: Path) -> dict[str, dict[str, Any]]:
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {entry["run_id"]: entry for entry in lines}


async def test_instances_of_a_killed_runtime_stay_running_with_the_steps_they_had(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    path = write_scenario(
        runs=6,
        steps=6,
        load={"concurrency": 3},
        deadline_s=15,
        faults=[{"kind": "kill", "after_steps": 5, "restart_delay_s": 0.3}],
        verify={"failure_probability": 0.0},
        **SLOW_LLM,
    )
    (outcome,) = await run_bench(path, ["cloudflare"], tmp_path / "r")
    runs = outcome.runs
    stuck = runs[runs["status"] == "running"]
    assert len(stuck) == 3, runs[["status", "passed"]]  # the three in flight when it died
    assert not stuck["passed"].any()
    done = runs[runs["status"] == "completed"]
    assert done["passed"].all() and len(done) == 3  # started on the restarted runtime
    persisted = _persisted(outcome.results.path / "persisted.jsonl")
    for run_id in stuck.index:
        extra = persisted[run_id]["extra"]
        assert extra["workflow_status"] == "running"
        assert 0 < len(persisted[run_id]["state"]["steps"]) < 6
    assert _left_in(tmp_path) == []  # wrangler and every workerd died with the runtime


@pytest.mark.slow  # CI runs it with -m slow
async def test_woken_instances_replay_persisted_steps_and_rerun_only_the_phase_in_flight(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    faults = [{"kind": "crash_point", "point": "all", "step": 1}]
    path = write_scenario(
        runs=7, steps=2, load={"concurrency": 1}, faults=faults, deadline_s=60,
        verify={"failure_probability": 0.0},
    )  # fmt: skip
    (outcome,) = await run_bench(path, ["cloudflare?recover=wake"], tmp_path / "r")
    killed = fired(outcome)
    assert len(killed) == 7, killed
    assert outcome.summary["integrity"] == 1.0, outcome.report()
    runs = outcome.runs
    # inside reason's step.do: its output was never persisted, the LLM is asked again
    assert repeated(runs, killed["after_reason:1"]) == (1, 0, 0)
    # inside act's step.do: the effect applied, its output not persisted: the act runs
    # again under the same key, the ledger applies it once
    assert repeated(runs, killed["after_act:1"]) == (0, 1, 0)
    ledger = outcome.ledger(killed["after_act:1"], 1)
    assert ledger["idempotency_key"].nunique() == 1 and ledger["applied"].sum() == 1
    # persisted outputs are replayed, nothing else is executed again
    for point in ("after_verify:1", "before_commit:1", "after_commit:1"):
        assert repeated(runs, killed[point]) == (0, 0, 0), point
    assert repeated(runs, killed["cloudflare.after_act_output:1"]) == (0, 0, 0)
    started = next(v for k, v in killed.items() if k.startswith("cloudflare.after_start"))
    assert repeated(runs, started) == (0, 0, 0)
