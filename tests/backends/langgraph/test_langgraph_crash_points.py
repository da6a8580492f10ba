"""LangGraph's own crash points, around each write of its checkpointer (a node's
pending writes, the superstep's checkpoint), for each saver and each durability mode,
on a real worker killed by a real SIGKILL.

One `crash_point` fault (`point: own, step: all`) expands into every point the
variant reaches (`exit` writes no pending writes and one checkpoint per invocation),
each pinned to a run of its own; runs go one at a time. What LangGraph documents, per
mode, is what the verdicts must show: `sync` re-runs at most the node in flight, a
killed `exit` invocation runs every node again, the memory saver keeps nothing.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from backends.base import crash_points_of, load_backend
from harness.runner import BenchmarkRun
from tests.backends.crash_support import fired
from tests.backends.langgraph.support import ExternalFor
from tests.backends.pgstore.pgstore_support import Outcome
from tests.conftest import ScenarioFactory

pytestmark = pytest.mark.integration

STEPS = 2


def repeated(runs: pd.DataFrame) -> pd.Series:
    """Nodes run again per run: extra LLM calls plus extra tool executions."""
    return (runs["llm_calls"] - runs["llm_calls_expected"]) + (
        runs["tool_executions"] - runs["tool_expected"]
    )


async def run_every_point(
    backend: str, write_scenario: ScenarioFactory, external_for: ExternalFor, tmp_path: Path
) -> tuple[Outcome, dict[str, str]]:
    points = crash_points_of(load_backend(backend))
    runs = sum(STEPS if p.per_step else 1 for p in points)
    path = write_scenario(
        runs=runs,
        steps=STEPS,
        load={"concurrency": 1},
        verify={"failure_probability": 0.0},
        faults=[{"kind": "crash_point", "point": "own", "step": "all"}],
    )
    bench = BenchmarkRun(path, [backend], tmp_path / "r", external=external_for(backend))
    outcome = Outcome(await bench.execute(), backend)
    killed = fired(outcome)
    assert len(killed) == runs, killed
    return outcome, killed


@pytest.mark.parametrize("saver", ["sqlite", "postgres"])
async def test_sync_re_runs_at_most_the_node_in_flight_at_each_saver_write(
    saver: str, write_scenario: ScenarioFactory, external_for: ExternalFor, tmp_path: Path
) -> None:
    backend = f"langgraph:{saver}?durability=sync"
    outcome, killed = await run_every_point(backend, write_scenario, external_for, tmp_path)
    assert outcome.summary["integrity"] == 1.0, outcome.report()
    extra = repeated(outcome.runs)
    assert (extra <= 1).all(), extra.to_dict()
    for step in range(STEPS):  # a stored checkpoint costs nothing
        assert extra[killed[f"langgraph.after_put:{step}"]] == 0


@pytest.mark.parametrize("saver", ["sqlite", "postgres"])
async def test_async_recovers_at_each_saver_write(
    saver: str, write_scenario: ScenarioFactory, external_for: ExternalFor, tmp_path: Path
) -> None:
    backend = f"langgraph:{saver}?durability=async"
    outcome, _ = await run_every_point(backend, write_scenario, external_for, tmp_path)
    assert outcome.summary["integrity"] == 1.0, outcome.report()
    runs = outcome.runs
    assert (runs["tool_applied"] == runs["tool_expected"]).all()  # stable keys


@pytest.mark.parametrize("saver", ["sqlite", "postgres"])
async def test_exit_runs_every_node_again_when_killed_before_its_only_checkpoint(
    saver: str, write_scenario: ScenarioFactory, external_for: ExternalFor, tmp_path: Path
) -> None:
    backend = f"langgraph:{saver}?durability=exit"
    outcome, killed = await run_every_point(backend, write_scenario, external_for, tmp_path)
    assert outcome.summary["integrity"] == 1.0, outcome.report()
    runs = outcome.runs
    lost = runs.loc[killed[f"langgraph.before_put:{STEPS - 1}"]]
    assert lost["llm_calls"] == 2 * lost["llm_calls_expected"]  # the whole invocation again
    assert lost["tool_executions"] == 2 * lost["tool_expected"]
    assert lost["tool_applied"] == lost["tool_expected"]
    assert repeated(runs)[killed[f"langgraph.after_put:{STEPS - 1}"]] == 0


# exit in the default run; async and sync (about 16 s each) with the long cases
SLOW_MODES = [pytest.param(mode, marks=pytest.mark.slow) for mode in ("async", "sync")]


@pytest.mark.parametrize("durability", ["exit", *SLOW_MODES])
async def test_the_memory_saver_loses_the_runs_its_killed_worker_had_finished(
    durability: str, write_scenario: ScenarioFactory, external_for: ExternalFor, tmp_path: Path
) -> None:
    backend = f"langgraph:memory?durability={durability}"
    outcome, _ = await run_every_point(backend, write_scenario, external_for, tmp_path)
    runs = outcome.runs.sort_index()
    assert runs.iloc[0]["status"] == "lost"  # finished before the next run's kill
    assert not runs.iloc[0]["no_lost_step"]
    assert runs.iloc[-1]["status"] == "completed"  # nothing killed its worker afterwards
    assert outcome.summary["integrity"] < 1.0
