"""The fault model: faults are data, validated with the scenario, planned from the seed."""

from __future__ import annotations

from typing import Any

import pytest

from harness.errors import ScenarioError
from harness.faults import DeployFault, KillFault, NetworkFault
from harness.scenario import Scenario, parse_scenario
from harness.schedule import plan_faults


def scenario_with(*faults: dict[str, Any]) -> Scenario:
    return parse_scenario(
        {
            "name": "f",
            "seed": 3,
            "runs": 2,
            "steps": 3,
            "load": {"concurrency": 1},
            "tool_chain": ["search_supplier"],
            "faults": list(faults),
        },
        "faults.yaml",
    )


def error_for(*faults: dict[str, Any]) -> str:
    with pytest.raises(ScenarioError) as info:
        scenario_with(*faults)
    return str(info.value)


def test_faults_parse_into_typed_models() -> None:
    scenario = scenario_with(
        {"kind": "kill", "at_s": 1},
        {
            "kind": "network",
            "target": "worker->store",
            "mode": "partition",
            "after_steps": 5,
            "duration_s": 2,
        },
    )
    kill, partition = scenario.faults
    assert isinstance(kill, KillFault) and kill.select == "one"
    assert isinstance(partition, NetworkFault) and partition.target == "worker->store"


def test_a_fault_needs_exactly_one_timing() -> None:
    assert "exactly one timing" in error_for({"kind": "kill"})
    message = error_for({"kind": "kill", "at_s": 1, "after_steps": 3})
    assert "at_s, after_steps" in message and "faults.0" in message


def test_unknown_kinds_targets_and_parameters_name_the_field() -> None:
    assert "faults.0" in error_for({"kind": "meteor", "at_s": 1})
    message = error_for(
        {"kind": "network", "target": "worker->moon", "mode": "reset", "at_s": 1, "duration_s": 1}
    )
    assert "faults.0.network.target" in message
    assert "latency_ms" in error_for(
        {"kind": "network", "target": "worker->llm", "mode": "latency", "at_s": 1, "duration_s": 1}
    )
    assert "duration_s" in error_for({"kind": "pause", "at_s": 1})
    assert "point" in error_for({"kind": "crash_point", "point": "whenever"})


def test_a_deploy_needs_a_version_an_image_or_both() -> None:
    message = error_for({"kind": "deploy", "at_s": 1})
    assert "faults.0.deploy" in message and "set version, image or both" in message
    assert "faults.0.deploy.image" in error_for({"kind": "deploy", "at_s": 1, "image": ""})
    by_image, both = scenario_with(
        {"kind": "deploy", "at_s": 1, "image": "reg/durabench:v2"},
        {"kind": "deploy", "at_s": 2, "image": "reg/durabench:v2", "version": "v2-patched"},
    ).faults
    assert isinstance(by_image, DeployFault) and by_image.version is None
    assert isinstance(both, DeployFault) and (both.image, both.version) == (
        "reg/durabench:v2",
        "v2-patched",
    )


def test_the_plan_is_a_pure_function_of_the_scenario() -> None:
    scenario = scenario_with(
        {"kind": "kill", "random": {"count": 4, "within_s": 10}},
        {"kind": "pause", "every_s": 2, "times": 3, "duration_s": 0.5},
        {"kind": "crash_point", "point": "after_act"},
    )
    plan = plan_faults(scenario)
    assert plan == plan_faults(scenario)
    random_times = [p.at_s for p in plan if p.index == 0]
    assert len(random_times) == 4 and random_times == sorted(random_times)
    assert all(t is not None and 0 <= t < 10 for t in random_times)
    assert [p.at_s for p in plan if p.index == 1] == [2, 4, 6]
    assert all(p.index != 2 for p in plan), "crash points are not timed"
    other_seed = scenario.model_copy(update={"seed": 4})
    assert [p.at_s for p in plan_faults(other_seed) if p.index == 0] != random_times
