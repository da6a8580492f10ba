"""The runner end to end on real processes: services, baseline workers, checker, results."""

from __future__ import annotations

import asyncio
import json
import signal
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from harness.errors import BackendError
from harness.measure import read_rows
from harness.oracle import expected_run, run_ids
from harness.recheck import recheck
from harness.results import ResultsDir
from harness.runner import BenchmarkRun
from tests.conftest import ScenarioFactory

pytestmark = pytest.mark.integration

RESULT_FILES = (
    "manifest.json",
    "steps.parquet",
    "runs.parquet",
    "summary.json",
    "persisted.jsonl",
    "ledger.parquet",
    "llm_calls.parquet",
    "scenario.yaml",
)


async def test_baseline_completes_every_run_with_full_integrity(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    bench = BenchmarkRun(write_scenario(), ["baseline"], tmp_path / "results")
    results = await bench.execute()

    for name in RESULT_FILES:
        assert (results.path / name).is_file(), name
    manifest = results.read_json("manifest.json")
    assert manifest["status"] == "complete"
    assert manifest["seed"] == 11
    assert manifest["environment"]["packages"]["durabench"]
    summary = results.read_json("summary.json")["baseline"]
    assert summary["runs"] == summary["completed"] == summary["passed"] == 6
    assert summary["integrity"] == 1.0
    oracle = [expected_run(bench.scenario, run_id) for run_id in run_ids(bench.scenario)]
    assert summary["committed_steps"] == sum(len(o.state.steps) for o in oracle)
    runs = pd.read_parquet(results.path / "runs.parquet")
    assert list(runs["status"]) == [o.state.status for o in oracle]
    steps = pd.read_parquet(results.path / "steps.parquet")
    assert {"reason", "act", "verify", "commit"} <= set(steps["phase"])


async def test_check_reproduces_the_stored_verdicts(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    results = await BenchmarkRun(write_scenario(), ["baseline"], tmp_path / "r").execute()
    outcome = recheck(ResultsDir.open(results.path))
    assert outcome.differences == []
    assert outcome.summary["baseline"]["integrity"] == 1.0


async def test_check_notices_tampered_results(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    results = await BenchmarkRun(write_scenario(), ["baseline"], tmp_path / "r").execute()
    persisted = results.read_jsonl("persisted.jsonl")
    persisted[0]["state"]["steps"][0]["output"]["ref"] = "forged"
    (results.path / "persisted.jsonl").write_text("".join(json.dumps(p) + "\n" for p in persisted))

    outcome = recheck(ResultsDir.open(results.path))
    changed = {(d["run_id"], d["verdict"]) for d in outcome.differences}
    assert (persisted[0]["run_id"], "state_match") in changed
    assert (persisted[0]["run_id"], "ledger_agrees") in changed


async def test_killing_the_baseline_worker_loses_runs(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    """The baseline keeps state in memory, so a SIGKILL mid-run must fail integrity."""
    path = write_scenario(
        runs=6,
        steps=12,
        load={"concurrency": 6},
        llm={"latency": {"distribution": "constant", "ms": 15}},
        tool_latency={"distribution": "constant", "ms": 5},
    )
    bench = BenchmarkRun(path, ["baseline"], tmp_path / "r")

    async def kill_after_first_commits() -> int:
        while True:
            await asyncio.sleep(0.02)
            if bench.platform is None or bench.results is None:
                continue
            rows = read_rows(bench.results.backend_dir("baseline") / "measurements")
            if sum(1 for r in rows if r["phase"] == "commit") >= 6:
                return bench.platform.signal("baseline-worker-0", signal.SIGKILL)

    killer = asyncio.create_task(kill_after_first_commits())
    results = await bench.execute()
    assert killer.done()

    summary = results.read_json("summary.json")["baseline"]
    assert summary["integrity"] < 1.0
    runs = pd.read_parquet(results.path / "runs.parquet")
    lost = runs[runs["status"] == "lost"]
    assert not lost.empty
    assert not lost["complete"].any()
    # steps the dead worker acknowledged are gone from (non-existent) persisted state
    assert (lost["no_lost_step"] == False).any()  # noqa: E712
    assert summary["anomalies"]["no_orphan_effect"] > 0


async def test_a_third_party_backend_loads_by_import_path(
    write_scenario: ScenarioFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plugin_dir = tmp_path / "plugins"
    plugin_dir.mkdir()
    (plugin_dir / "acme_backend.py").write_text(
        textwrap.dedent(
            """
            from backends.baseline import BaselineBackend

            class AcmeBackend(BaselineBackend):
                \"\"\"A backend that lives outside durabench.\"\"\"
                name = "acme"

                def describe(self):
                    return {"vendor": "acme", **super().describe()}
            """
        )
    )
    monkeypatch.syspath_prepend(str(plugin_dir))
    results = await BenchmarkRun(
        write_scenario(), ["acme_backend:AcmeBackend"], tmp_path / "r"
    ).execute()
    manifest = results.read_json("manifest.json")
    assert manifest["backend_details"]["acme_backend:AcmeBackend"]["vendor"] == "acme"
    summary = results.read_json("summary.json")["acme_backend:AcmeBackend"]
    assert summary["integrity"] == 1.0


def test_unknown_backend_names_the_existing_ones(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    with pytest.raises(BackendError, match="built-in backends: baseline"):
        BenchmarkRun(write_scenario(), ["nosuch"], tmp_path)
    with pytest.raises(BackendError, match="cannot import"):
        BenchmarkRun(write_scenario(), ["nosuch_module_xyz:Thing"], tmp_path)
    assert not (tmp_path / "results").exists()


async def test_open_loop_arrivals_and_human_approval(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    path = write_scenario(
        load={"concurrency": None, "arrival_rate": 50},
        verify={"failure_probability": 0.0},
        approval={"after_step": 1, "delay_s": 0.05, "ttl_s": 5},
    )
    results = await BenchmarkRun(path, ["baseline"], tmp_path / "r").execute()
    summary = results.read_json("summary.json")["baseline"]
    assert summary["integrity"] == 1.0
    steps = pd.read_parquet(results.path / "steps.parquet")
    assert (steps["phase"] == "approval").sum() == 6


async def test_a_run_nobody_approves_expires_as_the_oracle_predicts(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    path = write_scenario(runs=2, approval={"after_step": 0, "delay_s": None, "ttl_s": 0.3})
    results = await BenchmarkRun(path, ["baseline"], tmp_path / "r").execute()
    runs = pd.read_parquet(results.path / "runs.parquet")
    assert set(runs["status"]) == {"expired"}
    assert runs["passed"].all()


async def test_trials_repeat_the_same_tasks_and_report_pass_k(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    bench = BenchmarkRun(write_scenario(runs=3), ["baseline"], tmp_path / "r", trials=3)
    results = await bench.execute()
    runs = pd.read_parquet(results.path / "runs.parquet")
    assert len(runs) == 9
    persisted = {p["run_id"]: p["state"] for p in results.read_jsonl("persisted.jsonl")}
    # the same task gets the same work in every trial (only the run id differs)
    first, third = persisted["run-000001"], persisted["run-000001~t2"]
    assert [s["arguments"] for s in first["steps"]] == [s["arguments"] for s in third["steps"]]
    summary = results.read_json("summary.json")["baseline"]
    assert summary["trials"] == 3
    assert summary["pass_k"] == summary["integrity"] == 1.0


async def test_pass_k_counts_a_task_only_when_every_trial_passed(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    path = write_scenario(
        runs=4,
        steps=30,
        load={"concurrency": 8},
        verify={"failure_probability": 0.0},
        llm={"latency": {"distribution": "constant", "ms": 10}},
        faults=[
            {"kind": "crash_point", "point": "after_commit", "run": "run-000001~t1", "step": 3}
        ],
    )
    results = await BenchmarkRun(path, ["baseline"], tmp_path / "r", trials=2).execute()
    summary = results.read_json("summary.json")["baseline"]
    runs = pd.read_parquet(results.path / "runs.parquet").set_index("run_id")
    assert not runs.loc["run-000001~t1", "passed"]
    tasks_all_passed = sum(
        bool(runs.loc[t, "passed"] and runs.loc[f"{t}~t1", "passed"])
        for t in ("run-000000", "run-000001", "run-000002", "run-000003")
    )
    assert summary["pass_k"] == tasks_all_passed / 4
    assert summary["pass_k"] <= summary["integrity"]
