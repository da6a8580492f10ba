"""The crash tests every framework-on-Temporal backend passes (each framework's test
module runs them on its backend): what Temporal's documentation promises for the
integration's model and tool activities, checked with real SIGKILLs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tests.backends.framework_support import (
    CRASH_SCENARIO,
    CRASHES,
    KILL_SCENARIO,
    deduplicated,
    kill_mid_act,
    run_with,
)
from tests.backends.temporal.support import DevServer
from tests.conftest import ScenarioFactory

__all__ = ["crash_points_are_survived", "killed_mid_tool_call_loses_nothing"]


async def killed_mid_tool_call_loses_nothing(
    backend: str, write_scenario: ScenarioFactory, tmp_path: Path, server: DevServer
) -> None:
    """SIGKILL while a tool activity is in flight: the server retries the activities the
    dead worker held on its replacement, which replays each workflow's history; the
    retried tool call carries the recorded arguments, so the same key, and the ledger
    applies the effect once."""
    victim = f"{backend.partition('?')[0]}-worker-0"
    results, runs = await run_with(
        write_scenario(**KILL_SCENARIO),
        backend,
        tmp_path / "r",
        server.external(),
        during=lambda bench: kill_mid_act(bench, backend, victim, after_commits=2),
    )
    assert results.read_json("summary.json")[backend]["integrity"] == 1.0
    assert runs["state_match"].all() and runs["effects_exactly_once"].all()
    assert runs["tool_executions"].sum() > runs["tool_applied"].sum()
    assert deduplicated(runs) > 0


async def crash_points_are_survived(
    backend: str, write_scenario: ScenarioFactory, tmp_path: Path, server: DevServer
) -> None:
    """A kill after the tool applied its effect (activity not completed), between two
    steps (the step's result recorded, the next model activity just started) and after
    a model answer (not yet recorded): every run still reaches the oracle's state with
    each effect applied once; the after-act crash re-executes the act under its key."""
    results, runs = await run_with(
        write_scenario(**CRASH_SCENARIO), backend, tmp_path / "r", server.external()
    )
    faults = pd.read_parquet(results.path / "faults.parquet")
    fired = faults[faults["kind"] == "crash_point"]
    assert len(fired) == len(CRASHES) and (fired["outcome"] == "ok").all(), fired
    assert results.read_json("summary.json")[backend]["integrity"] == 1.0, runs.T
    acted = runs.loc["run-000000"]
    assert acted["tool_executions"] > acted["tool_applied"]  # re-executed, applied once
    assert runs.loc["run-000002", "llm_calls"] > runs.loc["run-000002", "llm_calls_expected"]
