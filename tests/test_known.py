"""Known-answer fixtures: each cites a public source, applies to a version range of the
installed package (outside it: not applicable, never a pass), and fails the run when
an expectation does not hold or its fault never happened."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pandas as pd
import pytest
import yaml

from harness.errors import ScenarioError
from harness.known import (
    KNOWN_DIR,
    BackendExpectation,
    check_expectation,
    judge_known,
    known_fixtures,
    load_fixture,
    run_known,
)
from tests.test_cli import durabench

SYNC = KNOWN_DIR / "langgraph-sync-reruns-only-the-node-in-flight.yaml"


def test_there_are_at_least_five_fixtures_each_quoting_its_public_source() -> None:
    fixtures = known_fixtures()
    assert len(fixtures) >= 5
    for fixture in fixtures:
        assert fixture.known.source.url.startswith("https://")
        assert len(fixture.known.source.quote.split()) >= 8, fixture.name
        assert fixture.known.expect


@pytest.mark.parametrize(
    ("expected", "ok"),
    [
        ("== tool_expected + 1", True),
        ("== tool_expected", False),
        (">= 4", True),
        ("< tool_expected - 1", False),
        (5, True),
        (True, True),
    ],
)
def test_an_expectation_compares_a_value_or_an_expression_over_the_row(
    expected: str | int | bool, ok: bool
) -> None:
    row = {"tool_executions": 5, "tool_expected": 4}
    assert (check_expectation("tool_executions", expected, row) is None) is ok


def test_a_fault_that_did_not_happen_fails_the_fixture() -> None:
    faults = pd.DataFrame(
        [{"fault_index": 0, "kind": "crash_point", "target": "after_act", "outcome": "not_reached"}]
    )
    runs = pd.DataFrame([{"run_id": "run-000000", "passed": True}])
    expectation = BackendExpectation(runs={"*": {"passed": True}})
    (problem,) = judge_known(expectation, runs, {"integrity": 1.0}, faults)
    assert "not reproduced" in problem


def _write(tmp_path: Path, fixture: Path, **known: object) -> Path:
    data = yaml.safe_load(fixture.read_text())
    data["known"].update(known)
    path = tmp_path / "fixtures" / fixture.name
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path.parent


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"versions": "about 1"}, "known.versions"),
        ({"source": {"url": "http://x", "quote": "short"}}, "known.source"),
        ({"expect": {"temporal": {"runs": {"*": {"passed": "=> 3"}}}}}, "known.expect"),
    ],
)
def test_a_malformed_fixture_is_refused_naming_the_field(
    change: dict[str, object], field: str, tmp_path: Path
) -> None:
    directory = _write(tmp_path, SYNC, **change)
    with pytest.raises(ScenarioError, match=field.replace(".", r"\.")):
        load_fixture(directory / SYNC.name)


async def test_a_fixture_outside_its_version_range_is_not_applicable_never_a_pass(
    tmp_path: Path,
) -> None:
    directory = _write(tmp_path, SYNC, versions="<0.1")
    run = await run_known(tmp_path / "out", directory=directory)
    (result,) = run.results
    assert result.status == "not_applicable" and "outside <0.1" in result.problems[0]
    assert run.exit_code == 0
    missing = _write(tmp_path, SYNC, package="no-such-package-durabench")
    (result,) = (await run_known(tmp_path / "out", directory=missing)).results
    assert result.status == "not_applicable" and "not installed" in result.problems[0]


@pytest.mark.integration
async def test_a_fixture_runs_and_an_expectation_that_does_not_hold_fails_it(
    tmp_path: Path,
) -> None:
    data = yaml.safe_load(SYNC.read_text())
    (backend,) = data["known"]["expect"]
    wrong = {**data["known"]["expect"][backend]["runs"]["run-000000"], "tool_executions": 0}
    data["known"]["expect"][f"{backend}&workers=1"] = {"runs": {"run-000000": wrong}}
    directory = tmp_path / "fixtures"
    directory.mkdir()
    (directory / SYNC.name).write_text(yaml.safe_dump(data, sort_keys=False))
    run = await run_known(tmp_path / "out", directory=directory)
    held, broken = run.results
    assert held.status == "pass", held.problems
    assert broken.status == "fail"
    (problem,) = broken.problems
    assert problem.startswith("run-000000: tool_executions = ") and problem.endswith("expected 0")
    assert run.exit_code == 1
    recorded = json.loads((run.path / "known.json").read_text())
    assert [r["status"] for r in recorded["results"]] == ["pass", "fail"]


def test_suite_known_refuses_an_unknown_fixture_name() -> None:
    done = durabench("suite", "--known", "--only", "nope")
    assert done.returncode == 2
    assert "unknown known fixture(s) nope" in done.stderr and "Traceback" not in done.stderr


def test_the_readme_shows_the_known_commands_with_a_shipped_fixture() -> None:
    from tests.test_failpoints import readme_commands

    commands = readme_commands("Known-answer fixtures")
    assert commands[0] == "durabench suite --known"
    only = shlex.split(commands[1])
    assert only[:4] == ["durabench", "suite", "--known", "--only"]
    assert (KNOWN_DIR / f"{only[4]}.yaml").is_file()


@pytest.mark.integration
def test_the_readme_s_single_fixture_command_runs_as_written(tmp_path: Path) -> None:
    from tests.test_failpoints import readme_commands

    args = shlex.split(readme_commands("Known-answer fixtures")[1])
    done = durabench(*args[1:], "--out", str(tmp_path), timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 pass, 0 fail" in done.stdout


@pytest.mark.integration
@pytest.mark.slow  # every shipped fixture on every engine: CI runs it with -m slow
async def test_every_shipped_fixture_holds_on_the_installed_versions(tmp_path: Path) -> None:
    run = await run_known(tmp_path)
    failed = {f"{r.fixture} x {r.backend}": r.problems for r in run.results if r.status != "pass"}
    assert not failed, failed
    assert len(run.results) >= 5 and run.exit_code == 0
