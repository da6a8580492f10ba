"""`deepagents`'s raw floor: a plain `create_deep_agent` program on the backend's saver and
durability mode (backends/deepagents/floor.py), named before LangGraph's floor on the
same saver, so the summary shows the ratio to both."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from harness.oracle import expected_run
from harness.runner import BenchmarkRun
from harness.scenario import load_scenario
from tests.conftest import ScenarioFactory
from tests.test_cli import durabench

pytest.importorskip("deepagents")

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SCENARIO = {
    "runs": 3,
    "steps": 3,
    "load": {"concurrency": 2},
    "verify": {"failure_probability": 0.3, "on_failure": "retry_act", "max_attempts": 3},
}


def _expected_steps(scenario: Path) -> int:
    loaded = load_scenario(scenario)
    return sum(len(expected_run(loaded, f"run-{i:06d}").state.steps) for i in range(loaded.runs))


def _assert_every_step_sampled(floors: pd.DataFrame, expected: int) -> None:
    for program, rows in floors.groupby(["program", "floor_pass"]):  # each floor pass
        assert len(rows) == expected, program  # every step of every run, as the oracle has it
        assert (rows["step_ms"] > 0).all() and (rows["overhead_ms"] >= 0).all()
        assert rows["start_latency_ms"].notna().sum() == 3  # one per run


@pytest.mark.parametrize(
    ("backend", "programs"),
    [
        (
            "deepagents:postgres",
            ["deepagents:postgres?durability=sync", "langgraph:postgres?durability=sync"],
        ),
        (
            "deepagents:sqlite?durability=async",
            ["deepagents:sqlite?durability=async", "langgraph:sqlite?durability=async"],
        ),
    ],
)
def test_floor_command_measures_the_deep_agent_on_the_backend_s_saver(
    backend: str, programs: list[str], write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    scenario = write_scenario(**SCENARIO)
    done = durabench("floor", str(scenario), "--backend", backend, "--out", str(tmp_path / "r"))
    assert done.returncode == 0, done.stderr
    (results,) = [p for p in (tmp_path / "r").iterdir() if p.is_dir() and not p.is_symlink()]
    floors = pd.read_parquet(results / "floors.parquet")
    assert set(json.loads((results / "floors.json").read_text())[backend]) == set(programs)
    assert floors["program"].unique().tolist() == programs  # run in this order
    assert set(floors.loc[floors["own"], "program"]) == {programs[0]}
    _assert_every_step_sampled(floors, _expected_steps(scenario))


async def test_with_floor_measures_the_deep_agent_floor_first_then_langgraph_s(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    scenario = write_scenario(**SCENARIO)
    bench = BenchmarkRun(scenario, ["deepagents"], tmp_path / "r")
    bench.with_floor = True
    results = await bench.execute()
    floor = results.read_json("summary.json")["deepagents"]["floor"]
    own = "deepagents:sqlite?durability=sync"
    assert floor["program"] == own
    assert set(floor["programs"]) == {own, "langgraph:sqlite?durability=sync"}
    assert floor["step_vs_floor"] > 0
    floors = pd.read_parquet(results.path / "floors.parquet")
    assert floors["program"].unique().tolist() == [own, "langgraph:sqlite?durability=sync"]
    _assert_every_step_sampled(floors, _expected_steps(scenario))
