"""The report's first section: the findings a reader acts on.

Per backend and fault class: what was lost or duplicated, how often (runs per verdict,
and integrity among the exposed runs with its exact interval), the expectation it
held to, and the command that reproduces it (an explore finding's minimal reproducer
when one matches). Its reading is the same three-line headline the console prints.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from harness.headline import Outcome, headline_lines, reproduce_command
from harness.report.document import Note, Section, Table
from harness.report.load import ResultSet
from harness.report.metrics import integrity_table

__all__ = ["findings_table", "report_outcomes", "summary_section"]


def _int(value: Any) -> int:
    return 0 if value is None or pd.isna(value) else int(value)


def _float(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def _reproducer(backend: str, broken: set[str], explorations: list[dict[str, Any]]) -> str | None:
    """The minimal reproducer of an explore finding on this backend that breaks some of
    the same verdicts."""
    for exploration in explorations:
        if str(exploration.get("backend")) != backend:
            continue
        for finding in exploration.get("findings", []):
            if broken & set(finding.get("broken", [])) and finding.get("reproducer"):
                return str(finding["reproducer"])
    return None


def report_outcomes(results: ResultSet) -> list[Outcome]:
    """One Outcome per (fault class, backend) of the integrity table."""
    table = integrity_table(results)
    scenarios: dict[str, dict[str, Any]] = {}
    for item in results.items:
        scenarios.setdefault(item.fault_class, item.manifest)
    outcomes = []
    for row in table.to_dict("records"):
        manifest = scenarios.get(str(row["fault_class"]), {})
        expect = ((manifest.get("scenario") or {}).get("expect") or {}).get("integrity") or {}
        backend = str(row["backend"])
        faulted = row["exposed"] is not None and not pd.isna(row["exposed"])
        anomalies = {
            str(k).split(".", 1)[1]: _int(v)
            for k, v in row.items()
            if str(k).startswith("anomalies.") and _int(v)
        }
        expected = _float(expect.get(backend))
        result = str(row["result"])
        met = None
        if expected is not None and result not in ("inconclusive", "not applicable"):
            met = float(row["integrity"]) >= expected and not _int(row["stray_effects"])
        outcomes.append(
            Outcome(
                backend=backend,
                fault_class=str(row["fault_class"]),
                result=result,
                runs=_int(row["runs"]),
                exposed=_int(row["exposed"]) if faulted else None,
                n=_int(row["n"]),
                passed=_int(row["exposed_passed"] if faulted else row["passed"]),
                lower=_float(row["lower"]),
                upper=_float(row["upper"]),
                anomalies=anomalies,
                unknown=_int(row["unknown"]),
                stray_effects=_int(row["stray_effects"]),
                expected=expected,
                met=met,
                reproduce=reproduce_command(manifest.get("scenario_path"), backend),
                reproducer=_reproducer(backend, set(anomalies), results.explorations),
            )
        )
    return outcomes


FINDING_COLUMNS = [
    "backend",
    "fault_class",
    "result",
    "what",
    "how_often",
    "integrity",
    "interval",
    "expected",
    "reproduce",
]


def findings_table(outcomes: list[Outcome]) -> pd.DataFrame:
    """Failing cells first, then the rest; one row per cell."""
    ordered = sorted(outcomes, key=lambda o: (not o.failed, not o.broken, o.backend))
    rows = []
    for o in ordered:
        basis = f"{o.n} exposed" if o.exposed is not None else f"{o.n}"
        rows.append(
            {
                "backend": o.backend,
                "fault_class": o.fault_class,
                "result": ("FAIL" if o.failed else o.result)
                + ("" if o.met is None else " (expectation met)" if o.met else ""),
                "what": o.what(),
                "how_often": f"{o.n - o.passed} of {basis} runs broken",
                "integrity": o.rate,
                "interval": "-"
                if o.lower is None or o.upper is None
                else f"[{o.lower:.3f}, {o.upper:.3f}]",
                "expected": "-" if o.expected is None else f">= {o.expected:g}",
                "reproduce": f"durabench run {o.reproducer} --backend {o.backend}"
                if o.reproducer
                else o.reproduce or "-",
            }
        )
    return pd.DataFrame(rows, columns=FINDING_COLUMNS)


def summary_section(results: ResultSet) -> Section:
    outcomes = report_outcomes(results)
    lines = headline_lines(outcomes)
    reading = ". ".join(line[:1].upper() + line[1:] for line in lines) + "."
    section = Section("summary", "Findings", reading)
    if not outcomes:
        return section.add(Note("No agent run was judged in these results."))
    section.add(
        Table(
            "summary",
            findings_table(outcomes),
            "Per backend and fault class: what was lost or duplicated, how often, integrity "
            "among the exposed runs with its exact 95% interval, and how to reproduce it",
        )
    )
    return section
