"""The chaos suite: the matrix, its expectations and the exit codes a CI job relies on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.suite import (
    EXIT_EXPECTATION,
    EXIT_HARNESS,
    EXIT_OK,
    Cell,
    SuiteResult,
    chaos_scenarios,
)
from tests.test_cli import durabench


def test_every_fault_class_has_a_valid_chaos_scenario() -> None:
    classes = {p.stem for p in chaos_scenarios()}
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
    (suite_dir,) = tmp_path.glob("suite-*-quick")
    matrix = json.loads((suite_dir / "matrix.json").read_text())
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
