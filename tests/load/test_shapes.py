"""Load shapes, their command-line form, and the knee of a throughput curve (pure)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from harness.cli.load import parse_run_time, parse_shape_option
from harness.errors import DurabenchError, ScenarioError
from harness.load.driver import LocustPlan, default_plan
from harness.load.figures import find_knee
from harness.load.shapes import (
    ConstantShape,
    RampShape,
    SpikeShape,
    StepShape,
    parse_shape,
    shape_duration,
    tick,
)
from harness.scenario import parse_scenario

BASE = {
    "name": "s",
    "seed": 1,
    "runs": 5,
    "steps": 3,
    "load": {"concurrency": 2},
    "tool_chain": ["search_supplier"],
}


def test_constant_holds_its_users_until_its_duration() -> None:
    shape = ConstantShape(users=8, spawn_rate=4, duration_s=10)
    assert tick(shape, 0) == (8, 4)
    assert tick(shape, 9.9) == (8, 4)
    assert tick(shape, 10) is None
    assert tick(ConstantShape(users=3), 1e9) == (3, 10.0), "no duration: until the budget"


def test_ramp_moves_linearly_between_its_ends() -> None:
    shape = RampShape(kind="ramp", from_users=0, to_users=100, duration_s=10)
    assert [tick(shape, t) for t in (0, 5, 9.99)] == [(0, 10.0), (50, 10.0), (100, 10.0)]
    assert tick(shape, 10) is None


def test_step_adds_users_every_step() -> None:
    shape = StepShape(kind="step", start_users=2, step_users=3, step_s=5, steps=3)
    assert [tick(shape, t)[0] for t in (0, 4.9, 5, 10, 14.9)] == [2, 2, 5, 8, 8]  # type: ignore[index]
    assert tick(shape, 15) is None
    assert shape_duration(shape) == 15


def test_spike_jumps_for_its_window_only() -> None:
    shape = SpikeShape(
        kind="spike", users=2, spike_users=20, spike_at_s=5, spike_s=2, duration_s=10
    )
    assert [tick(shape, t)[0] for t in (4.9, 5, 6.9, 7)] == [2, 20, 20, 2]  # type: ignore[index]
    with pytest.raises(ValidationError, match="spike"):
        SpikeShape(kind="spike", users=2, spike_users=20, spike_at_s=9, spike_s=2, duration_s=10)


def test_a_scenario_can_carry_a_shape_and_rejects_unknown_fields() -> None:
    shape = {"kind": "ramp", "to_users": 16, "duration_s": 30}
    scenario = parse_scenario({**BASE, "load": {"concurrency": 2, "shape": shape}})
    assert isinstance(scenario.load.shape, RampShape)
    assert default_plan(scenario).shape == scenario.load.shape
    with pytest.raises(ScenarioError, match=r"load\.shape\.ramp\.users"):
        parse_scenario({**BASE, "load": {"concurrency": 2, "shape": {**shape, "users": 3}}})
    with pytest.raises(ScenarioError, match=r"load\.shape"):
        parse_scenario({**BASE, "load": {"concurrency": 2, "shape": {"kind": "sine"}}})


def test_the_scenario_load_becomes_a_locust_plan() -> None:
    closed = default_plan(parse_scenario(BASE))
    assert closed.shape == ConstantShape(users=2) and closed.runs == 5 and closed.wait
    opened = default_plan(parse_scenario({**BASE, "load": {"arrival_rate": 20.0}}), runs=50)
    assert not opened.wait and opened.runs == 50
    assert opened.user_rate * opened.shape.users == pytest.approx(20.0)  # type: ignore[union-attr]


def test_a_load_test_needs_an_end() -> None:
    with pytest.raises(DurabenchError, match="needs an end"):
        LocustPlan(ConstantShape(users=1))
    assert LocustPlan(ConstantShape(users=1, duration_s=5)).runs is None


def test_shapes_from_the_command_line() -> None:
    assert parse_shape_option("ramp:to_users=64,duration_s=60.0") == parse_shape(
        {"kind": "ramp", "to_users": 64, "duration_s": 60.0}
    )
    with pytest.raises(DurabenchError, match="constant, ramp, step, spike"):
        parse_shape_option("sine:users=3")
    with pytest.raises(DurabenchError, match="to_users"):
        parse_shape_option("ramp:duration_s=5")
    assert [parse_run_time(t) for t in ("90", "90s", "5m", "1h30m")] == [90, 90, 300, 5400]
    with pytest.raises(DurabenchError, match="run-time"):
        parse_run_time("soon")


def test_the_knee_is_where_throughput_nearly_peaks() -> None:
    assert find_knee([1, 4, 16, 64], [10, 38, 80, 84]) == 16
    assert find_knee([1, 4, 16], [10, 20, 40]) == 16, "still scaling: the last point"
    assert find_knee([1, 2], [10, 9.5]) == 1
    assert find_knee([], []) is None
