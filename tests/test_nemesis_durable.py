"""Faults that need a server or a store, against durable backends on real servers:
restart, outage and a partition of the worker->store link (pgstore on its embedded
Postgres), and a restart and a mid-run deploy (Temporal on its dev server)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from harness.results import ResultsDir
from harness.runner import BenchmarkRun
from tests.conftest import ScenarioFactory

pytestmark = pytest.mark.integration

LONG = {
    "runs": 4,
    "steps": 25,
    "load": {"concurrency": 4},
    "workers": 2,
    "verify": {"failure_probability": 0.0},
    "llm": {"latency": {"distribution": "constant", "ms": 10}},
    "tool_latency": {"distribution": "constant", "ms": 5},
}


async def run_with(
    write_scenario: ScenarioFactory, tmp_path: Path, backend: str, *faults: dict[str, Any]
) -> ResultsDir:
    path = write_scenario(**LONG, faults=list(faults))
    return await BenchmarkRun(path, [backend], tmp_path / "results").execute()


def only_fault(results: ResultsDir) -> dict[str, Any]:
    (row,) = pd.read_parquet(results.path / "faults.parquet").to_dict("records")
    return row


def summary(results: ResultsDir, backend: str) -> dict[str, Any]:
    data: dict[str, Any] = results.read_json("summary.json")[backend]
    return data


async def test_pgstore_survives_a_store_restart(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    results = await run_with(
        write_scenario, tmp_path, "pgstore", {"kind": "restart", "target": "store", "at_s": 0.5}
    )
    row = only_fault(results)
    assert row["outcome"] == "ok", row["detail"]
    assert row["selected"][0].startswith("store:")
    log = (results.path / "pgstore" / "logs" / "store.log").read_text()
    assert log.count("--- start") == 2, "the store really went down and came back"
    assert summary(results, "pgstore")["integrity"] == 1.0


async def test_pgstore_survives_an_outage_of_its_store(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    results = await run_with(
        write_scenario, tmp_path, "pgstore", {"kind": "outage", "at_s": 0.5, "duration_s": 1.5}
    )
    row = only_fault(results)
    assert row["outcome"] == "ok", row["detail"]
    assert row["actual_end"] - row["actual_start"] >= 1.5
    steps = pd.read_parquet(results.path / "steps.parquet")
    commits = steps[(steps["phase"] == "commit") & (steps["outcome"] == "ok")]
    during = commits[
        (commits["end"] > row["actual_start"] + 0.2) & (commits["end"] < row["actual_end"] - 0.2)
    ]
    assert during.empty, "nothing commits while the store is down"
    assert summary(results, "pgstore")["integrity"] == 1.0


async def test_a_partitioned_store_link_holds_commits_until_it_heals(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    results = await run_with(
        write_scenario,
        tmp_path,
        "pgstore",
        {
            "kind": "network",
            "target": "worker->store",
            "mode": "partition",
            "at_s": 0.5,
            "duration_s": 1.0,
        },
    )
    row = only_fault(results)
    assert row["outcome"] == "ok", row["detail"]
    assert row["selected"] == ["worker->store"]
    steps = pd.read_parquet(results.path / "steps.parquet")
    commits = steps[(steps["phase"] == "commit") & (steps["outcome"] == "ok")]
    during = commits[
        (commits["end"] > row["actual_start"] + 0.2) & (commits["end"] < row["actual_end"] - 0.1)
    ]
    assert during.empty, "the workers really lost their store"
    assert (commits["end"] > row["actual_end"]).any(), "and found it again after the heal"
    assert summary(results, "pgstore")["integrity"] == 1.0


@pytest.mark.slow  # a server restart and a rolling deploy: about 18 s
async def test_temporal_survives_a_server_restart_and_a_patched_deploy(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    results = await run_with(
        write_scenario,
        tmp_path,
        "temporal",
        {"kind": "restart", "target": "server", "at_s": 0.5},
        {"kind": "deploy", "version": "v2-patched", "at_s": 1.5},
    )
    rows = pd.read_parquet(results.path / "faults.parquet").set_index("kind")
    assert rows.loc["restart", "outcome"] == "ok", rows.loc["restart", "detail"]
    assert rows.loc["deploy", "outcome"] == "ok", rows.loc["deploy", "detail"]
    assert rows.loc["deploy", "detail"] == "deployed version v2-patched"
    log = (results.path / "temporal" / "logs" / "temporal-worker-0.log").read_text()
    assert log.count("--- start") == 2, "the workers were redeployed"
    s = summary(results, "temporal")
    assert s["integrity"] == 1.0
    assert s["nondeterminism"] == 0
