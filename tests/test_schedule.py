"""The schedule: a pure, seeded function from faults and timing to a concrete timeline."""

from __future__ import annotations

from typing import Any

import pytest

from harness.errors import ScenarioError
from harness.faults import Fixed, KillFault, PauseFault
from harness.scenario import Scenario, parse_scenario
from harness.schedule import (
    Planned,
    draw_schedule,
    plan,
    plan_faults,
    recurring,
    select_targets,
)

WORKERS = [f"worker-{i}" for i in range(5)]


def scenario_with(*faults: dict[str, Any], seed: int = 3) -> Scenario:
    return parse_scenario(
        {
            "name": "s",
            "seed": seed,
            "runs": 2,
            "steps": 3,
            "load": {"concurrency": 1},
            "tool_chain": ["search_supplier"],
            "faults": list(faults),
        },
        "schedule.yaml",
    )


MIXED = (
    {"kind": "kill", "random": {"count": 3, "within_s": 10}},
    {"kind": "pause", "every_s": 2, "times": 2, "duration_s": 0.5},
    {
        "kind": "network",
        "target": "worker->store",
        "mode": "partition",
        "after_steps": 5,
        "duration_s": 1,
    },
    {"kind": "crash_point", "point": "after_act"},
)


def test_the_same_scenario_yields_the_same_timeline_as_before_the_schedule_had_a_module() -> None:
    """Seed 3, as the nemesis planned it when the plan lived there: results stay comparable."""
    timeline = [
        (p.index, p.occurrence, p.at_s, p.after_steps) for p in plan_faults(scenario_with(*MIXED))
    ]
    assert timeline == [
        (0, 0, 4.487508206584293, None),
        (0, 1, 5.548051552474988, None),
        (0, 2, 9.1396449109598, None),
        (1, 0, 2.0, None),
        (1, 1, 4.0, None),
        (2, 0, None, 5),
    ]


def test_several_faults_compose_into_one_timeline_with_crash_points_untimed() -> None:
    scenario = scenario_with(*MIXED)
    timeline = plan(scenario.faults, scenario.seed)
    assert timeline == plan(scenario.faults, scenario.seed)
    assert [u.index for u in timeline.untimed] == [3]
    ordered = timeline.in_time_order()
    assert [p.key for p in ordered] == ["1.0", "1.1", "0.0", "0.1", "0.2", "2.0"]
    assert ordered[-1].after_steps == 5, "step counts come after offsets"


def test_an_occurrence_is_due_at_its_offset_or_after_its_steps() -> None:
    kill = KillFault(kind="kill", at_s=1)
    assert not Planned(0, 0, kill, 1.0, None).due(0.9, 100)
    assert Planned(0, 0, kill, 1.0, None).due(1.0, 0)
    assert not Planned(0, 0, kill, None, 40).due(99, 39)
    assert Planned(0, 0, kill, None, 40).due(0, 40)


def test_recurring_turns_one_fault_into_a_cycle_and_keeps_everything_else() -> None:
    pause = PauseFault(kind="pause", at_s=1, duration_s=0.3, target="store")
    cycle = recurring(pause, every_s=1.5, times=3)
    assert (cycle.target, cycle.duration_s, cycle.at_s) == ("store", 0.3, None)
    assert [p.at_s for p in plan([cycle], seed=1).planned] == [1.5, 3.0, 4.5]
    with pytest.raises(ValueError, match="times"):
        recurring(pause, every_s=1, times=0)


def test_a_drawn_schedule_is_a_function_of_its_seed() -> None:
    candidates = [
        KillFault(kind="kill", after_steps=3),
        PauseFault(kind="pause", every_s=1, times=2, duration_s=0.2),
    ]
    drawn = draw_schedule(candidates, seed=7, within_s=5)
    assert drawn == draw_schedule(candidates, seed=7, within_s=5)
    assert drawn != draw_schedule(candidates, seed=8, within_s=5)
    assert all(f.at_s is not None and 0 <= f.at_s < 5 for f in drawn)
    assert all(f.after_steps is None and f.every_s is None for f in drawn)
    assert [len(plan(drawn, 7).planned)] == [2], "one occurrence each"


def test_targets_are_drawn_from_the_seed_per_occurrence() -> None:
    scenario = scenario_with({"kind": "kill", "every_s": 1, "times": 2})
    first, second = plan_faults(scenario)
    assert select_targets("one", WORKERS, 3, first) == ["worker-0"]
    assert select_targets("one", list(reversed(WORKERS)), 3, first) == ["worker-0"]
    assert select_targets(Fixed(fixed=2), WORKERS, 3, second) == ["worker-4", "worker-0"]
    assert select_targets("all", WORKERS, 3, first) == WORKERS
    assert select_targets("one", [], 3, first) == []


def test_a_fault_with_two_timings_is_refused_with_the_scenario() -> None:
    with pytest.raises(ScenarioError, match="exactly one timing"):
        scenario_with({"kind": "kill", "at_s": 1, "every_s": 2})
