"""Property: whatever a user hands durabench (a mutated or garbage scenario, a gate
expression, a backend string, a damaged results directory), the answer is a valid
result or one clear DurabenchError, never a traceback and never a hang. Bounded in
examples and time so it stays in the default test run (issue 17)."""

from __future__ import annotations

import copy
import json
import shutil
import signal
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backends.base import BUILTIN_BACKENDS, Backend, load_backend
from harness.cli import cli
from harness.compare import Threshold, parse_threshold
from harness.errors import DurabenchError
from harness.recheck import Recheck, recheck
from harness.report.load import ResultSet, load_results
from harness.results import ResultsDir
from harness.scenario import Scenario, load_scenario, parse_scenario
from tests.conftest import TINY
from tests.results_support import copy_results, make_results

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


# -- backend strings (item 11) ----------------------------------------------------------

option_keys = st.sampled_from(
    [
        "workers",
        "lease_s",
        "slots",
        "snapshot_every",
        "stale_s",
        "heartbeat_s",
        "version",
        "task_timeout_s",
        "sticky_s",
        "durability",
        "path",
        "variant",
    ]
) | st.text(max_size=8)
option_values = st.one_of(
    st.sampled_from(
        [
            "",
            "0",
            "-1",
            "1",
            "2",
            "1.5",
            "inf",
            "-inf",
            "nan",
            "1e9",
            "abc",
            "v1",
            "sync",
            "exit",
            "v2-patched",
            " 3",
            "0x10",
            "1_000",
        ]
    ),
    st.integers(-(10**6), 10**6).map(str),
    st.floats().map(str),
    st.text(max_size=12),
)
families = st.one_of(
    st.sampled_from(
        [
            *BUILTIN_BACKENDS,
            "langgraph:sqlite",
            "langgraph:memory",
            "langgraph:redis",
            "baseline:x",
            "",
        ]
    ),
    st.text(max_size=12),
    # import paths of modules that cannot exist, or that Python refuses to import
    st.builds("fuzz_no_such_module_{}:{}".format, st.text(max_size=6), st.text(max_size=6)),
    st.builds(".{}:{}".format, st.text(max_size=6), st.text(max_size=6)),
)


@st.composite
def backend_names(draw: st.DrawFn) -> str:
    family = draw(families)
    pairs = draw(st.lists(st.tuples(option_keys, option_values), max_size=4))
    query = "&".join(f"{k}={v}" for k, v in pairs)
    if draw(st.booleans()):
        query += draw(st.sampled_from(["", "&", "&&", "=1", "x", "&=", "?"]))
    return f"{family}?{query}" if query or draw(st.booleans()) else family


@settings(FUZZ, max_examples=400)
@given(backend_names())
def test_a_backend_string_loads_or_is_one_backend_error(name: str) -> None:
    try:
        backend = load_backend(name)
    except DurabenchError as exc:
        assert str(exc)
        return
    assert isinstance(backend, Backend)


# -- damaged results directories (items 4 and 13) ---------------------------------------

RESULT_FILES = (
    "manifest.json",
    "summary.json",
    "persisted.jsonl",
    "steps.parquet",
    "runs.parquet",
    "ledger.parquet",
    "llm_calls.parquet",
)
# without these a check has nothing to judge: deleting or emptying one is never a pass
EVIDENCE = frozenset(RESULT_FILES) - {"summary.json"}
KINDS = (
    "delete",
    "empty",
    "truncate",
    "flip",
    "garbage",
    "swap",
    "directory",
    "append",
    "edit",
    "drop_column",
    "retype_column",
)
HANG_S = 20  # a check or a load that takes longer than this on a tiny run hangs
DAMAGED_EXAMPLES = 60  # each copies, checks and loads a results directory


@pytest.fixture(scope="module")
def small_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real results directory, made once: TINY on the baseline."""
    return make_results(tmp_path_factory.mktemp("fuzz-results"))


def _edit_json(data: Any, choice: int, value: Any) -> Any:
    paths = _paths(data)
    if not paths:
        return value
    path = paths[choice % len(paths)]
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return data


def _damage(
    here: Path, name: str, kind: str, where: float, noise: bytes, value: Any, choice: int
) -> None:
    path = here / name
    if not path.exists():
        return
    data = path.read_bytes() if path.is_file() else b""
    cut = int(len(data) * where)
    if kind == "delete":
        path.unlink()
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncate":
        path.write_bytes(data[:cut])
    elif kind == "flip" and data:
        index = min(cut, len(data) - 1)
        path.write_bytes(
            data[:index] + bytes([data[index] ^ (noise[:1] or b"\xff")[0]]) + data[index + 1 :]
        )
    elif kind == "garbage":
        path.write_bytes(noise)
    elif kind == "swap":
        other = RESULT_FILES[choice % len(RESULT_FILES)]
        if other != name and (here / other).is_file():
            shutil.copyfile(here / other, path)
    elif kind == "directory":
        path.unlink()
        path.mkdir()
    elif kind == "append":
        path.write_bytes(data + noise)
    elif kind == "edit" and name.endswith(".json"):
        edited = _edit_json(json.loads(data), choice, value)
        path.write_text(json.dumps(edited))
    elif kind == "edit" and name.endswith(".jsonl"):
        lines = data.decode().splitlines()
        index = choice % len(lines)
        lines[index] = json.dumps(_edit_json(json.loads(lines[index]), choice // 7, value))
        path.write_text("\n".join(lines) + "\n")
    elif kind in ("drop_column", "retype_column") and name.endswith(".parquet"):
        frame = pd.read_parquet(path)
        if frame.columns.empty:
            return
        column = frame.columns[choice % len(frame.columns)]
        if kind == "drop_column":
            frame = frame.drop(columns=[column])
        else:
            frame[column] = frame[column].astype(str)
        ResultsDir(here).write_table(name.removesuffix(".parquet"), frame.to_dict("records"))


damages = st.lists(
    st.tuples(
        st.sampled_from(RESULT_FILES),
        st.sampled_from(KINDS),
        st.floats(min_value=0, max_value=1),
        st.binary(min_size=1, max_size=64),
        values,
        st.integers(min_value=0, max_value=10**6),
    ),
    min_size=1,
    max_size=3,
)


class _Hang(Exception):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise _Hang(f"no answer within {HANG_S}s")


@settings(FUZZ, max_examples=DAMAGED_EXAMPLES)
@given(damages)
def test_damaged_results_are_checked_or_one_results_error(
    small_results: Path, tmp_path: Path, damage: list[tuple[Any, ...]]
) -> None:
    here = copy_results(small_results, tmp_path / uuid.uuid4().hex)
    for item in damage:
        try:
            _damage(here, *item)
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            continue  # what an earlier damage left cannot take this one
    lost = {name for name, kind, *_ in damage if kind in ("delete", "empty", "directory")}
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(HANG_S)
    try:
        try:
            outcome = recheck(ResultsDir.open(here))
        except DurabenchError as exc:
            assert str(exc)
        else:
            assert isinstance(outcome, Recheck)
            assert not lost & EVIDENCE, f"check passed without {lost & EVIDENCE}"
        result = CliRunner().invoke(cli, ["check", str(here)])
        assert result.exit_code in (0, 1, 2), result.output
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            result.exception
        )
        try:
            loaded = load_results([here])
        except DurabenchError as exc:
            assert str(exc)
        else:
            assert isinstance(loaded, ResultSet)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        shutil.rmtree(here, ignore_errors=True)
