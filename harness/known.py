"""Known-answer fixtures: publicly documented behaviours of released backends, kept as
scenarios with the verdicts they must produce and the package versions they apply to.

Each file in `scenarios/known/` holds a `known:` block (what is documented, where,
the sentence quoted, the package and version range, the expected verdicts per
backend) and the `scenario:` that reproduces it. `durabench suite --known` runs each
fixture on each backend it names and compares: a fixture whose package is not
installed, or whose installed version is outside its range, is `not_applicable`
(never a pass); one whose faults did not all happen did not reproduce the situation,
which fails it like a verdict that differs. So an upgrade that fixes or reintroduces
a documented behaviour shows as a failing fixture.

Expectations name a column of runs.parquet per run id (or `*`: every run), or a key of
summary.json (dotted for nested ones: `wasted.llm_calls`); a value is compared as is,
or an expression `OP OPERAND [+|- NUMBER]` with OP one of == != >= <= > < and OPERAND
a number or another column of the same row (`tool_executions: "== tool_expected + 1"`).
"""

from __future__ import annotations

import contextlib
import json
import operator
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from backends.base import ExternalServices, load_backend
from harness.errors import DurabenchError, ScenarioError
from harness.results import collect_environment
from harness.runner import BenchmarkRun
from harness.scenario import SCENARIO_DIR, parse_scenario

__all__ = [
    "KNOWN_DIR",
    "Fixture",
    "KnownResult",
    "KnownRun",
    "check_expectation",
    "known_fixtures",
    "load_fixture",
    "run_known",
]

KNOWN_DIR = SCENARIO_DIR / "known"
EXIT_OK, EXIT_EXPECTATION, EXIT_HARNESS = 0, 1, 3
Scalar = bool | int | float | str
_EXPRESSION = re.compile(
    r"^(==|!=|>=|<=|>|<)\s*([A-Za-z_]\w*|-?\d+(?:\.\d+)?)\s*(?:([+-])\s*(\d+(?:\.\d+)?))?$"
)
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Source(_Frozen):
    """Where the behaviour is documented, and the sentence that says it."""

    url: str = Field(pattern=r"^https://")
    quote: str = Field(min_length=10)


class BackendExpectation(_Frozen):
    runs: dict[str, dict[str, Scalar]] = Field(default_factory=dict)
    summary: dict[str, Scalar] = Field(default_factory=dict)

    @field_validator("runs", "summary")
    @classmethod
    def _expressions(cls, value: Any) -> Any:
        values = value.values() if isinstance(value, dict) else ()
        for expected in (
            v for row in values for v in (row.values() if isinstance(row, dict) else [row])
        ):
            if (
                isinstance(expected, str)
                and expected[:1] in "=!<>"
                and not _EXPRESSION.match(expected)
            ):
                raise ValueError(f"{expected!r} is not an expression like '== tool_expected + 1'")
        return value


class Known(_Frozen):
    title: str = Field(min_length=5)
    source: Source
    package: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    versions: str  # a PEP 440 specifier set: ">=1.0,<2"
    expect: dict[str, BackendExpectation] = Field(min_length=1)

    @field_validator("versions")
    @classmethod
    def _specifier(cls, value: str) -> str:
        try:
            SpecifierSet(value)
        except InvalidSpecifier:
            raise ValueError(f"{value!r} is not a version range like '>=1.0,<2'") from None
        return value


@dataclass(frozen=True)
class Fixture:
    name: str
    path: Path
    known: Known
    scenario: dict[str, Any]


def load_fixture(path: Path) -> Fixture:
    """A fixture file, validated whole (its scenario too) before anything runs."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ScenarioError(f"{path}: cannot read a known fixture: {exc}") from None
    if not isinstance(data, dict) or set(data) != {"known", "scenario"}:
        raise ScenarioError(f"{path}: a known fixture has exactly two keys, known and scenario")
    try:
        known = Known.model_validate(data["known"])
    except ValidationError as exc:
        problems = [
            f"  known.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        ]
        raise ScenarioError("\n".join([f"{path}: invalid known fixture", *problems])) from None
    parse_scenario(data["scenario"], f"{path}: scenario")
    return Fixture(path.stem, path, known, data["scenario"])


def known_fixtures(only: list[str] | None = None, directory: Path = KNOWN_DIR) -> list[Fixture]:
    paths = sorted(directory.glob("*.yaml"))
    if only:
        unknown = sorted(set(only) - {p.stem for p in paths})
        if unknown:
            names = ", ".join(p.stem for p in paths)
            raise DurabenchError(
                f"unknown known fixture(s) {', '.join(unknown)}; fixtures: {names}"
            )
        paths = [p for p in paths if p.stem in only]
    return [load_fixture(p) for p in paths]


def _operand(token: str, row: dict[str, Any]) -> float:
    if re.fullmatch(r"-?\d+(?:\.\d+)?", token):
        return float(token)
    if token not in row:
        raise KeyError(token)
    return float(row[token])


def check_expectation(name: str, expected: Scalar, row: dict[str, Any]) -> str | None:
    """None when `row[name]` meets `expected`, else why not (a sentence)."""
    if name not in row:
        return f"{name}: no such field in the results"
    actual = row[name]
    if isinstance(expected, str) and (match := _EXPRESSION.match(expected)):
        op, token, sign, number = match.groups()
        try:
            target = _operand(token, row)
        except KeyError:
            return f"{name}: {token!r} is no field of the results"
        if number is not None:
            target = target + float(number) if sign == "+" else target - float(number)
        if actual is None or not _OPS[op](float(actual), target):
            return f"{name} = {actual}, expected {expected} (= {op} {target:g})"
        return None
    if isinstance(expected, bool) or isinstance(actual, bool):
        same = actual is not None and bool(actual) == expected
    elif isinstance(expected, int | float):
        same = actual is not None and float(actual) == float(expected)
    else:
        same = str(actual) == expected
    return None if same else f"{name} = {actual!r}, expected {expected!r}"


def _summary_value(summary: dict[str, Any], dotted: str) -> Any:
    value: Any = summary
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def judge_known(
    expectation: BackendExpectation,
    runs: pd.DataFrame,
    summary: dict[str, Any],
    faults: pd.DataFrame,
) -> list[str]:
    """Every expectation that does not hold, and every fault that did not happen."""
    problems = [
        f"fault {row.fault_index} ({row.kind} {row.target}) {row.outcome}: the situation "
        "was not reproduced"
        for row in faults.itertuples()
        if row.outcome != "ok"
    ]
    rows = {str(r["run_id"]): {str(k): v for k, v in r.items()} for r in runs.to_dict("records")}
    for run_id, expected in expectation.runs.items():
        targets = list(rows) if run_id == "*" else [run_id]
        for target in targets:
            if target not in rows:
                problems.append(f"{target}: no such run in the results")
                continue
            for column, value in expected.items():
                if (why := check_expectation(column, value, rows[target])) is not None:
                    problems.append(f"{target}: {why}")
    flat = {key: _summary_value(summary, key) for key in expectation.summary}
    for key, value in expectation.summary.items():
        if (why := check_expectation(key, value, flat)) is not None:
            problems.append(f"summary: {why}")
    return problems


@dataclass
class KnownResult:
    """One fixture on one backend: pass | fail | not_applicable | error."""

    fixture: str
    backend: str
    title: str
    source: str
    package: str
    versions: str
    installed: str | None = None
    status: str = "pending"
    problems: list[str] = field(default_factory=list)
    results: str | None = None


@dataclass
class KnownRun:
    path: Path
    results: list[KnownResult]

    @property
    def exit_code(self) -> int:
        if any(r.status == "error" for r in self.results):
            return EXIT_HARNESS
        if any(r.status == "fail" for r in self.results):
            return EXIT_EXPECTATION
        return EXIT_OK


def _installed(package: str) -> str | None:
    """The installed version: a Python distribution, else an npm package a backend
    installed in its own folder (backends/<name>/node_modules, e.g. wrangler)."""
    try:
        return version(package)
    except PackageNotFoundError:
        pass
    for manifest in sorted(
        Path(__file__).parent.parent.glob(f"backends/*/node_modules/{package}/package.json")
    ):
        with contextlib.suppress(OSError, ValueError):
            found = json.loads(manifest.read_text(encoding="utf-8")).get("version")
            if found:
                return str(found)
    return None


def _applicable(result: KnownResult, backend: str) -> bool:
    """Whether the fixture applies here; records why not on the result."""
    if result.installed is None:
        result.status, result.problems = "not_applicable", [f"{result.package} is not installed"]
        return False
    if Version(result.installed) not in SpecifierSet(result.versions):
        result.status = "not_applicable"
        result.problems = [f"{result.package} {result.installed} is outside {result.versions}"]
        return False
    try:
        load_backend(backend)
    except DurabenchError as exc:
        result.status, result.problems = "not_applicable", [str(exc)]
        return False
    return True


def _selected(name: str, backends: list[str] | None) -> bool:
    return (
        not backends
        or name in backends
        or name.partition("?")[0] in backends
        or (name.partition("?")[0].partition(":")[0] in backends)
    )


async def run_known(
    out_root: Path,
    *,
    only: list[str] | None = None,
    backends: list[str] | None = None,
    external: ExternalServices | None = None,
    on_result: Callable[[KnownResult], None] | None = None,
    directory: Path = KNOWN_DIR,
) -> KnownRun:
    """Run every fixture on every backend it names (those in `backends`, if given)."""
    fixtures = known_fixtures(only, directory)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    path = out_root / f"known-{stamp}"
    for n in range(2, 1000):  # two runs in one second: known-<time>-2, ...
        if not path.exists():
            break
        path = out_root / f"known-{stamp}-{n}"
    (path / "cells").mkdir(parents=True)
    run = KnownRun(path, [])
    for fixture in fixtures:
        scenario_file = path / f"{fixture.name}.yaml"
        scenario_file.write_text(yaml.safe_dump(fixture.scenario, sort_keys=False))
        known = fixture.known
        for backend, expectation in known.expect.items():
            if not _selected(backend, backends):
                continue
            result = KnownResult(
                fixture.name,
                backend,
                known.title,
                known.source.url,
                known.package,
                known.versions,
                _installed(known.package),
            )
            run.results.append(result)
            if _applicable(result, backend):
                await _run_one(result, expectation, scenario_file, path, external)
            _write(run)
            if on_result is not None:
                on_result(result)
    _write(run)
    return run


async def _run_one(
    result: KnownResult,
    expectation: BackendExpectation,
    scenario_file: Path,
    path: Path,
    external: ExternalServices | None,
) -> None:
    bench = BenchmarkRun(
        scenario_file, [result.backend], path / "cells", external=external or ExternalServices()
    )
    try:
        results = await bench.execute()
        tables = results.read_tables()
        mine = {
            k: v[v["backend"] == result.backend] if "backend" in v else v for k, v in tables.items()
        }
        summary = results.read_json("summary.json")[result.backend]
        result.problems = judge_known(expectation, mine["runs"], summary, mine["faults"])
        result.status = "fail" if result.problems else "pass"
    except Exception as exc:  # one fixture's harness failure must not hide the others
        result.status, result.problems = "error", [f"{type(exc).__name__}: {exc}"[:1000]]
    if bench.results is not None:
        result.results = str(bench.results.path)


def _write(run: KnownRun) -> None:
    body = {
        "exit_code": run.exit_code,
        "environment": collect_environment(),
        "results": [asdict(r) for r in run.results],
    }
    (run.path / "known.json").write_text(json.dumps(body, indent=2, default=str))
