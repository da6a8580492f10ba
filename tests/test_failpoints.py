"""Crash points at both depths: the shared phase boundaries and each backend's own,
named in a scenario, checked against the backend before anything starts, enumerated
as (point x step) pairs, and listed by `durabench crashpoints`."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from backends.base import crash_points_of, load_backend
from harness.crashpoints import crash_pairs, expand_crash_points, points_of
from harness.errors import DurabenchError
from harness.failpoints import (
    PHASE_POINTS,
    CrashPoint,
    Failpoints,
    format_points,
    is_backend_point,
    parse_points,
)
from harness.faults import CrashPointFault
from harness.runner import BenchmarkRun
from harness.scenario import ScenarioError, load_scenario, parse_scenario
from tests.conftest import TINY, ScenarioFactory
from tests.test_cli import durabench

REPO = Path(__file__).resolve().parent.parent
BACKENDS = ("pgstore", "pgstore-naive", "temporal")


def scenario(**overrides: Any) -> Any:
    return parse_scenario({**TINY, **overrides})


@pytest.mark.parametrize("name", BACKENDS)
def test_each_backend_declares_its_own_points_namespaced_by_its_name(name: str) -> None:
    points = crash_points_of(load_backend(name))
    assert points
    for point in points:
        assert point.name.startswith(f"{name}.") and is_backend_point(point.name)
        assert point.sentence.strip()
    assert [p.name for p in points_of(load_backend(name))][:5] == list(PHASE_POINTS)


def test_a_backend_that_declares_nothing_has_only_the_shared_points() -> None:
    assert crash_points_of(load_backend("baseline")) == []
    assert [p.name for p in points_of(load_backend("baseline"))] == list(PHASE_POINTS)


def test_workers_read_backend_points_from_their_environment() -> None:
    points = [
        CrashPoint("temporal.after_activity_effect", "run-000001", 2),
        CrashPoint("after_act"),
    ]
    assert parse_points(format_points(points)) == points
    with pytest.raises(ValueError, match="unknown crash point"):
        parse_points("whenever:*:*")
    failpoints = Failpoints(points, None)
    assert failpoints.armed("temporal.after_activity_effect")
    assert not failpoints.armed("pgstore.before_act_commit")


@pytest.mark.parametrize(
    ("fault", "field"),
    [
        ({"point": "whenever"}, "point"),
        ({"point": "Temporal.after"}, "point"),
        ({"point": "after_act", "step": "any"}, "step"),
        ({"point": "after_act", "run": "../x"}, "run"),
    ],
)
def test_a_malformed_crash_point_is_refused_with_the_scenario(
    fault: dict[str, Any], field: str
) -> None:
    with pytest.raises(ScenarioError, match=rf"faults\.0\.crash_point\.{field}"):
        scenario(faults=[{"kind": "crash_point", **fault}])


def test_step_all_and_point_all_stand_for_many_crash_points() -> None:
    fault = CrashPointFault.model_validate(
        {"kind": "crash_point", "point": "after_act", "step": "all"}
    )
    assert fault.each_step and fault.step is None and fault.enumerates
    assert CrashPointFault(kind="crash_point", point="all").enumerates
    assert not CrashPointFault(kind="crash_point", point="after_act", step=1).enumerates


def test_a_backend_point_is_refused_up_front_for_a_backend_that_does_not_declare_it(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    fault = {"kind": "crash_point", "point": "temporal.after_activity_effect", "step": 1}
    path = write_scenario(faults=[fault])
    with pytest.raises(DurabenchError) as refused:
        BenchmarkRun(path, ["pgstore"], tmp_path / "out")
    message = str(refused.value)
    assert "pgstore" in message and "faults.0.point" in message
    assert "pgstore.before_act_commit" in message  # the points it does have
    BenchmarkRun(path, ["temporal"], tmp_path / "out")  # the backend that declares it
    assert not (tmp_path / "out").exists()  # nothing started


def test_every_point_at_every_step_becomes_one_crash_point_per_run() -> None:
    backend = load_backend("pgstore-naive")
    base = scenario(
        runs=22, steps=3, faults=[{"kind": "crash_point", "point": "all", "step": "all"}]
    )
    expanded = expand_crash_points(base, backend)
    pairs = [(f.point, f.step) for f in expanded.faults]
    per_step = [p for p in points_of(backend) if p.per_step]
    assert len(pairs) == len(per_step) * 3 + 1  # the claim is reached once, at any step
    assert ("pgstore-naive.after_claim", None) in pairs
    assert ("pgstore-naive.before_row_commit", 2) in pairs
    runs = [f.run for f in expanded.faults]
    assert len(set(runs)) == len(runs)  # one run each
    assert crash_pairs(points_of(backend), 3) == pairs


def test_a_pinned_run_keeps_its_crash_point_and_takes_every_enumerated_one() -> None:
    backend = load_backend("pgstore")
    pinned = {"kind": "crash_point", "point": "after_act", "run": "run-000000", "step": 1}
    many = {"kind": "crash_point", "point": "own", "step": 0}
    expanded = expand_crash_points(scenario(runs=6, faults=[pinned, many]), backend)
    assert expanded.faults[0] == CrashPointFault.model_validate(pinned)
    assert "run-000000" not in {f.run for f in expanded.faults[1:]}
    one_run = {**many, "run": "run-000003"}
    assert {f.run for f in expand_crash_points(scenario(faults=[one_run]), backend).faults} == {
        "run-000003"
    }


def test_an_enumeration_needs_a_run_per_pair() -> None:
    base = scenario(runs=2, faults=[{"kind": "crash_point", "point": "all", "step": "all"}])
    with pytest.raises(DurabenchError, match="one run each"):
        expand_crash_points(base, load_backend("temporal"))


def test_a_scenario_without_enumerations_is_left_as_it_is() -> None:
    base = load_scenario(REPO / "scenarios" / "chaos" / "crash_points.yaml")
    assert expand_crash_points(base, load_backend("pgstore")) is base


def test_crashpoints_lists_each_backend_s_points_with_a_sentence() -> None:
    done = durabench("crashpoints", "--backend", "temporal", "--backend", "pgstore-naive")
    assert done.returncode == 0, done.stderr
    for point in (
        *PHASE_POINTS,
        "temporal.after_activity_effect",
        "pgstore-naive.before_row_commit",
    ):
        assert re.search(rf"^  {re.escape(point)}$", done.stdout, re.M), point
    listing = json.loads(durabench("crashpoints", "-b", "pgstore", "--json").stdout)
    own = [p for p in listing["pgstore"] if p["depth"] == "backend"]
    assert {p["point"] for p in own} == {p.name for p in crash_points_of(load_backend("pgstore"))}
    assert all(p["sentence"] for p in own)


def test_crashpoints_refuses_an_unknown_backend_in_one_line() -> None:
    done = durabench("crashpoints", "--backend", "nope")
    assert done.returncode == 2
    assert "unknown backend 'nope'" in done.stderr and "Traceback" not in done.stderr


def readme_commands(heading: str) -> list[str]:
    readme = (REPO / "README.md").read_text()
    section = readme.split(f"\n### {heading}\n", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    blocks = re.findall(r"```bash\n(.+?)\n```", section, flags=re.S)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def test_the_readme_crash_point_commands_run_as_written() -> None:
    commands = readme_commands("Crash points")
    assert commands
    for command in commands:
        args = shlex.split(command)
        assert args[0] == "durabench"
        done = durabench(*args[1:])
        assert done.returncode == 0, done.stderr
        assert "temporal.after_activity_effect" in done.stdout


def test_the_readme_crash_point_scenario_enumerates_on_every_backend(
    write_scenario: ScenarioFactory,
) -> None:
    readme = (REPO / "README.md").read_text()
    section = readme.split("\n### Crash points\n", 1)[1].split("\n### ", 1)[0]
    (block,) = re.findall(r"```yaml\n(.+?)\n```", section, flags=re.S)
    path = write_scenario(**yaml.safe_load(block))
    for name in (*BACKENDS, "langgraph:sqlite?durability=sync", "langgraph?durability=exit"):
        expanded = expand_crash_points(load_scenario(path), load_backend(name))
        assert len(expanded.faults) == len(crash_pairs(points_of(load_backend(name), "own"), 2))
