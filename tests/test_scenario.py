"""Scenarios as a specification: the shipped files load, and every kind of bad input
fails before anything starts with a ScenarioError naming the file, the field path and
the reason."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydantic
import pytest

from harness.errors import ScenarioError
from harness.scenario import (
    SCENARIO_DIR,
    LognormalLatency,
    Scenario,
    list_scenarios,
    load_scenario,
    parse_scenario,
    resolve_scenario_path,
)

SOURCE = "bad.yaml"
ScenarioFactory = Callable[..., Path]  # the conftest `write_scenario` fixture


def minimal(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "t",
        "seed": 1,
        "runs": 2,
        "steps": 3,
        "load": {"concurrency": 1},
        "tool_chain": ["search_supplier"],
    }
    data.update(overrides)
    return data


def scenario_error(data: Any) -> str:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(data, SOURCE)
    return str(info.value)


# -- the shipped scenarios ------------------------------------------------------------


def test_every_shipped_scenario_loads() -> None:
    shipped = list_scenarios()
    assert {p.stem for p in shipped} >= {"smoke", "procurement"}
    for path in shipped:
        scenario = load_scenario(path)
        assert scenario.name == path.stem


def test_procurement_is_a_ten_step_ten_tool_chain() -> None:
    scenario = load_scenario(SCENARIO_DIR / "procurement.yaml")
    assert scenario.steps == 10
    assert scenario.tool_chain is not None
    assert len(scenario.tool_chain) == 10
    assert len(scenario.tools) == 10
    assert scenario.tool_mix is None
    assert scenario.verify.on_failure == "replan"
    assert isinstance(scenario.llm.latency, LognormalLatency)


def test_smoke_is_a_weighted_tool_mix() -> None:
    scenario = load_scenario(SCENARIO_DIR / "smoke.yaml")
    assert scenario.tool_chain is None
    assert scenario.tool_mix is not None
    assert scenario.tools == tuple(sorted(scenario.tool_mix))


def test_a_bare_shipped_name_resolves_to_the_shipped_file() -> None:
    assert resolve_scenario_path("smoke") == SCENARIO_DIR / "smoke.yaml"
    assert load_scenario("smoke") == load_scenario(SCENARIO_DIR / "smoke.yaml")


def test_the_conftest_tiny_scenario_loads(write_scenario: ScenarioFactory) -> None:
    scenario = load_scenario(write_scenario())
    assert scenario.name == "tiny"
    assert scenario.tools == ("reserve_budget", "search_supplier")


def test_scenario_models_are_frozen() -> None:
    scenario = parse_scenario(minimal())
    with pytest.raises(pydantic.ValidationError):
        scenario.runs = 5  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError):
        scenario.load.concurrency = 2  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError):
        scenario.verify.max_attempts = 9  # type: ignore[misc]


def test_defaults_fill_every_optional_section() -> None:
    scenario = parse_scenario(minimal())
    assert scenario.faults == ()
    assert scenario.approval is None
    assert scenario.llm.base_url is None
    assert scenario.verify.failure_probability == 0.0


# -- bad input: each error names file, field path and reason --------------------------


def test_an_unknown_field_is_named() -> None:
    message = scenario_error(minimal(stepz=3))
    assert SOURCE in message
    assert "stepz" in message
    assert "Extra inputs are not permitted" in message


def test_an_unknown_nested_field_is_named_with_its_path() -> None:
    message = scenario_error(minimal(verify={"max_attempt": 3}))
    assert "verify.max_attempt" in message


def test_a_wrong_type_is_named() -> None:
    message = scenario_error(minimal(runs="many"))
    assert SOURCE in message
    assert "runs" in message
    assert "integer" in message


def test_a_negative_count_is_named() -> None:
    message = scenario_error(minimal(runs=-1))
    assert SOURCE in message
    assert "runs" in message
    assert "greater than or equal to 1" in message


def test_a_missing_required_field_is_named() -> None:
    data = minimal()
    del data["seed"]
    message = scenario_error(data)
    assert "seed" in message
    assert "Field required" in message


def test_every_error_is_reported_at_once() -> None:
    message = scenario_error(minimal(runs=-1, steps="x", stepz=1))
    assert "runs" in message
    assert "steps" in message
    assert "stepz" in message


def test_both_concurrency_and_arrival_rate_is_rejected() -> None:
    message = scenario_error(minimal(load={"concurrency": 2, "arrival_rate": 1.5}))
    assert SOURCE in message
    assert "load" in message
    assert "exactly one of concurrency" in message


def test_neither_concurrency_nor_arrival_rate_is_rejected() -> None:
    message = scenario_error(minimal(load={}))
    assert "load" in message
    assert "exactly one of concurrency" in message


def test_both_tool_chain_and_tool_mix_is_rejected() -> None:
    message = scenario_error(minimal(tool_mix={"search_supplier": 1}))
    assert SOURCE in message
    assert "tool_chain" in message
    assert "tool_mix" in message


def test_neither_tool_chain_nor_tool_mix_is_rejected() -> None:
    message = scenario_error(minimal(tool_chain=None))
    assert "exactly one of tool_chain" in message


def test_an_empty_tool_chain_is_rejected() -> None:
    assert "at least one tool" in scenario_error(minimal(tool_chain=[]))


def test_tool_mix_weights_need_a_positive_sum() -> None:
    message = scenario_error(minimal(tool_chain=None, tool_mix={"a": 0, "b": 0}))
    assert "positive sum" in message


def test_a_tool_name_that_is_not_an_identifier_is_rejected() -> None:
    message = scenario_error(minimal(tool_chain=["Search Supplier"]))
    assert "tool_chain.0" in message


def test_approval_after_the_last_step_is_rejected() -> None:
    message = scenario_error(minimal(steps=3, approval={"after_step": 3, "ttl_s": 1}))
    assert SOURCE in message
    assert "approval.after_step" in message
    assert "must be < steps" in message


def test_uniform_latency_with_high_below_low_is_rejected() -> None:
    message = scenario_error(
        minimal(tool_latency={"distribution": "uniform", "low_ms": 5, "high_ms": 1})
    )
    assert SOURCE in message
    assert "tool_latency" in message
    assert "high_ms must be >= low_ms" in message


def test_approval_delay_over_half_the_ttl_is_rejected() -> None:
    message = scenario_error(minimal(approval={"after_step": 0, "delay_s": 0.6, "ttl_s": 1}))
    assert "approval" in message
    assert "delay_s must be at most half of ttl_s" in message


def test_approval_delay_of_exactly_half_the_ttl_is_accepted() -> None:
    scenario = parse_scenario(minimal(approval={"after_step": 0, "delay_s": 0.5, "ttl_s": 1}))
    assert scenario.approval is not None
    assert scenario.approval.delay_s == 0.5


def test_approval_that_never_comes_is_accepted() -> None:
    scenario = parse_scenario(minimal(approval={"after_step": 2, "delay_s": None, "ttl_s": 1}))
    assert scenario.approval is not None
    assert scenario.approval.delay_s is None


def test_a_fault_with_an_impossible_target_names_its_path() -> None:
    message = scenario_error(minimal(faults=[{"kind": "kill", "target": "tools", "at_s": 1}]))
    assert SOURCE in message
    assert "faults.0.kill.target" in message
    assert "'worker'" in message


def test_a_nested_error_names_the_nested_path() -> None:
    message = scenario_error(minimal(llm={"latency": {"distribution": "lognormal", "sigma": 1}}))
    assert SOURCE in message
    assert "llm.latency" in message
    assert "median_ms" in message
    assert "Field required" in message


def test_an_unknown_latency_distribution_is_rejected() -> None:
    message = scenario_error(minimal(tool_latency={"distribution": "pareto", "ms": 1}))
    assert "tool_latency" in message
    assert "pareto" in message


def test_a_verify_probability_of_one_is_rejected() -> None:
    message = scenario_error(minimal(verify={"failure_probability": 1.0}))
    assert "verify.failure_probability" in message


def test_a_top_level_list_is_rejected() -> None:
    message = scenario_error([minimal()])
    assert SOURCE in message
    assert "must be a YAML mapping" in message
    assert "list" in message


def test_a_yaml_syntax_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: broken\nload: {concurrency: 1\nruns: 3\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    message = str(info.value)
    assert str(path) in message
    assert "not valid YAML" in message


def test_an_empty_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("")
    with pytest.raises(ScenarioError, match="must be a YAML mapping"):
        load_scenario(path)


def test_a_file_error_names_the_file_and_the_field(write_scenario: ScenarioFactory) -> None:
    path = write_scenario("typo.yaml", stepz=4)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    message = str(info.value)
    assert str(path) in message
    assert "stepz" in message


def test_a_file_error_in_a_nested_field_names_the_path(write_scenario: ScenarioFactory) -> None:
    path = write_scenario(llm={"latency": {"distribution": "lognormal"}})
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert str(path) in str(info.value)
    assert "llm.latency" in str(info.value)


def test_a_missing_file_lists_the_shipped_scenarios(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yaml"
    with pytest.raises(ScenarioError) as info:
        load_scenario(missing)
    message = str(info.value)
    assert str(missing) in message
    assert "no such scenario file" in message
    assert "smoke" in message
    assert "procurement" in message


def test_an_unknown_bare_name_lists_the_shipped_scenarios() -> None:
    with pytest.raises(ScenarioError, match=r"shipped scenarios: .*smoke"):
        load_scenario("smok")


def test_a_directory_is_rejected_as_a_scenario_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=re.escape(str(tmp_path))):
        load_scenario(tmp_path)


def test_a_file_that_is_not_utf8_is_rejected_as_a_scenario_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(ScenarioError, match=re.escape(str(path))):
        load_scenario(path)


def test_parsing_returns_an_equal_model_for_equal_input() -> None:
    first: Scenario = parse_scenario(minimal())
    assert parse_scenario(minimal()) == first
    assert hash(first.load) == hash(parse_scenario(minimal()).load)


@pytest.mark.parametrize("value", ["5", True, 2.5])
def test_counts_must_be_integers_not_lookalikes(value: object) -> None:
    assert "runs" in scenario_error(minimal(runs=value))


# -- hostile and careless input (issue 17): one clear error, never a hang or a traceback --


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"deadline_s": float("inf")}, "deadline_s"),
        ({"load": {"arrival_rate": float("inf")}}, "load.arrival_rate"),
        ({"approval": {"after_step": 0, "ttl_s": float("inf")}}, "approval.ttl_s"),
        ({"approval": {"after_step": 0, "delay_s": float("nan"), "ttl_s": 5}}, "approval"),
        ({"faults": [{"kind": "pause", "at_s": 1, "duration_s": float("inf")}]}, "faults.0"),
        ({"faults": [{"kind": "kill", "at_s": float("inf")}]}, "faults.0"),
    ],
)
def test_a_non_finite_number_is_rejected_with_its_field(
    overrides: dict[str, Any], field: str
) -> None:
    message = scenario_error(minimal(**overrides))
    assert field in message
    assert "finite" in message


def test_times_without_every_s_is_rejected_not_ignored() -> None:
    message = scenario_error(minimal(faults=[{"kind": "kill", "at_s": 1, "times": 5}]))
    assert "faults.0.times" in message
    assert "every_s" in message


def test_times_with_every_s_is_accepted() -> None:
    assert parse_scenario(minimal(faults=[{"kind": "kill", "every_s": 1, "times": 5}]))


def test_a_crash_point_beyond_the_last_step_is_rejected() -> None:
    message = scenario_error(
        minimal(faults=[{"kind": "crash_point", "point": "after_act", "step": 3}])
    )
    assert "faults.0.step" in message
    assert "steps (3)" in message
    assert parse_scenario(
        minimal(faults=[{"kind": "crash_point", "point": "after_act", "step": 2}])
    )


def test_a_tool_fault_naming_an_unknown_tool_is_rejected() -> None:
    fault = {"kind": "tool", "mode": "slow", "tools": ["get_quotes"], "at_s": 0, "duration_s": 1}
    message = scenario_error(minimal(faults=[fault]))
    assert "faults.0.tools" in message
    assert "get_quotes" in message
    assert "search_supplier" in message


def test_a_lognormal_cap_below_its_median_is_rejected() -> None:
    latency = {"distribution": "lognormal", "median_ms": 40, "max_ms": 10}
    assert "max_ms must be >= median_ms" in scenario_error(minimal(tool_latency=latency))


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://h/v1", "127.0.0.1:8000/v1", ""])
def test_an_llm_base_url_that_is_not_http_is_rejected(url: str) -> None:
    message = scenario_error(minimal(llm={"base_url": url}))
    assert "llm.base_url" in message
    assert "http" in message


def test_several_cross_field_problems_are_reported_at_once() -> None:
    faults = [
        {"kind": "kill", "at_s": 1, "times": 2},
        {"kind": "crash_point", "point": "after_act", "step": 9},
    ]
    message = scenario_error(minimal(faults=faults))
    assert "faults.0.times" in message
    assert "faults.1.step" in message


def test_a_duplicate_key_is_rejected_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "twice.yaml"
    path.write_text(
        "name: t\nseed: 1\nruns: 2\nsteps: 3\nruns: 200\n"
        "load: {concurrency: 1}\ntool_chain: [search_supplier]\n"
    )
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert str(path) in str(info.value)
    assert "duplicate key 'runs'" in str(info.value)


def test_deep_nesting_is_rejected_without_a_recursion_error(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("name: " + "[" * 50_000 + "]" * 50_000 + "\n")
    with pytest.raises(ScenarioError, match=re.escape(str(path))):
        load_scenario(path)


def test_a_fifo_is_rejected_without_blocking(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    with pytest.raises(ScenarioError, match="not a regular file"):
        load_scenario(fifo)


def test_a_character_device_is_rejected_without_reading_it() -> None:
    with pytest.raises(ScenarioError, match="not a regular file"):
        load_scenario("/dev/zero")


def test_an_oversized_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_text("description: " + "x" * (2 * 1024 * 1024) + "\n")
    with pytest.raises(ScenarioError, match="larger than"):
        load_scenario(path)


def test_a_dumped_scenario_with_timed_faults_parses_back() -> None:
    """What the manifest records (`model_dump`, `times: 1` spelled out) must parse again."""
    original = parse_scenario(minimal(faults=[{"kind": "kill", "at_s": 1}]))
    assert parse_scenario(original.model_dump(mode="json")) == original
