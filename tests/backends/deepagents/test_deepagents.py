"""`deepagents` end to end through the runner: a Deep Agents agent on LangGraph's SQLite
checkpointer, with real worker processes killed by SIGKILL mid tool call and at the
shared phase boundaries (tests/backends/framework_support.py). LangGraph's persistence
promises, in durability `sync`, that a resumed thread re-runs at most the node in
flight; the re-run tool call is the checkpointed one, so it carries the same key."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from backends.base import ExternalServices
from tests.backends.framework_support import (
    CRASH_SCENARIO,
    CRASHES,
    KILL_SCENARIO,
    deduplicated,
    kill_mid_act,
    run_with,
)
from tests.conftest import ScenarioFactory

pytest.importorskip("deepagents")
pytestmark = pytest.mark.integration

BACKEND = "deepagents:sqlite"
NO_SERVERS = ExternalServices()


async def test_a_worker_killed_mid_tool_call_resumes_from_its_checkpoint(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    results, runs = await run_with(
        write_scenario(**KILL_SCENARIO),
        BACKEND,
        tmp_path / "r",
        NO_SERVERS,
        during=lambda bench: kill_mid_act(bench, BACKEND, "deepagents-sqlite-worker-0", 2),
    )
    assert results.read_json("summary.json")[BACKEND]["integrity"] == 1.0, runs.T
    assert runs["tool_executions"].sum() > runs["tool_applied"].sum()
    assert deduplicated(runs) > 0


@pytest.mark.slow
async def test_crashes_at_phase_boundaries_and_between_steps_are_survived(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    results, runs = await run_with(
        write_scenario(**CRASH_SCENARIO), BACKEND, tmp_path / "r", NO_SERVERS
    )
    faults = pd.read_parquet(results.path / "faults.parquet")
    fired = faults[faults["kind"] == "crash_point"]
    assert len(fired) == len(CRASHES) and (fired["outcome"] == "ok").all(), fired
    assert results.read_json("summary.json")[BACKEND]["integrity"] == 1.0, runs.T
    acted = runs.loc["run-000000"]
    assert acted["tool_executions"] > acted["tool_applied"]
