"""The standard chaos suite: every backend under every fault class, one cell at a time.

Each fault class has its own scenario under `scenarios/chaos/`; a cell is one backend
on one of them, with its own results directory. The matrix summary collects, per
cell, the exposed runs and integrity among them with its exact interval, against the
scenario's expectation (a cell whose faults exposed no run is inconclusive, never a
pass), anomalies, recovery times, wasted work and overhead.

The full suite's scenarios (`scenarios/chaos/<class>.yaml`) are sized to discriminate:
their faults recur over the whole load so that each cell exposes tens of runs, enough
for a design flaw to show (pgstore-naive fails kill, evict, crash points, a pause past
its stale timeout and a store-link partition). `--quick` runs the smoke variants in
`scenarios/chaos/quick/`: the same fault classes on a handful of runs, minutes for the
whole matrix, with little statistical power.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.confidence import Goal, UntilConfident, write_cycled, write_outcome
from harness.errors import DurabenchError
from harness.evaluate import NOT_APPLICABLE
from harness.results import collect_environment
from harness.runner import BenchmarkRun
from harness.scenario import SCENARIO_DIR, Scenario, load_scenario

__all__ = [
    "CHAOS_DIR",
    "EXIT_BACKEND",
    "EXIT_INCONCLUSIVE",
    "QUICK_DIR",
    "QUICK_NOTE",
    "Cell",
    "SuiteResult",
    "chaos_scenarios",
    "run_suite",
]

CHAOS_DIR = SCENARIO_DIR / "chaos"
QUICK_DIR = CHAOS_DIR / "quick"  # the smoke-test variant of each fault class
QUICK_NOTE = (
    "quick suite: a smoke test with little statistical power (a handful of exposed runs "
    "per cell); run without --quick for verdicts that discriminate"
)

EXIT_OK, EXIT_EXPECTATION, EXIT_BAD_INPUT, EXIT_HARNESS = 0, 1, 2, 3
EXIT_INCONCLUSIVE = 4  # some cell's faults exposed no run (and nothing failed)
EXIT_BACKEND = 5  # a backend misbehaved: its inspect() raised or returned malformed state


@dataclass
class Cell:
    """One backend on one fault class."""

    fault_class: str
    backend: str
    results: str | None = None
    status: str = "pending"  # ok | failed (harness error)
    result: str | None = (
        None  # the summary's: pass | fail | unknown | inconclusive | not applicable
    )
    integrity: float | None = None  # over every judged run
    runs: int | None = None
    exposed_runs: int | None = None  # None: the scenario has no faults
    exposed_integrity: float | None = None
    # the cell's evidence: integrity among exposed runs (all runs without faults) with
    # its exact two-sided 95% interval
    evidence_n: int | None = None
    evidence_lower: float | None = None
    evidence_upper: float | None = None
    pass_k: float | None = None
    pass_k_lower: float | None = None
    pass_k_upper: float | None = None
    expected_integrity: float | None = None
    met: bool | None = None  # None: no expectation for this backend, or inconclusive
    inconclusive: bool = False  # faults, and none of them exposed a run: never a pass
    anomalies: int | None = None
    stray_effects: int | None = None
    inspect_errors: int | None = None
    # with --until-integrity: why the cell's runs stopped (confident | anomaly | budget)
    # and the one-sided lower bound they reached; budget spent = inconclusive
    until: str | None = None
    until_lower_bound: float | None = None
    faults_injected: int | None = None
    recovery_p50_ms: float | None = None
    recovery_p99_ms: float | None = None
    unrecovered_runs: int | None = None
    wasted_llm_calls: int | None = None
    wasted_tool_executions: int | None = None
    overhead_p50_ms: float | None = None
    error: str | None = None


@dataclass
class SuiteResult:
    path: Path
    cells: list[Cell]
    quick: bool = False  # the smoke variants: little statistical power

    @property
    def exit_code(self) -> int:
        """3 the harness failed in a cell > 5 a backend misbehaved > 1 an expectation
        failed > 4 a cell is inconclusive > 0."""
        if any(c.status == "failed" for c in self.cells):
            return EXIT_HARNESS
        if any(c.inspect_errors for c in self.cells):
            return EXIT_BACKEND
        if any(c.met is False for c in self.cells):
            return EXIT_EXPECTATION
        if any(c.inconclusive for c in self.cells):
            return EXIT_INCONCLUSIVE
        return EXIT_OK


def chaos_scenarios(only: list[str] | None = None, *, quick: bool = False) -> list[Path]:
    """The suite's scenario files (the quick variants with `quick`), validated; `only`
    filters by fault-class name."""
    paths = sorted((QUICK_DIR if quick else CHAOS_DIR).glob("*.yaml"))
    if only:
        known = {p.stem for p in paths}
        unknown = sorted(set(only) - known)
        if unknown:
            raise DurabenchError(
                f"unknown fault class(es) {', '.join(unknown)}; "
                f"the suite has {', '.join(sorted(known))}"
            )
        paths = [p for p in paths if p.stem in only]
    for path in paths:
        load_scenario(path)  # everything validated before anything starts
    return paths


def _fill(cell: Cell, scenario: Scenario, summary: dict[str, Any]) -> None:
    cell.result = summary.get("result")
    cell.runs = summary["runs"]
    cell.integrity = summary["integrity"]
    exposure = summary.get("exposure")
    if exposure is not None:
        cell.exposed_runs = exposure["exposed_runs"]
        cell.exposed_integrity = exposure["integrity"]
    evidence = summary.get("evidence") or summary.get("integrity_ci") or {}
    cell.evidence_n = evidence.get("n")
    cell.evidence_lower, cell.evidence_upper = evidence.get("lower"), evidence.get("upper")
    pass_k = summary.get("pass_k_ci") or {}
    cell.pass_k = summary.get("pass_k")
    cell.pass_k_lower, cell.pass_k_upper = pass_k.get("lower"), pass_k.get("upper")
    cell.stray_effects = (summary.get("stray_effects") or {}).get("run_ids", 0)
    cell.inspect_errors = (summary.get("inspect_errors") or {}).get("runs", 0)
    cell.inconclusive = cell.result == "inconclusive"
    cell.expected_integrity = scenario.expect.min_integrity(cell.backend)
    applies = cell.result != NOT_APPLICABLE  # every fault skipped: nothing to hold to
    if cell.expected_integrity is not None and not cell.inconclusive and applies:
        cell.met = summary["integrity"] >= cell.expected_integrity and not cell.stray_effects
    cell.anomalies = sum(summary["anomalies"].values()) + (cell.stray_effects or 0)
    faults = summary.get("faults") or {}
    cell.faults_injected = sum(f["injected"] for f in faults.values())
    cell.unrecovered_runs = sum(f["unrecovered_runs"] for f in faults.values())
    p50s = [f["recovery_ms"]["p50"] for f in faults.values() if f["recovery_ms"]["p50"] is not None]
    p99s = [f["recovery_ms"]["p99"] for f in faults.values() if f["recovery_ms"]["p99"] is not None]
    cell.recovery_p50_ms = max(p50s) if p50s else None
    cell.recovery_p99_ms = max(p99s) if p99s else None
    cell.wasted_llm_calls = summary["wasted"]["llm_calls"]
    cell.wasted_tool_executions = summary["wasted"]["tool_executions"]
    cell.overhead_p50_ms = summary["overhead_ms"]["p50"]


def _fill_until(cell: Cell, outcome: dict[str, Any]) -> None:
    cell.until = outcome["stopped"]
    cell.until_lower_bound = outcome["lower_bound"]


async def run_suite(
    backends: list[str],
    out_root: Path,
    *,
    quick: bool,
    only: list[str] | None = None,
    on_cell: Callable[[Cell], None] | None = None,
    bench_options: dict[str, Any] | None = None,
    goal: Goal | None = None,
) -> SuiteResult:
    """Run every (fault class, backend) cell; a cell that crashes is recorded, not fatal.
    With `goal` (--until-integrity), each cell runs until confident (harness.confidence):
    its scenario's faults on a cycle, fresh runs until the goal, an anomaly or the budget."""
    scenarios = chaos_scenarios(only, quick=quick)
    path = out_root / f"suite-{time.strftime('%Y%m%dT%H%M%S')}{'-quick' if quick else ''}"
    cells_dir = path / "cells"
    cells_dir.mkdir(parents=True)
    result = SuiteResult(path, [], quick)
    manifest = {
        "quick": quick,
        "power": "smoke test: few exposed runs per cell, little statistical power"
        if quick
        else "sized to discriminate: faults recur over the load",
        "backends": backends,
        "fault_classes": [p.stem for p in scenarios],
        "environment": collect_environment(),
        "started_at": time.time(),
        "until_integrity": asdict(goal) if goal is not None else None,
    }
    (path / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
    for scenario_path in scenarios:
        scenario_file = scenario_path
        if goal is not None:
            scenario_file = write_cycled(scenario_path, goal, path / "scenarios")
        scenario = load_scenario(scenario_file)
        for backend in backends:
            cell = Cell(scenario_path.stem, backend)
            result.cells.append(cell)
            bench = BenchmarkRun(scenario_file, [backend], cells_dir, **(bench_options or {}))
            driver = UntilConfident(goal) if goal is not None else None
            if driver is not None:
                bench.driver = driver
            try:
                results = await bench.execute()
                cell.results = str(results.path)
                if goal is not None and driver is not None:
                    _fill_until(cell, write_outcome(results, goal, driver)[backend])
                _fill(cell, scenario, results.read_json("summary.json")[backend])
                if cell.until == "budget" and cell.result != "fail":
                    cell.inconclusive, cell.met = True, None  # the goal was not reached
                cell.status = "ok"
            except DurabenchError as exc:
                cell.status, cell.error = "failed", str(exc)[:1000]
            except Exception as exc:  # a harness bug in one cell must not hide the others
                cell.status, cell.error = "failed", f"{type(exc).__name__}: {exc}"[:1000]
            if bench.results is not None:
                cell.results = str(bench.results.path)
            _write_matrix(result)
            if on_cell is not None:
                on_cell(cell)
    return result


def _write_matrix(result: SuiteResult) -> None:
    rows = [asdict(c) for c in result.cells]
    (result.path / "matrix.json").write_text(
        json.dumps(
            {
                "exit_code": result.exit_code,
                "quick": result.quick,
                "note": QUICK_NOTE if result.quick else None,
                "cells": rows,
            },
            indent=2,
        )
    )
