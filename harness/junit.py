"""JUnit XML for CI systems: one test case per backend and cell.

A cell fails when it missed its expectation, or has none and lost or duplicated
something (harness/headline.py: `Outcome.failed`); the failure carries the anomaly
counts, the first anomalous run and its witness (harness/witness.py), and the command
that reproduces it. An inconclusive or not-applicable cell is skipped with the reason;
a cell the harness could not judge is a failure of type `harness-error` (the one
outcome every JUnit reader shows as a failed case; some drop a per-case `<error>`).
An explore finding is a failing case with its explanation and minimal reproducer.
"""

from __future__ import annotations

import json
import re
import socket
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness.headline import Outcome, headline_lines, outcomes_from_results

__all__ = [
    "Case",
    "case_from_outcome",
    "explore_cases",
    "explore_outcomes",
    "first_example",
    "junit_xml",
    "write_junit",
]

MAX_TEXT = 20_000  # a failure's text beyond this is cut (CI viewers choke on megabytes)
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@dataclass(frozen=True)
class Case:
    classname: str
    name: str
    time_s: float = 0.0
    failure: tuple[str, str, str] | None = None  # (type, message, text)
    skipped: str | None = None  # the reason
    system_out: str = ""  # the cell's one-line finding and its reproduce command


def _clean(text: str) -> str:
    text = _INVALID_XML.sub("?", text)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 20] + "\n... (cut)"


def _classname(fault_class: str) -> str:
    return "durabench." + re.sub(r"[^A-Za-z0-9_.-]+", "_", fault_class).strip("_")


def first_example(results: str | Path, backend: str, broken: set[str]) -> tuple[str, str] | None:
    """(run id, witness text) of the first run (by start) that broke one of `broken`."""
    import pandas as pd

    from harness.witness import witness_text

    path = Path(results)
    try:
        runs = pd.read_parquet(path / "runs.parquet")
    except (OSError, ValueError):
        return None
    mine = runs[runs["backend"] == backend]
    columns = [v for v in sorted(broken) if v in mine.columns]
    if mine.empty or not columns:
        return None
    bad = mine[(mine[columns] == False).any(axis=1)]  # noqa: E712  (nullable booleans)
    if bad.empty:
        return None
    order = [c for c in ("started_at", "run_id") if c in bad.columns]
    run_id = str(bad.sort_values(order).iloc[0]["run_id"])
    try:
        return run_id, "\n".join(witness_text(path, run_id, broken))
    except Exception as exc:  # a witness that cannot be written must not lose the failure
        return run_id, f"(no witness: {type(exc).__name__}: {exc})"


def _wall_s(outcome: Outcome) -> float:
    if not outcome.results:
        return 0.0
    try:
        summary = json.loads((Path(outcome.results) / "summary.json").read_text())
        return float((summary.get(outcome.backend) or {}).get("wall_s") or 0.0)
    except (OSError, ValueError, TypeError):
        return 0.0


def case_from_outcome(outcome: Outcome, explanation: str | None = None) -> Case:
    """One cell as a test case; `explanation` replaces the witness looked up from its
    results directory (an explore finding's explanation.txt)."""
    o = outcome
    reproduce = (
        f"durabench run {o.reproducer} --backend {o.backend}" if o.reproducer else o.reproduce
    )
    out = f"{o.where()}: {o.what()}; {o.evidence()}\nreproduce: {reproduce or '-'}\n"
    case = Case(_classname(o.fault_class), o.backend, _wall_s(o), system_out=out)
    if o.result == "error":
        failure = ("harness-error", f"{o.where()}: not judged: {o.reason}", o.reason)
        return replace(case, failure=failure)
    if o.skipped:
        reason = f"{o.result}: {o.what()}" + (f" ({o.reason})" if o.reason else "")
        return replace(case, skipped=reason)
    if not o.failed:
        return case
    counts = ", ".join(f"{v}={n}" for v, n in o.broken) or "none"
    if o.stray_effects:
        counts += f", stray_effects={o.stray_effects}"
    if o.met is False and o.expected is not None:
        message = f"{o.where()}: integrity below the expected {o.expected:g}: {o.what()}"
    else:
        message = f"{o.where()}: {o.what()}"
    lines = [
        message,
        f"evidence: {o.evidence()}",
        f"anomalies (runs per verdict): {counts}",
        f"reproduce: {reproduce or '-'}",
    ]
    if explanation is None and o.results:
        example = first_example(o.results, o.backend, {v for v, _ in o.broken})
        if example is not None:
            lines += ["", f"first example: run {example[0]}", example[1]]
    elif explanation is not None:
        lines += ["", "explanation:", explanation]
    kind = o.broken[0][0] if o.broken else "expectation"
    return replace(case, failure=(kind, message, "\n".join(lines)))


def explore_outcomes(record: dict[str, Any]) -> list[tuple[Outcome, str | None]]:
    """An exploration as outcomes: each finding (from its witness run, with its minimal
    reproducer and explanation), or, with no finding, the exploration as one cell."""
    from harness.stats import integrity_interval

    backend = str(record.get("backend"))
    found: list[tuple[Outcome, str | None]] = []
    for finding in record.get("findings", []):
        witness = finding.get("witness_results")
        mine = [o for o in outcomes_from_results(Path(witness)) if o.backend == backend]
        try:
            explanation: str | None = Path(finding["explanation"]).read_text()
        except (OSError, KeyError):
            explanation = finding.get("summary")
        name = f"explore {record.get('scenario_name')}: finding {finding['finding']}"
        if mine:
            outcome = replace(mine[0], fault_class=name, reproducer=finding.get("reproducer"))
        else:
            broken = {str(v): 1 for v in finding.get("broken", [])}
            outcome = Outcome(
                backend, name, "fail", anomalies=broken, reproducer=finding.get("reproducer")
            )
        found.append((outcome, explanation))
    if found:
        return found
    exposed = int(record.get("exposed_runs") or 0)
    interval = integrity_interval(exposed, exposed)
    trials = int(record.get("trials_run") or len(record.get("trials", [])))
    outcome = Outcome(
        backend,
        f"explore {record.get('scenario_name')}: {trials} trials",
        "pass" if exposed else "inconclusive",
        runs=exposed,
        exposed=exposed,
        n=exposed,
        passed=exposed,
        lower=interval.lower if exposed else None,
        upper=interval.upper if exposed else None,
        results=record.get("directory"),
    )
    return [(outcome, None)]


def explore_cases(record: dict[str, Any]) -> list[Case]:
    return [case_from_outcome(o, explanation) for o, explanation in explore_outcomes(record)]


def _time(seconds: float) -> str:
    return f"{max(0.0, seconds):.3f}"


def junit_xml(
    suite_name: str,
    cases: Iterable[Case],
    *,
    properties: dict[str, str] | None = None,
    headline: list[str] | None = None,
) -> str:
    """`<testsuites>` with one `<testsuite>`, the structure CI systems read."""
    cases = list(cases)
    failures = sum(c.failure is not None for c in cases)
    skipped = sum(c.skipped is not None for c in cases)
    total = sum(c.time_s for c in cases)
    root = ET.Element(
        "testsuites",
        name="durabench",
        tests=str(len(cases)),
        failures=str(failures),
        errors="0",
        time=_time(total),
    )
    suite = ET.SubElement(
        root,
        "testsuite",
        name=suite_name,
        tests=str(len(cases)),
        failures=str(failures),
        errors="0",
        skipped=str(skipped),
        time=_time(total),
        timestamp=time.strftime("%Y-%m-%dT%H:%M:%S"),
        hostname=socket.gethostname(),
    )
    if properties:
        props = ET.SubElement(suite, "properties")
        for key, value in properties.items():
            ET.SubElement(props, "property", name=key, value=_clean(value))
    for case in cases:
        element = ET.SubElement(
            suite, "testcase", classname=case.classname, name=case.name, time=_time(case.time_s)
        )
        if case.failure is not None:
            kind, message, text = case.failure
            failure = ET.SubElement(element, "failure", type=kind, message=_clean(message))
            failure.text = _clean(text)
        if case.skipped is not None:
            ET.SubElement(element, "skipped", message=_clean(case.skipped))
        if case.system_out:
            ET.SubElement(element, "system-out").text = _clean(case.system_out)
    if headline:
        ET.SubElement(suite, "system-out").text = _clean("\n".join(headline) + "\n")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, "unicode") + "\n"


def write_junit(
    path: Path,
    suite_name: str,
    outcomes: list[Outcome],
    *,
    cases: list[Case] | None = None,
    properties: dict[str, str] | None = None,
) -> Path:
    """Write the JUnit file of these outcomes (or of ready `cases`)."""
    chosen = cases if cases is not None else [case_from_outcome(o) for o in outcomes]
    text = junit_xml(suite_name, chosen, properties=properties, headline=headline_lines(outcomes))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
