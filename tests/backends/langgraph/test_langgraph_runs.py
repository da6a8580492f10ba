"""Every saver runs the RAV graph to the oracle's state, through real worker processes."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import pandas as pd
import pytest

from harness.oracle import expected_run, run_ids
from harness.scenario import load_scenario
from tests.backends.langgraph.support import ExternalFor, run_bench
from tests.conftest import ScenarioFactory

pytestmark = pytest.mark.integration

SAVER_CLASS = {
    "memory": "InMemorySaver",
    "sqlite": "AsyncSqliteSaver",
    "postgres": "AsyncPostgresSaver",
}


@pytest.mark.parametrize(
    ("saver", "on_failure"),
    [("memory", "retry_act"), ("sqlite", "replan"), ("postgres", "replan")],
)
async def test_each_saver_completes_every_run_with_full_integrity(
    saver: str,
    on_failure: str,
    write_scenario: ScenarioFactory,
    external_for: ExternalFor,
    tmp_path: Path,
) -> None:
    backend = f"langgraph:{saver}"
    path = write_scenario(verify={"on_failure": on_failure})
    outcome = await run_bench(path, backend, tmp_path / "r", external_for(backend))

    summary = outcome.summary
    assert summary["runs"] == summary["completed"] == summary["passed"] == 6
    assert summary["integrity"] == 1.0
    assert summary["wasted"]["llm_calls"] == summary["wasted"]["tool_executions"] == 0
    scenario = load_scenario(path)
    oracle = {r: expected_run(scenario, r) for r in run_ids(scenario)}
    runs = outcome.runs
    assert {r: runs.loc[r, "status"] for r in oracle} == {
        r: o.state.status for r, o in oracle.items()
    }
    # the store's own figures: three supersteps per attempt, each checkpointed
    assert (runs["history_length"] >= 3 * runs["steps_persisted"]).all()
    assert (runs["bytes_persisted"] > 0).all()

    # every persisted step was acknowledged exactly once, by a commit row with its size
    steps = outcome.table("steps")
    commits = steps[steps["phase"] == "commit"]
    assert (commits["outcome"] == "ok").all()
    assert not commits.duplicated(["run_id", "step"]).any()
    assert len(commits) == runs["steps_persisted"].sum()
    assert (commits["bytes"] > 0).all()

    details = outcome.manifest_details()
    assert details["saver"] == SAVER_CLASS[saver]
    assert details["durability"] == "async"
    assert details["durability_source"] == "langgraph default"
    assert details["versions"]["langgraph"] == version("langgraph")


@pytest.mark.parametrize("saver", ["memory", "sqlite"])
async def test_human_approval_interrupts_and_resumes_the_thread(
    saver: str, write_scenario: ScenarioFactory, external_for: ExternalFor, tmp_path: Path
) -> None:
    backend = f"langgraph:{saver}"
    path = write_scenario(
        verify={"failure_probability": 0.0},
        approval={"after_step": 1, "delay_s": 0.05, "ttl_s": 5},
    )
    outcome = await run_bench(path, backend, tmp_path / "r", external_for(backend))

    assert outcome.summary["integrity"] == 1.0
    steps = outcome.table("steps")
    approvals = steps[steps["phase"] == "approval"]
    assert len(approvals) == 6
    assert (approvals["outcome"] == "ok").all()
    assert set(approvals["step"]) == {1}
    # the approval wait is not re-executed work: each step reasoned exactly once
    assert (outcome.runs["llm_calls"] == outcome.runs["llm_calls_expected"]).all()


async def test_a_run_nobody_approves_expires_in_its_own_checkpoint(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    path = write_scenario(runs=2, approval={"after_step": 0, "delay_s": None, "ttl_s": 0.3})
    outcome = await run_bench(path, "langgraph:sqlite", tmp_path / "r")

    runs = outcome.runs
    assert set(runs["status"]) == {"expired"}  # read from the persisted graph state
    assert runs["passed"].all()
    steps = outcome.table("steps")
    approvals = steps[steps["phase"] == "approval"]
    assert list(approvals["outcome"]) == ["fail", "fail"]
    assert outcome.manifest_details()["stale_cleaned"] == 2


async def test_the_act_node_keys_effects_by_logical_run_step_and_attempt(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    outcome = await run_bench(write_scenario(runs=2), "langgraph:sqlite", tmp_path / "r")
    ledger = outcome.table("ledger")
    expected = (
        ledger["run_id"] + "/" + ledger["step"].astype(str) + "/" + ledger["attempt"].astype(str)
    )
    assert (ledger["idempotency_key"] == expected).all()
    assert ledger["run_id"].str.fullmatch(r"run-\d{6}").all()  # logical, not the thread id
    persisted = pd.read_json(outcome.results.path / "persisted.jsonl", lines=True)
    assert all(
        t.endswith(r)
        for t, r in zip(
            persisted["extra"].map(lambda e: e["thread_id"]), persisted["run_id"], strict=True
        )
    )
