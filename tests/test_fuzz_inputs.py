"""Property: whatever a user hands durabench (a mutated or garbage scenario, a gate
expression), the answer is a valid result or one clear DurabenchError, never a
traceback and never a hang. Bounded in examples and time so it stays in the default
test run (issue 17)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.compare import Threshold, parse_threshold
from harness.errors import DurabenchError
from harness.scenario import Scenario, load_scenario, parse_scenario
from tests.conftest import TINY

FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

FAULT = {"kind": "kill", "at_s": 0.5}
BASE: dict[str, Any] = {
    **copy.deepcopy(TINY),
    "faults": [
        FAULT,
        {
            "kind": "network",
            "target": "worker->store",
            "mode": "partition",
            "at_s": 1,
            "duration_s": 1,
        },
    ],
    "approval": {"after_step": 1, "delay_s": 0.1, "ttl_s": 5},
}

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path in a nested dict/list tree."""
    found = [prefix] if prefix else []
    if isinstance(data, dict):
        for key, child in data.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(data, list):
        for index, child in enumerate(data):
            found += _paths(child, (*prefix, index))
    return found


PATHS = _paths(BASE)


@st.composite
def mutated_scenarios(draw: st.DrawFn) -> Any:
    """The base scenario with a few fields replaced, deleted or added."""
    data = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        path = draw(st.sampled_from(PATHS))
        parent: Any = data
        try:
            for key in path[:-1]:
                parent = parent[key]
            action = draw(st.sampled_from(["replace", "delete", "add"]))
            if action == "replace":
                parent[path[-1]] = draw(values)
            elif action == "delete" and isinstance(parent, dict):
                parent.pop(path[-1], None)
            elif isinstance(parent, dict):
                parent[draw(st.text(max_size=8))] = draw(values)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed this path
    return data


def _judged(outcome: Any) -> None:
    assert isinstance(outcome, Scenario)


@FUZZ
@given(mutated_scenarios())
def test_a_mutated_scenario_is_valid_or_one_scenario_error(data: Any) -> None:
    try:
        _judged(parse_scenario(data, "fuzz.yaml"))
    except DurabenchError as exc:
        assert "fuzz.yaml" in str(exc)


@FUZZ
@given(values)
def test_any_yaml_value_is_a_scenario_or_one_scenario_error(data: Any) -> None:
    try:
        _judged(parse_scenario(data, "fuzz.yaml"))
    except DurabenchError as exc:
        assert "fuzz.yaml" in str(exc)


@FUZZ
@given(st.binary(max_size=400) | st.text(max_size=400))
def test_garbage_file_content_is_one_scenario_error(tmp_path: Path, content: Any) -> None:
    path = tmp_path / "garbage.yaml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    try:
        _judged(load_scenario(path))
    except DurabenchError as exc:
        assert str(path) in str(exc)


@FUZZ
@given(mutated_scenarios())
def test_a_mutated_scenario_file_round_trips_to_the_same_verdict(tmp_path: Path, data: Any) -> None:
    path = tmp_path / "mutated.yaml"
    try:
        text = yaml.safe_dump(data)
    except yaml.YAMLError:
        return
    path.write_text(text)
    try:
        _judged(load_scenario(path))
    except DurabenchError as exc:
        assert str(path) in str(exc)


gates = st.one_of(
    st.text(max_size=40),
    st.builds(
        "{}{}:{}{}{}".format,
        st.sampled_from(["p50", "p99", "integrity", "pass_k", "steps_per_s", "overhead", "x"]),
        st.sampled_from(["", "@pgstore", "@", "@a:b?c=1"]),
        st.sampled_from(["", "+", "-", "--"]),
        st.one_of(st.integers(-5, 10**6).map(str), st.floats().map(str)),
        st.sampled_from(["", "%", "ms", "s"]),
    ),
)


@FUZZ
@given(gates)
def test_a_gate_expression_parses_or_is_one_threshold_error(text: str) -> None:
    try:
        threshold = parse_threshold(text)
    except DurabenchError as exc:
        assert "--fail-on" in str(exc)
        return
    assert isinstance(threshold, Threshold)
    assert threshold.limit >= 0


@pytest.mark.parametrize("text", ["integrity:0", "p99:10%", "steps_per_s:-10%"])
def test_the_documented_gates_still_parse(text: str) -> None:
    assert parse_threshold(text).metric in text
