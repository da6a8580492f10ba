"""The first and the worst example of each anomaly, with what the checker kept.

An anomaly is a verdict that is false (or unknown: the check could not decide) for a
run. Per (backend, verdict) the report shows the run that went wrong first (earliest
start) and the one that went wrong most (the largest count in the checker's detail,
e.g. `differing` fields for state_match, `lost` steps for no_lost_step).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from harness.report.load import ResultSet
from harness.report.metrics import judged_runs, verdict_columns

__all__ = ["SEVERITY", "Example", "anomaly_examples", "anomaly_table", "detail_rows"]

# the count in each verdict's detail that says how bad one run's anomaly is
SEVERITY = {
    "state_match": "differing",
    "no_lost_step": "lost",
    "no_duplicate_step": "duplicated",
    "effects_exactly_once": "duplicated_effects",
    "no_orphan_effect": "orphans",
    "ledger_agrees": "mismatches",
    "decisions_agree": "disagreements",
    "no_nondeterminism": "nondeterminism",
}
# the detail fields holding example records, rendered as a table of field-level rows
EXAMPLE_LISTS = ("diffs", "examples")
MAX_CELL = 160


@dataclass(frozen=True)
class Example:
    verdict: str
    backend: str
    which: str  # "first", "worst", or "first and worst"
    valid: bool | None
    run_id: str
    results: str
    fault_class: str
    severity: float
    detail: dict[str, Any]


def _detail(row: Mapping[Any, Any], verdict: str) -> dict[str, Any]:
    try:
        details = json.loads(row.get("verdict_detail") or "{}")
    except (TypeError, json.JSONDecodeError):
        return {}
    found = details.get(verdict) if isinstance(details, dict) else None
    return found if isinstance(found, dict) else {}


def _severity(row: Mapping[Any, Any], verdict: str, detail: dict[str, Any]) -> float:
    if verdict == "complete":  # how far from done the run was left
        return float(row.get("steps_expected", 0) or 0) - float(row.get("steps_persisted", 0) or 0)
    value = detail.get(SEVERITY.get(verdict, ""), 0)
    return float(value) if isinstance(value, int | float) else 0.0


def _bad(runs: pd.DataFrame, verdict: str) -> pd.DataFrame:
    column = runs[verdict]
    return runs[(column == False) | column.isna()]  # noqa: E712  (nullable booleans)


def anomaly_table(results: ResultSet) -> pd.DataFrame:
    """Per (backend, verdict) with at least one anomaly: how many runs were false, how
    many unknown, and which runs are the first and the worst examples."""
    columns = ["backend", "verdict", "false", "unknown", "first_run", "worst_run", "worst_severity"]
    examples = anomaly_examples(results)
    runs = judged_runs(results.frame("runs"))
    rows = []
    for (backend, verdict), group in _by_key(examples).items():
        mine = runs[runs["backend"] == backend]
        first = next(e for e in group if "first" in e.which)
        worst = next(e for e in group if "worst" in e.which)
        rows.append(
            {
                "backend": backend,
                "verdict": verdict,
                "false": int((mine[verdict] == False).sum()),  # noqa: E712
                "unknown": int(mine[verdict].isna().sum()),
                "first_run": f"{first.run_id} ({first.fault_class})",
                "worst_run": f"{worst.run_id} ({worst.fault_class})",
                "worst_severity": worst.severity,
            }
        )
    return pd.DataFrame(rows, columns=columns)


def _by_key(examples: list[Example]) -> dict[tuple[str, str], list[Example]]:
    grouped: dict[tuple[str, str], list[Example]] = {}
    for example in examples:
        grouped.setdefault((example.backend, example.verdict), []).append(example)
    return grouped


def anomaly_examples(results: ResultSet) -> list[Example]:
    """First and worst example per (backend, verdict); one example when they coincide."""
    runs = judged_runs(results.frame("runs"))
    if runs.empty:
        return []
    order = ["started_at", "run_id"] if "started_at" in runs.columns else ["run_id"]
    out: list[Example] = []
    for backend in dict.fromkeys(runs["backend"]):
        mine = runs[runs["backend"] == backend].sort_values(order, na_position="last")
        for verdict in verdict_columns(runs):
            bad = _bad(mine, verdict).to_dict("records")
            if not bad:
                continue
            scored = [(row, _detail(row, verdict)) for row in bad]
            severities = [_severity(row, verdict, d) for row, d in scored]
            worst_at = max(range(len(scored)), key=lambda i: (severities[i], -i))
            picks = [(0, "first")] if worst_at == 0 else [(0, "first"), (worst_at, "worst")]
            for index, which in picks:
                row, detail = scored[index]
                valid = row[verdict]
                out.append(
                    Example(
                        verdict=verdict,
                        backend=str(backend),
                        which="first and worst" if worst_at == 0 else which,
                        valid=None if pd.isna(valid) else bool(valid),
                        run_id=str(row["run_id"]),
                        results=str(row["results"]),
                        fault_class=str(row["fault_class"]),
                        severity=severities[index],
                        detail=detail,
                    )
                )
    return out


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def detail_rows(detail: dict[str, Any]) -> tuple[str, pd.DataFrame]:
    """A checker detail as (one line of its counts, a table of its examples): for
    state_match the field-level diff (path, expected, actual)."""
    scalars = {k: v for k, v in detail.items() if k not in EXAMPLE_LISTS}
    line = ", ".join(f"{k}={_cell(v)}" for k, v in sorted(scalars.items()))
    examples: Any = next((detail[k] for k in EXAMPLE_LISTS if detail.get(k)), [])
    if isinstance(examples, list) and examples and all(isinstance(e, dict) for e in examples):
        keys = list(dict.fromkeys(k for e in examples for k in e))
        if "path" in keys:  # the field-level diff: path first, then expected and actual
            keys = ["path", *[k for k in ("expected", "actual") if k in keys]] + [
                k for k in keys if k not in ("path", "expected", "actual")
            ]
        cells = [{k: _cell(e.get(k)) for k in keys} for e in examples]
        for cell in cells:
            if cell.get("path") == "":
                cell["path"] = "(the whole state)"
        frame = pd.DataFrame(cells, columns=keys)
    elif examples:
        frame = pd.DataFrame({"example": [_cell(e) for e in examples]})
    else:
        frame = pd.DataFrame()
    return line, frame
