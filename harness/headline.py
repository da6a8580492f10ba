"""The headline: what a reader acts on first.

One `Outcome` per cell (a backend under one fault class): what it lost or duplicated,
how often, integrity among the exposed runs with its interval, and the command that
reproduces it (an explore finding's minimal reproducer when there is one). Built from
a summary.json entry (`run`, `load`), a suite cell, or the report's integrity table, so
the console, the report, JUnit and the CI summary all say the same thing in the same
words. `headline_lines` condenses a list of outcomes to three lines.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "LOSS",
    "Outcome",
    "headline_lines",
    "outcome_from_cell",
    "outcome_from_summary",
    "outcomes_from_results",
    "reproduce_command",
]

# each verdict, as a reader names what it caught
LOSS = {
    "no_lost_step": "lost steps",
    "no_duplicate_step": "duplicated steps",
    "effects_exactly_once": "duplicated side effects",
    "no_orphan_effect": "orphan effects (applied, their step lost)",
    "state_match": "wrong final state",
    "ledger_agrees": "state disagrees with the ledger",
    "decisions_agree": "decisions differ from the LLM's",
    "no_nondeterminism": "non-determinism",
    "complete": "runs left unfinished",
}
# worst first: what a reader most needs to know a backend did
ORDER = (
    "no_lost_step",
    "effects_exactly_once",
    "no_duplicate_step",
    "no_orphan_effect",
    "state_match",
    "ledger_agrees",
    "decisions_agree",
    "no_nondeterminism",
    "complete",
)


@dataclass(frozen=True)
class Outcome:
    """One backend under one fault class. `n`/`passed`: the evidence (exposed runs, or
    every run without faults); `anomalies`: runs per verdict that was false."""

    backend: str
    fault_class: str
    result: str  # pass | fail | unknown | inconclusive | not applicable | error
    runs: int = 0
    exposed: int | None = None  # None: the scenario has no faults
    n: int = 0
    passed: int = 0
    lower: float | None = None
    upper: float | None = None
    anomalies: dict[str, int] = field(default_factory=dict)
    unknown: int = 0
    stray_effects: int = 0
    reason: str = ""  # why the result is what it is (the summary's result_reason, an error)
    expected: float | None = None  # the scenario's expectation for this backend
    met: bool | None = None
    results: str | None = None  # the results directory
    reproduce: str | None = None  # the command that re-runs it
    reproducer: str | None = None  # an explore finding's minimal scenario, when there is one

    @property
    def rate(self) -> float | None:
        return self.passed / self.n if self.n else None

    @property
    def failed(self) -> bool:
        """A failing cell: it missed its expectation, or it has none and lost or
        duplicated something. An expectation met (integrity >= P) passes."""
        if self.met is not None:
            return not self.met
        return self.result == "fail"

    @property
    def skipped(self) -> bool:
        return self.result in ("inconclusive", "not applicable")

    @property
    def broken(self) -> list[tuple[str, int]]:
        """(verdict, runs) for every verdict false in some run, worst first."""
        found = [(v, int(self.anomalies.get(v, 0))) for v in ORDER if self.anomalies.get(v)]
        found += [(v, int(n)) for v, n in self.anomalies.items() if n and v not in ORDER]
        return found

    def what(self) -> str:
        """`duplicated side effects in 3 runs, lost steps in 1 run` or what held."""
        parts = [f"{LOSS.get(v, v)} in {n} run{'s' if n != 1 else ''}" for v, n in self.broken]
        if self.stray_effects:
            parts.append(f"stray effects of {self.stray_effects} unknown run id(s)")
        if self.unknown:
            parts.append(f"verdicts unknown for {self.unknown} run(s)")
        if parts:
            return ", ".join(parts)
        if self.result == "inconclusive":
            return "nothing tested: its faults exposed no run"
        if self.result == "not applicable":
            return "nothing tested: every fault was skipped for this backend"
        if self.result == "error":
            return f"not judged: {self.reason}" if self.reason else "not judged"
        return "nothing lost or duplicated"

    def evidence(self) -> str:
        """`0 of 3 exposed runs intact, integrity 0.000 [0.000, 0.708]`."""
        if not self.n or self.lower is None or self.upper is None:
            return "no evidence (no run judged)"
        basis = "exposed runs" if self.exposed is not None else "runs"
        return (
            f"{self.passed} of {self.n} {basis} intact, integrity {self.passed / self.n:.3f} "
            f"[{self.lower:.3f}, {self.upper:.3f}]"
        )

    def where(self) -> str:
        return f"{self.backend} under {self.fault_class}"


def reproduce_command(scenario: str | None, backend: str) -> str | None:
    """The command that reruns one cell; a scenario inside the working directory is
    named relative to it, so a published report shows `scenarios/...`, not this
    machine's checkout path."""
    if not scenario:
        return None
    path = Path(scenario)
    if path.is_absolute() and path.is_relative_to(Path.cwd()):
        scenario = str(path.relative_to(Path.cwd()))
    quote = "'" if any(c in backend for c in "?&*") else ""
    return f"durabench run {scenario} --backend {quote}{backend}{quote}"


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def outcome_from_summary(
    backend: str,
    summary: Mapping[str, Any],
    fault_class: str,
    *,
    results: str | None = None,
    scenario: str | None = None,
    expected: float | None = None,
) -> Outcome:
    """One backend's entry of summary.json."""
    evidence = summary.get("evidence") or summary.get("integrity_ci") or {}
    exposure = summary.get("exposure")
    unknown = max((int(v or 0) for v in (summary.get("unknown") or {}).values()), default=0)
    result = str(summary.get("result") or "unknown")
    met = None
    if expected is not None and result not in ("inconclusive", "not applicable"):
        strays = int((summary.get("stray_effects") or {}).get("run_ids") or 0)
        met = float(summary.get("integrity", 0.0)) >= expected and not strays
    return Outcome(
        backend=backend,
        fault_class=fault_class,
        result=result,
        runs=int(summary.get("runs") or 0),
        exposed=None if exposure is None else int(exposure.get("exposed_runs") or 0),
        n=int(evidence.get("n") or 0),
        passed=int(evidence.get("passed") or 0),
        lower=_number(evidence.get("lower")),
        upper=_number(evidence.get("upper")),
        anomalies={str(k): int(v) for k, v in (summary.get("anomalies") or {}).items() if v},
        unknown=unknown,
        stray_effects=int((summary.get("stray_effects") or {}).get("run_ids") or 0),
        reason=str(summary.get("result_reason") or ""),
        expected=expected,
        met=met,
        results=results,
        reproduce=reproduce_command(scenario, backend),
    )


def _manifest(path: Path) -> dict[str, Any]:
    try:
        loaded: dict[str, Any] = json.loads((path / "manifest.json").read_text())
    except (OSError, ValueError):
        return {}
    return loaded


def fault_class_name(manifest: Mapping[str, Any]) -> str:
    """`<scenario name> (<fault kinds>)`, as the report names a fault class."""
    from harness.report.load import fault_class_of

    return fault_class_of(dict(manifest))


def outcomes_from_results(path: Path) -> list[Outcome]:
    """Every backend of one results directory (summary.json and its manifest)."""
    try:
        summary: dict[str, Any] = json.loads((path / "summary.json").read_text())
    except (OSError, ValueError):
        return []
    manifest = _manifest(path)
    scenario = manifest.get("scenario") or {}
    expect = ((scenario.get("expect") or {}).get("integrity")) or {}
    return [
        outcome_from_summary(
            backend,
            figures,
            fault_class_name(manifest),
            results=str(path),
            scenario=manifest.get("scenario_path"),
            expected=_number(expect.get(backend)),
        )
        for backend, figures in summary.items()
        if isinstance(figures, dict)
    ]


def outcome_from_cell(cell: Any) -> Outcome:
    """A suite cell (harness.suite.Cell): its matrix figures, its results directory's
    summary for what broke, and its scenario for the command that reproduces it."""
    if cell.status == "failed":
        reason = str(cell.error or "")
        return Outcome(cell.backend, cell.fault_class, "error", reason=reason, results=cell.results)
    found = outcomes_from_results(Path(cell.results)) if cell.results else []
    mine = next((o for o in found if o.backend == cell.backend), None)
    manifest = _manifest(Path(cell.results)) if cell.results else {}
    result = "inconclusive" if cell.inconclusive else str(cell.result or "unknown")
    reason = mine.reason if mine is not None else ""
    if cell.inspect_errors:
        result, reason = "error", f"inspect() failed for {cell.inspect_errors} run(s)"
    elif cell.until == "budget" and cell.inconclusive:
        reason = "the --until-integrity budget was spent before the lower bound cleared"
    rate = cell.exposed_integrity if cell.exposed_runs is not None else cell.integrity
    n = int(cell.evidence_n or 0)
    return Outcome(
        backend=cell.backend,
        fault_class=cell.fault_class,
        result=result,
        runs=int(cell.runs or 0),
        exposed=cell.exposed_runs,
        n=n,
        passed=round((rate or 0.0) * n),
        lower=cell.evidence_lower,
        upper=cell.evidence_upper,
        anomalies=mine.anomalies if mine is not None else {},
        unknown=mine.unknown if mine is not None else 0,
        stray_effects=int(cell.stray_effects or 0),
        reason=reason,
        expected=cell.expected_integrity,
        met=cell.met,
        results=cell.results,
        reproduce=reproduce_command(manifest.get("scenario_path"), cell.backend),
    )


def _pick_worst(outcomes: list[Outcome]) -> Outcome | None:
    broken = [o for o in outcomes if o.broken or o.stray_effects or o.failed]
    if broken:
        return min(broken, key=lambda o: (not o.failed, o.rate if o.rate is not None else 2.0))
    judged = [o for o in outcomes if o.n and o.lower is not None]
    return min(judged, key=lambda o: o.lower or 0.0) if judged else None


def headline_lines(outcomes: Iterable[Outcome]) -> list[str]:
    """Three lines: the verdict over every cell; the worst cell (what it lost, how
    often, its interval), or the weakest evidence when nothing broke; how to reproduce
    it (the minimal reproducer when explore found one)."""
    cells = list(outcomes)
    if not cells:
        return ["NOTHING JUDGED: no run was judged", "worst: -", "reproduce: -"]
    lossy = [o for o in cells if o.broken or o.stray_effects]
    failed = [o for o in cells if o.failed]
    errors = [o for o in cells if o.result in ("error", "unknown")]
    skipped = [o for o in cells if o.skipped]
    held = [o for o in cells if not (o.broken or o.stray_effects) and o.result == "pass"]
    verdict = "FAIL" if failed else "ERROR" if errors else "INCONCLUSIVE" if skipped else "PASS"
    noun = "cell" if len(cells) == 1 else "cells"
    first = f"{verdict}: {len(lossy)} of {len(cells)} {noun} lost or duplicated work"
    if lossy:
        first += f" ({', '.join(dict.fromkeys(o.backend for o in lossy))})"
    if failed and len(failed) != len(lossy):
        first += f"; {len(failed)} failed {'its' if len(failed) == 1 else 'their'} expectation"
    first += f"; {len(held)} held, {len(skipped)} not tested (inconclusive or not applicable)"
    if errors:
        first += f", {len(errors)} not judged"
    worst = _pick_worst(cells)
    if worst is None:
        return [first, "worst: -", "reproduce: -"]
    if worst.broken or worst.stray_effects or worst.failed:
        second = f"worst: {worst.where()}: {worst.what()}; {worst.evidence()}"
    else:
        bound = "" if worst.lower is None else f" (failure rate below {1 - worst.lower:.3f})"
        second = f"weakest evidence: {worst.where()}: {worst.evidence()}{bound}"
    if worst.reproducer:
        third = f"reproduce (minimal): durabench run {worst.reproducer} --backend {worst.backend}"
    else:
        third = f"reproduce: {worst.reproduce or '(no command recorded)'}"
    return [first, second, third]
