"""The chaos suite: the matrix, its expectations and the exit codes a CI job relies on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.suite import (
    EXIT_BACKEND,
    EXIT_EXPECTATION,
    EXIT_HARNESS,
    EXIT_INCONCLUSIVE,
    EXIT_OK,
    QUICK_NOTE,
    Cell,
    SuiteResult,
    _fill,
    chaos_scenarios,
)
from tests.test_cli import durabench


def test_every_fault_class_has_a_full_and_a_quick_scenario() -> None:
    classes = {p.stem for p in chaos_scenarios()}
    assert classes == {p.stem for p in chaos_scenarios(quick=True)}
    assert classes == {
        "kill",
        "evict",
        "pause",
        "restart",
        "outage",
        "partition",
        "latency",
        "llm",
        "tool",
        "deploy",
        "crash_points",
    }


@pytest.mark.parametrize(
    ("cells", "code"),
    [
        ([Cell("kill", "a", status="ok", met=True), Cell("kill", "b", status="ok")], EXIT_OK),
        ([Cell("kill", "a", status="ok", met=False)], EXIT_EXPECTATION),
        (
            [Cell("kill", "a", status="ok", met=False), Cell("kill", "b", status="failed")],
            EXIT_HARNESS,
        ),
    ],
)
def test_exit_codes(cells: list[Cell], code: int, tmp_path: Path) -> None:
    assert SuiteResult(tmp_path, cells).exit_code == code


def test_the_full_suite_recurs_its_faults_and_the_quick_one_says_it_is_a_smoke_test() -> None:
    from harness.scenario import load_scenario

    for path in chaos_scenarios():
        scenario = load_scenario(path)
        timed = [f for f in scenario.faults if f.kind != "crash_point"]
        occurrences = sum(getattr(f, "times", 1) if f.every_s else 1 for f in timed)
        occurrences += sum(f.random.count - 1 for f in timed if f.random is not None)
        crash_points = len(scenario.faults) - len(timed)
        assert occurrences + crash_points >= 2, f"{path.stem}: faults recur"
        assert scenario.runs >= 16, f"{path.stem}: enough runs to expose"
    assert "little statistical power" in QUICK_NOTE


@pytest.mark.parametrize(
    ("cell", "code"),
    [
        (Cell("pause", "a", status="ok", inconclusive=True), EXIT_INCONCLUSIVE),
        (Cell("pause", "a", status="ok", inspect_errors=1, met=False), EXIT_BACKEND),
    ],
)
def test_inconclusive_and_misbehaving_cells_have_their_own_exit_codes(
    cell: Cell, code: int, tmp_path: Path
) -> None:
    assert SuiteResult(tmp_path, [cell, Cell("kill", "b", status="ok", met=True)]).exit_code == code
    if code == EXIT_INCONCLUSIVE:  # an expectation that failed elsewhere still wins
        failing = Cell("kill", "b", status="ok", met=False)
        assert SuiteResult(tmp_path, [cell, failing]).exit_code == EXIT_EXPECTATION


def test_a_cell_whose_faults_were_all_skipped_is_not_applicable(tmp_path: Path) -> None:
    from harness.evaluate import NOT_APPLICABLE
    from harness.scenario import load_scenario

    summary = {
        "result": NOT_APPLICABLE,
        "runs": 6,
        "integrity": 1.0,
        "exposure": {"exposed_runs": 0, "integrity": None},
        "evidence": {"n": 0, "lower": 0.0, "upper": 1.0},
        "anomalies": {},
        "faults": {},
        "wasted": {"llm_calls": 0, "tool_executions": 0},
        "overhead_ms": {"p50": 1.0},
    }
    cell = Cell("deploy", "pgstore", status="ok")
    _fill(cell, load_scenario(chaos_scenarios(["deploy"])[0]), summary)
    assert cell.met is None and not cell.inconclusive, "neither a pass nor inconclusive"
    assert SuiteResult(tmp_path, [cell]).exit_code == EXIT_OK


def test_an_unknown_fault_class_is_bad_input(tmp_path: Path) -> None:
    result = durabench("suite", "--backend", "baseline", "--only", "meteor", "--out", str(tmp_path))
    assert result.returncode == 2
    assert "unknown fault class(es) meteor" in result.stderr and "partition" in result.stderr


@pytest.mark.integration
def test_the_quick_suite_runs_a_matrix_of_cells(tmp_path: Path) -> None:
    result = durabench(
        "suite",
        "--backend",
        "baseline",
        "--quick",
        "--only",
        "pause",
        "--only",
        "kill",
        "--out",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "little statistical power" in result.stdout
    (suite_dir,) = tmp_path.glob("suite-*-quick")
    matrix = json.loads((suite_dir / "matrix.json").read_text())
    assert matrix["quick"] and "little statistical power" in matrix["note"]
    cells = {(c["fault_class"], c["backend"]): c for c in matrix["cells"]}
    assert set(cells) == {("kill", "baseline"), ("pause", "baseline")}
    assert cells[("pause", "baseline")]["met"] is True
    assert cells[("kill", "baseline")]["met"] is None, "the baseline promises nothing under kill"
    assert cells[("kill", "baseline")]["integrity"] < 1.0
    for cell in cells.values():
        assert (Path(cell["results"]) / "faults.parquet").exists()


def test_expectations_pick_the_most_specific_key() -> None:
    from harness.scenario import Expectations

    expect = Expectations(integrity={"langgraph": 1.0, "langgraph:postgres": 0.9, "*": 0.5})
    assert expect.min_integrity("langgraph") == 1.0
    assert expect.min_integrity("langgraph:postgres?durability=sync") == 0.9
    assert expect.min_integrity("langgraph:memory") == 0.5, "a variant is its own backend"
    assert Expectations().min_integrity("pgstore") is None
