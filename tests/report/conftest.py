"""Real results for the report tests, produced once per session.

* `steady`: no faults, the baseline and LangGraph's SQLite saver (a real durable
  backend, so the durability ratio and state bloat have something to show), 2 trials.
* `faulty`: the baseline under a worker pause and then a kill, slow enough that both
  land mid-run: integrity drops, the timeline has fault windows, the pause has
  recovery times.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.report import ReportPaths, build_report
from harness.runner import BenchmarkRun
from tests.conftest import TINY

# ~60 steps of 15 ms each per run (as in tests/test_nemesis.py): faults land mid-run
SLOW: dict[str, Any] = {
    "runs": 4,
    "steps": 60,
    "load": {"concurrency": 4},
    "verify": {"failure_probability": 0.0, "on_failure": "retry_act", "max_attempts": 3},
    "llm": {"latency": {"distribution": "constant", "ms": 10}},
    "tool_latency": {"distribution": "constant", "ms": 5},
}
# a run sleeps at least 60 x 15 ms in the services, plus the 0.4 s pause: the kill at
# 1.2 s lands before any run can have finished
FAULTS = [
    {"kind": "pause", "at_s": 0.3, "duration_s": 0.4},
    {"kind": "kill", "at_s": 1.2},
]


def write_scenario(directory: Path, name: str, **overrides: Any) -> Path:
    """TINY with top-level overrides (nested values are given whole)."""
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump({**TINY, "name": name, **overrides}, sort_keys=False))
    return path


async def run(scenario: Path, backends: list[str], out: Path, trials: int = 1) -> Path:
    results = await BenchmarkRun(scenario, backends, out, trials=trials).execute()
    return results.path


@dataclass(frozen=True)
class Runs:
    steady: Path
    faulty: Path


@pytest.fixture(scope="session")
async def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    root = tmp_path_factory.mktemp("report-runs")
    steady = await run(
        write_scenario(root, "steady"), ["baseline", "langgraph:sqlite"], root / "results", 2
    )
    faulty = await run(
        write_scenario(root, "faulty", **SLOW, faults=FAULTS), ["baseline"], root / "results"
    )
    return Runs(steady, faulty)


@pytest.fixture(scope="session")
def report(runs: Runs, tmp_path_factory: pytest.TempPathFactory) -> ReportPaths:
    return build_report([runs.steady, runs.faulty], tmp_path_factory.mktemp("report"))
