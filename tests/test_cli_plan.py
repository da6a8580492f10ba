"""`durabench plan` as a user runs it: the concrete fault timeline, and nothing runs."""

from __future__ import annotations

import json
from pathlib import Path

from harness.scenario import load_scenario
from harness.schedule import plan
from tests.conftest import ScenarioFactory
from tests.test_cli import durabench

FAULTS = [
    {"kind": "kill", "random": {"count": 2, "within_s": 10}},
    {"kind": "pause", "every_s": 2, "times": 2, "duration_s": 0.5},
    {
        "kind": "network",
        "target": "worker->store",
        "mode": "partition",
        "after_steps": 5,
        "duration_s": 1,
    },
    {"kind": "crash_point", "point": "after_act", "run": "run-000001", "step": 2},
]


def test_plan_prints_every_occurrence_in_time_order_and_runs_nothing(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    path = write_scenario(faults=FAULTS)
    result = durabench("plan", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    header, columns, *rows = result.stdout.splitlines()
    assert header == "tiny (seed 11): 6 occurrence(s) of 4 fault(s)"
    assert columns.split() == ["when", "fault", "kind", "target", "lasts", "parameters"]
    timeline = plan(load_scenario(path).faults, 11).in_time_order()
    offsets = [f"t+{p.at_s:.3f}s" for p in timeline if p.at_s is not None]
    assert [row.split()[0] for row in rows[: len(offsets)]] == offsets
    assert offsets == sorted(offsets, key=lambda t: float(t[2:-1]))
    assert rows[-2].split()[:6] == ["after", "5", "steps", "2.0", "network", "worker->store"]
    assert rows[-2].endswith("mode=partition")
    crash_point = "when reached 3 crash_point after_act run=run-000001 step=2"
    assert rows[-1].split() == crash_point.split()
    assert list(tmp_path.iterdir()) == [path], "no results, no logs: nothing ran"


def test_plan_as_json_is_the_schedule_of_the_seed(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    path = write_scenario(faults=FAULTS)
    result = durabench("plan", str(path), "--json")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    timeline = plan(load_scenario(path).faults, 11)
    expected = [(p.index, p.occurrence, p.at_s, p.after_steps) for p in timeline.in_time_order()]
    assert [(r["fault"], r["occurrence"], r["at_s"], r["after_steps"]) for r in rows[:-1]] == (
        expected
    )
    assert rows[-1]["kind"] == "crash_point" and rows[-1]["target"] == "after_act"
    assert {r["lasts_s"] for r in rows if r["kind"] == "pause"} == {0.5}


def test_plan_of_an_invalid_scenario_names_the_field(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    path = write_scenario(faults=[{"kind": "kill", "at_s": 1, "every_s": 2}])
    result = durabench("plan", str(path))
    assert result.returncode == 2
    assert str(path) in result.stderr and "exactly one timing" in result.stderr
    missing = durabench("plan", "no-such-scenario")
    assert missing.returncode == 2 and "shipped scenarios" in missing.stderr
