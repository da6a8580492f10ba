"""`pydantic-ai:dbos` end to end through the runner on the session's Postgres, with real
worker processes killed by SIGKILL and restarted under the same executor id, asserted
against what the integration's and DBOS's documentation promise:

- "If your program ever fails, when it restarts all your workflows will automatically
  resume from the last completed step" (ai.pydantic.dev, Durable Execution with DBOS):
  the restarted executor recovers the workflows it held, and every run reaches the
  oracle's state.
- A recovered workflow "checks before every step if the step has an output stored in
  the database ... it skips re-executing that step" (docs.dbos.dev, How Workflows
  Work): a recorded model answer is not asked for again, a recorded tool verdict not
  acted again; the step in flight runs again (steps are at-least-once), here the tool
  step with the recorded model answer's arguments, so the same key, applied once.
- The integration routes model requests through DBOS steps; function tools are not
  wrapped (the tool's I/O is the `@DBOS.step` the documentation advises).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from backends.base import ExternalServices
from harness.errors import BackendError
from tests.backends.framework_support import (
    CRASH_SCENARIO,
    CRASHES,
    KILL_SCENARIO,
    deduplicated,
    kill_mid_act,
    run_with,
)
from tests.conftest import ScenarioFactory

pytest.importorskip("pydantic_ai.durable_exec.dbos")

pytestmark = pytest.mark.integration

BACKEND = "pydantic-ai:dbos"
VICTIM = f"{BACKEND}-worker-0"


def _extra(runs: pd.DataFrame, run_id: str) -> dict[str, object]:
    extra: dict[str, object] = json.loads(str(runs.loc[run_id, "backend_extra"]))
    return extra


def _processes(results_dir: Path) -> dict[str, set[str]]:
    """Run id -> the worker processes (`worker-N-PID`) that measured a phase of it."""
    held: dict[str, set[str]] = {}
    for path in (results_dir / "pydantic-ai_dbos" / "measurements").glob("*.jsonl"):
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:  # a torn last line of a killed worker
                continue
            if "run_id" in row:
                held.setdefault(str(row["run_id"]), set()).add(path.stem)
    return held


@pytest.mark.slow  # CI runs it with -m slow
async def test_a_worker_killed_mid_tool_call_is_recovered_by_dbos_and_applies_once(
    write_scenario: ScenarioFactory, tmp_path: Path, pg_dsn: str
) -> None:
    results, runs = await run_with(
        write_scenario(**KILL_SCENARIO),
        BACKEND,
        tmp_path / "r",
        ExternalServices(pg_dsn=pg_dsn),
        during=lambda bench: kill_mid_act(bench, BACKEND, VICTIM, after_commits=2),
    )
    assert results.read_json("summary.json")[BACKEND]["integrity"] == 1.0, runs.T
    assert runs["state_match"].all() and runs["effects_exactly_once"].all()
    # the tool step in flight ran again under its first key: a raw duplicate, applied once
    assert runs["tool_executions"].sum() > runs["tool_applied"].sum()
    assert (runs["tool_applied"] == runs["tool_expected"]).all()
    assert deduplicated(runs) > 0
    # recovered by DBOS: the restarted executor (same id, a new process) finished them
    for run_id in runs.index:
        assert _extra(runs, run_id)["dbos_status"] == "SUCCESS"
        assert _extra(runs, run_id)["output_agrees"] is True
    resumed = {r for r, procs in _processes(results.path).items() if len(procs) > 1}
    assert resumed, _processes(results.path)


@pytest.mark.slow
async def test_crashes_mid_tool_between_steps_and_after_a_model_answer_are_survived(
    write_scenario: ScenarioFactory, tmp_path: Path, pg_dsn: str
) -> None:
    """after_act: the tool step runs again, the model is not asked again; after_commit
    (a worker restart between two steps): the next model step, not yet recorded, runs
    again, the tool is not called again; after_reason: the model step whose answer was
    not recorded asks the model again."""
    results, runs = await run_with(
        write_scenario(**CRASH_SCENARIO), BACKEND, tmp_path / "r", ExternalServices(pg_dsn=pg_dsn)
    )
    faults = pd.read_parquet(results.path / "faults.parquet")
    fired = faults[faults["kind"] == "crash_point"]
    assert len(fired) == len(CRASHES) and (fired["outcome"] == "ok").all(), fired
    assert results.read_json("summary.json")[BACKEND]["integrity"] == 1.0, runs.T
    closing = 1  # every run asks the model once more than the oracle: the closing answer
    acted, between, reasoned = (runs.loc[f"run-00000{i}"] for i in range(3))
    assert acted["tool_executions"] == acted["tool_expected"] + 1
    assert acted["tool_applied"] == acted["tool_expected"]
    assert acted["llm_calls"] == acted["llm_calls_expected"] + closing
    assert between["tool_executions"] == between["tool_expected"]
    assert between["llm_calls"] == between["llm_calls_expected"] + closing
    assert reasoned["tool_executions"] == reasoned["tool_expected"]
    assert reasoned["llm_calls"] == reasoned["llm_calls_expected"] + closing + 1


def test_both_variants_load_each_with_its_own_substrate_s_options() -> None:
    from backends.base import BUILTIN_BACKENDS, load_backend
    from backends.pydantic_ai.backend import PydanticAITemporalBackend
    from backends.pydantic_ai.dbos_backend import PydanticAIDbosBackend

    on_dbos = load_backend("pydantic-ai:dbos?workers=2&slots=8")
    assert isinstance(on_dbos, PydanticAIDbosBackend) and on_dbos.slots == 8
    assert isinstance(load_backend("pydantic-ai:temporal?workers=2"), PydanticAITemporalBackend)
    with pytest.raises(BackendError, match="unknown option 'heartbeat_s'; options: poll_s"):
        load_backend("pydantic-ai:dbos?heartbeat_s=1")
    assert "DBOSAgent deprecated" in BUILTIN_BACKENDS[BACKEND].stage
