"""A LangGraph worker killed by SIGKILL mid-run, for every saver and durability mode.

What LangGraph documents, and what these tests therefore assert:
- `sync`: "changes are persisted synchronously before the next step starts", so a
  restarted worker resumes each thread from its last checkpoint and re-executes at
  most the node that was running (one LLM call or one tool execution per run).
- `async`: "changes are persisted asynchronously while the next step executes", so
  the thread also resumes from its last checkpoint: nothing acknowledged is redone.
- `exit`: "changes are persisted only when the graph exits", so a killed invocation
  loses all its progress: every node runs again (repeated LLM calls, raw duplicate
  tool executions that the stable idempotency key keeps from being applied twice).
- the memory saver keeps checkpoints in the worker: its runs die with it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.backends.langgraph.support import (
    KILL_SCENARIO,
    ExternalFor,
    FinishedAndBusy,
    Outcome,
    acknowledgement_behind_by,
    mid_run_with_commits,
    mid_run_without_commits,
    run_bench,
)
from tests.conftest import ScenarioFactory

pytestmark = pytest.mark.integration

STEPS = int(KILL_SCENARIO["steps"])


def report(outcome: Outcome) -> None:
    """Print what the combination lost or repeated (visible with -s, and in failures)."""
    runs = outcome.runs
    print(
        f"\n{outcome.backend}: integrity {outcome.summary['integrity']}, wasted "
        f"{outcome.summary['wasted']}, statuses {runs['status'].value_counts().to_dict()}"
    )
    for run_id, row in runs.iterrows():
        print(
            f"  {run_id}: {row['status']:9} llm {row['llm_calls']}/{row['llm_calls_expected']}"
            f" tools {row['tool_executions']} raw, {row['tool_applied']} applied"
            f" /{row['tool_expected']}  committed before kill:"
            f" {sorted(outcome.committed_before_kill().get(str(run_id), []))}"
        )


def resumed_after_kill(outcome: Outcome, run_id: str) -> bool:
    steps = outcome.table("steps")
    assert outcome.killed_at is not None
    mine = steps[(steps["run_id"] == run_id) & (steps["phase"] == "commit")]
    return bool((mine["start"] > outcome.killed_at).any())


@pytest.mark.parametrize("saver", ["sqlite", "postgres"])
@pytest.mark.parametrize("durability", ["sync", "async"])
async def test_a_killed_worker_resumes_each_thread_from_its_last_checkpoint(
    saver: str,
    durability: str,
    write_scenario: ScenarioFactory,
    external_for: ExternalFor,
    tmp_path: Path,
) -> None:
    backend = f"langgraph:{saver}?durability={durability}"
    outcome = await run_bench(
        write_scenario(**KILL_SCENARIO),
        backend,
        tmp_path / "r",
        external_for(backend),
        kill_when=mid_run_with_commits(STEPS),
    )
    report(outcome)

    # nothing acknowledged is lost, no effect is applied twice, every run completes
    assert outcome.summary["integrity"] == 1.0
    runs = outcome.runs
    assert (runs["tool_applied"] == runs["tool_expected"]).all()

    committed = outcome.committed_before_kill()
    interrupted = [r for r, done in committed.items() if len(done) < STEPS]
    assert interrupted
    calls = outcome.table("llm_calls")
    for run_id in interrupted:
        assert resumed_after_kill(outcome, run_id)
        # resumed, not restarted: no acknowledged step is reasoned about again
        reasoned = calls[calls["run_id"] == run_id].groupby("step").size()
        assert all(reasoned[step] == 1 for step in committed[run_id]), run_id

    if durability == "sync":
        # only the node that was running when the worker died runs again
        repeated = (runs["llm_calls"] - runs["llm_calls_expected"]) + (
            runs["tool_executions"] - runs["tool_expected"]
        )
        assert (repeated <= 1).all(), repeated.to_dict()


class DocumentedPromiseBroken(Exception):
    """Raised (not asserted) where LangGraph's documented behaviour does not hold, so an
    xfail on it cannot swallow any other failure."""


@pytest.mark.xfail(
    raises=DocumentedPromiseBroken,
    strict=True,
    reason="finding: in async mode nothing makes the graph wait for its saver (each put is "
    "only chained after the previous one), so under load checkpoints fall several steps "
    "behind execution, and a crash re-executes all of them, not just the step in flight",
)
@pytest.mark.parametrize("saver", ["sqlite", "postgres"])
async def test_async_durability_persists_each_step_while_the_next_one_executes(
    saver: str, write_scenario: ScenarioFactory, external_for: ExternalFor, tmp_path: Path
) -> None:
    """The documented promise, tested where it is hardest: six runs in flight on one
    worker, services answering at once. If a run ever executes three steps beyond the
    last one its saver acknowledged, the worker is killed; the docs imply that at most
    the superstep being persisted and the one executing (two nodes) run again."""
    backend = f"langgraph:{saver}?durability=async"
    path = write_scenario(
        **{
            **KILL_SCENARIO,
            "steps": 12,
            "load": {"concurrency": 6},
            "llm": {"latency": {"distribution": "constant", "ms": 0}},
            "tool_latency": {"distribution": "constant", "ms": 0},
        }
    )
    outcome = await run_bench(
        path,
        backend,
        tmp_path / "r",
        external_for(backend),
        kill_when=acknowledgement_behind_by(3),
        may_not_kill=True,
    )
    report(outcome)

    assert outcome.summary["integrity"] == 1.0
    runs = outcome.runs
    repeated = (runs["llm_calls"] - runs["llm_calls_expected"]) + (
        runs["tool_executions"] - runs["tool_expected"]
    )
    if not (repeated <= 2).all():
        raise DocumentedPromiseBroken(f"nodes re-executed per run: {repeated.to_dict()}")


@pytest.mark.parametrize("saver", ["sqlite", "postgres"])
async def test_exit_durability_loses_all_progress_of_a_killed_invocation(
    saver: str, write_scenario: ScenarioFactory, external_for: ExternalFor, tmp_path: Path
) -> None:
    backend = f"langgraph:{saver}?durability=exit"
    outcome = await run_bench(
        write_scenario(**KILL_SCENARIO),
        backend,
        tmp_path / "r",
        external_for(backend),
        kill_when=mid_run_without_commits(acts=3),
    )
    report(outcome)

    committed = outcome.committed_before_kill()
    acted = outcome.acted_before_kill()
    killed = [r for r, n in acted.items() if n and r not in committed]
    assert killed
    runs = outcome.runs
    reasons_before = outcome.reasoned_before_kill()
    for run_id in killed:
        row = runs.loc[run_id]
        # every node the killed invocation ran, it ran again after the restart
        assert row["llm_calls"] >= row["llm_calls_expected"] + reasons_before[run_id]
        assert row["tool_executions"] >= row["tool_expected"] + acted[run_id]
        # ...and the stable idempotency key kept each effect applied once
        assert row["tool_applied"] == row["tool_expected"]
        assert row["passed"]
    assert outcome.summary["wasted"]["llm_calls"] >= sum(reasons_before[r] for r in killed)
    assert outcome.summary["integrity"] == 1.0


@pytest.mark.parametrize("durability", ["exit", "async", "sync"])
async def test_the_memory_saver_loses_everything_its_worker_held(
    durability: str, write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    backend = f"langgraph:memory?durability={durability}"
    kill_when = FinishedAndBusy("langgraph-claims.sqlite")
    outcome = await run_bench(
        write_scenario(**KILL_SCENARIO), backend, tmp_path / "r", kill_when=kill_when
    )
    report(outcome)

    runs = outcome.runs
    # finished runs: their checkpoints died with the worker, a fresh saver has none
    assert kill_when.finished
    for run_id in kill_when.finished:
        assert runs.loc[run_id, "status"] == "lost"
        assert not runs.loc[run_id, "no_lost_step"]
        assert not runs.loc[run_id, "no_orphan_effect"]
    assert outcome.summary["integrity"] < 1.0
    # unfinished runs: the durable claim table hands them to the restarted worker, which
    # finds no checkpoint and starts over (repeated LLM calls, absorbed duplicate acts)
    acted = outcome.acted_before_kill()
    restarted = [r for r, n in acted.items() if n and r not in kill_when.finished]
    assert restarted
    for run_id in restarted:
        row = runs.loc[run_id]
        assert row["status"] == "completed"
        assert (
            row["llm_calls"] >= row["llm_calls_expected"] + outcome.reasoned_before_kill()[run_id]
        )
        assert row["tool_executions"] >= row["tool_expected"] + acted[run_id]
        assert row["tool_applied"] == row["tool_expected"]
    assert set(runs["status"]) == {"lost", "completed"}


@pytest.mark.parametrize("durability", ["sync", "exit"])
async def test_a_model_that_answers_differently_after_a_crash(
    durability: str, write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    """With `llm.divergent_replays` a repeated reason call answers differently, as a real
    model at temperature > 0 does. `sync` re-asks only the question that was in flight,
    whose answer nothing had acted on: every applied effect belongs to a decision the
    state keeps. `exit` re-asks questions whose answers were already acted on: the new
    decision reuses the old idempotency key, the ledger answers with the old output,
    verify rejects it, and the next attempt applies a second, different effect."""
    backend = f"langgraph:sqlite?durability={durability}"
    scenario = {**KILL_SCENARIO, "llm": {**KILL_SCENARIO["llm"], "divergent_replays": True}}
    kill_when = mid_run_with_commits(STEPS) if durability == "sync" else mid_run_without_commits()
    outcome = await run_bench(
        write_scenario(**scenario), backend, tmp_path / "r", kill_when=kill_when
    )
    report(outcome)

    runs = outcome.runs
    assert runs["decisions_agree"].all()
    if durability == "sync":
        assert (runs["tool_applied"] == runs["tool_expected"]).all()
        return
    acted = outcome.acted_before_kill()
    killed = [r for r, n in acted.items() if n and r not in outcome.committed_before_kill()]
    assert killed
    for run_id in killed:
        assert runs.loc[run_id, "tool_applied"] > runs.loc[run_id, "tool_expected"]
        assert not runs.loc[run_id, "state_match"]
