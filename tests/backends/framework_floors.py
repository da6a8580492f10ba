"""What every framework-on-Temporal raw floor is held to (each framework's floor test
module runs these on its backend): the framework's own program runs on a real Temporal
dev server and times every committed step of every run; `--with-floor` reports it first,
before the hand-written Temporal floor, on the same server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

from harness.oracle import expected_run
from harness.runner import BenchmarkRun
from harness.scenario import Scenario
from tests.backends.temporal.support import DevServer
from tests.conftest import ScenarioFactory, Services
from tests.test_cli import REPO

__all__ = ["floor_lists_its_own_program_first", "floor_times_every_committed_step"]

FLOOR_TIMEOUT_S = 240.0
TINY_RUN = {"runs": 2, "steps": 2, "load": {"concurrency": 2}}


def committed_steps(
    scenario: Scenario, runs: list[str], aborted: bool = False
) -> set[tuple[str, int]]:
    """(task, step) of every step the oracle commits; with `aborted` also a step that
    aborts (the hand-written Temporal floor times it; a framework's commit never comes)."""
    return {
        (run_id, step.index)
        for run_id in runs
        for step in expected_run(scenario, run_id).state.steps
        if aborted or (step.verdicts and step.verdicts[-1])
    }


def floor_times_every_committed_step(
    module: str, program: str, services: Services, server: DevServer
) -> None:
    """The program alone, as `durabench floor` runs it: one sample per committed step of
    every run (the run ids are the tasks' floor trials), one start latency per run."""
    scenario = services.scenario
    done = subprocess.run(
        [sys.executable, "-m", module, "--json", "--scenario", str(services.scenario_path),
         "--llm-url", services.llm_url, "--tools-url", services.tools_url,
         "--address", server.address],
        cwd=REPO, capture_output=True, text=True, timeout=FLOOR_TIMEOUT_S,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["program"] == program
    assert result["runs"] == scenario.runs
    assert result["concurrency"] == scenario.load.concurrency
    tasks = sorted({s["run_id"].partition("~")[0] for s in result["samples"]})
    assert len(tasks) == scenario.runs
    timed = {(s["run_id"].partition("~")[0], s["step"]) for s in result["samples"]}
    assert timed == committed_steps(scenario, tasks)
    assert len(result["samples"]) == len(timed)  # each step timed once
    for sample in result["samples"]:
        assert sample["step_ms"] >= sample["overhead_ms"] >= 0, sample
    assert len(result["starts"]) == scenario.runs
    assert result["step_ms"]["p50"] > 0


async def floor_lists_its_own_program_first(
    backend: str, program: str, write_scenario: ScenarioFactory, tmp_path: Path, server: DevServer
) -> None:
    """`--with-floor`: the summary's floor is the framework's own program, then the
    hand-written Temporal floor, both with a sample per committed step."""
    path = write_scenario(**TINY_RUN)
    bench = BenchmarkRun(path, [backend], tmp_path / "r", external=server.external())
    bench.with_floor = True
    results = await bench.execute()
    summary = results.read_json("summary.json")[backend]
    assert summary["integrity"] == 1.0
    floor = summary["floor"]
    assert floor["program"] == program
    assert list(floor["programs"]) == [program, "temporal"]
    assert floor["programs"][program]["own"] and not floor["programs"]["temporal"]["own"]
    assert floor["step_vs_floor"] > 0
    floors = pd.read_parquet(results.path / "floors.parquet")
    scenario = bench.scenario
    for (name, _), rows in floors.groupby(["program", "floor_pass"]):  # each floor pass
        tasks = sorted({r.partition("~")[0] for r in rows["run_id"]})
        expected = committed_steps(scenario, tasks, aborted=name == "temporal")
        assert len(rows) == len(expected), name
