"""Raw floors: every built-in backend has one, `durabench floor` measures it on the servers a
benchmark brings up, and `durabench run --with-floor` puts the ratios in summary.json."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pandas as pd
import pytest

from backends.base import BUILTIN_BACKENDS
from harness.evaluate import floor_passes, start_latencies, steady_steps_per_s
from harness.floor import AFTER_PASS, BEFORE_PASS, read_floors
from harness.oracle import expected_run
from harness.runner import BenchmarkRun
from harness.scenario import load_scenario
from tests.conftest import ScenarioFactory
from tests.test_cli import durabench

FLOOR_SCENARIO = {
    "runs": 3,
    "steps": 3,
    "load": {"concurrency": 2},
    "verify": {"failure_probability": 0.3, "on_failure": "retry_act", "max_attempts": 3},
}

RUNS = [f"run-{i:06d}" for i in range(3)]


@pytest.mark.parametrize("family", sorted(BUILTIN_BACKENDS))
def test_every_builtin_backend_names_a_floor_program(family: str) -> None:
    module = importlib.import_module(BUILTIN_BACKENDS[family].floor)
    assert callable(module.floor_programs)
    assert callable(module.main)  # runnable as `python -m <module>`


def test_start_latency_runs_from_the_start_request_to_the_first_phase() -> None:
    runs = pd.DataFrame({"run_id": ["a", "b"], "started_at": [10.0, 20.0]})
    steps = pd.DataFrame({"run_id": ["a", "a", "b"], "start": [10.5, 11.0, 20.25]})
    assert sorted(start_latencies(runs, steps).round(3)) == [250.0, 500.0]


def test_steady_throughput_leaves_ramp_up_and_drain_out() -> None:
    # 100 commits evenly 10 ms apart, then a 10 s drain tail of one commit
    ends = pd.Series([i * 0.01 for i in range(100)] + [11.0])
    steady = steady_steps_per_s(ends)
    assert steady is not None and 95 <= steady <= 105
    assert steady_steps_per_s(pd.Series([1.0, 2.0])) is None  # too few to tell


@pytest.mark.integration
@pytest.mark.parametrize(
    "backend",
    [
        "baseline",
        "pgstore",
        *(
            pytest.param(name, marks=pytest.mark.slow)
            for name in (
                "pgstore-naive",
                "temporal",
                "langgraph:memory",
                "langgraph:sqlite",
                "langgraph:postgres?durability=sync",
                "cloudflare",  # its floor, and the same floor writing the adapter's rows
            )
        ),
    ],
)
def test_floor_command_measures_each_floor_program(
    backend: str, write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    scenario = write_scenario(**FLOOR_SCENARIO)
    expected = sum(len(expected_run(load_scenario(scenario), r).state.steps) for r in RUNS)
    done = durabench("floor", str(scenario), "--backend", backend, "--out", str(tmp_path / "r"))
    assert done.returncode == 0, done.stderr
    assert "raw floors" in done.stdout
    (results,) = [p for p in (tmp_path / "r").iterdir() if p.is_dir() and not p.is_symlink()]
    floors = pd.read_parquet(results / "floors.parquet")
    figures = json.loads((results / "floors.json").read_text())[backend]
    own = floors[floors["own"]]
    assert own["program"].nunique() == 1  # the backend's own floor, named first
    for program, rows in floors.groupby("program"):
        assert len(rows) == expected, program  # every step of every run, as the oracle has it
        assert (rows["step_ms"] >= rows["overhead_ms"]).all()
        assert (rows["overhead_ms"] >= 0).all()
        assert rows["start_latency_ms"].notna().sum() == 3  # one per run
        assert figures[program]["step_ms"]["p50"] > 0


@pytest.mark.integration
async def test_with_floor_puts_ratios_to_the_floor_and_the_baseline_in_the_summary(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    scenario = write_scenario(**FLOOR_SCENARIO)
    bench = BenchmarkRun(scenario, ["baseline", "pgstore"], tmp_path)
    bench.with_floor = True
    results = await bench.execute()
    summary = results.read_json("summary.json")
    floor = summary["pgstore"]["floor"]
    assert floor["program"] == "pgstore"
    assert set(floor["programs"]) == {"pgstore", "event-log", "postgres-insert"}
    assert floor["step_vs_floor"] > 0 and floor["overhead_vs_floor"] > 0
    assert floor["step_vs_floor"] == pytest.approx(
        summary["pgstore"]["step_latency_ms"]["p50"] / floor["step_p50_ms"], rel=1e-2
    )
    assert summary["pgstore"]["step_vs_baseline"] > 0
    assert summary["baseline"]["floor"]["program"] == "baseline"
    for backend in ("baseline", "pgstore"):
        assert summary[backend]["start_latency_ms"]["p50"] is not None
    # the floor's tool calls are its own trials: the benchmark's runs are judged as before
    assert summary["pgstore"]["integrity"] == 1.0


@pytest.mark.integration
async def test_with_floor_runs_the_floor_before_and_after_the_runs_and_reports_each_pass(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    scenario = write_scenario(**FLOOR_SCENARIO)
    bench = BenchmarkRun(scenario, ["baseline"], tmp_path)
    bench.with_floor = True
    results = await bench.execute()
    floors = read_floors(results)
    steps = results.read_table("steps")
    # the floor ran once entirely before the benchmark's first phase (its log is written
    # when the program exits) and once after its last; each pass under its own run ids
    logs = results.path / "baseline" / "logs"
    assert (logs / "floor-0-before.log").stat().st_mtime <= steps["start"].min()
    assert (logs / "floor-0-after.log").stat().st_mtime >= steps["end"].max()
    assert set(floors["floor_pass"]) == {BEFORE_PASS, AFTER_PASS}
    before = floors[floors["floor_pass"] == BEFORE_PASS]
    after = floors[floors["floor_pass"] == AFTER_PASS]
    assert len(before) == len(after) > 0
    assert not set(before["run_id"]) & set(after["run_id"])
    assert floors["service_ms"].gt(0).all()

    entry = results.read_json("summary.json")["baseline"]
    floor = entry["floor"]
    by_pass = floor["step_vs_floor_by_pass"]
    assert set(by_pass) == {BEFORE_PASS, AFTER_PASS}
    assert min(by_pass.values()) <= floor["step_vs_floor"] * 1.001
    assert max(by_pass.values()) >= floor["step_vs_floor"] * 0.999
    assert floor_passes(floor) == f"{by_pass['before']:.2f}x / {by_pass['after']:.2f}x"
    # the services' own time per step, the benchmark's against the floor's
    assert entry["service_ms"]["p50"] > 0 and floor["service_p50_ms"] > 0
    assert floor["service_vs_floor"] == pytest.approx(
        entry["service_ms"]["p50"] / floor["service_p50_ms"], rel=1e-2
    )
