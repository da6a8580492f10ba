"""The report's findings section: what `durabench explore` found, first.

For each anomaly an exploration shrunk: what it breaks, its minimal reproducer (the
exact fault list and sizes, and the command that re-runs it), its reproduction rate,
the explanation (witness) written beside it, and whether a known-answer fixture
(scenarios/known/) documents the same behaviour on the same backend.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from harness.report.document import Code, Note, Section, Table

__all__ = ["exploration_results", "findings_section", "known_matches", "read_exploration"]


def read_exploration(path: Path) -> dict[str, Any]:
    """explore.json of an explore directory, with the directory it was read from."""
    record: dict[str, Any] = json.loads((path / "explore.json").read_text())
    record["directory"] = str(path)
    return record


def exploration_results(record: dict[str, Any]) -> list[Path]:
    """The results directories the rest of the report reads from an exploration: each
    finding's witness run, else its last trial."""
    witnesses = [Path(f["witness_results"]) for f in record.get("findings", [])]
    trials = [Path(t["results"]) for t in record.get("trials", []) if t.get("results")]
    chosen = [p for p in witnesses if (p / "manifest.json").is_file()] or trials[-1:]
    return [p for p in chosen if (p / "manifest.json").is_file()]


def _shape(faults: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(str(f.get("kind")), str(f.get("point", f.get("target", "")))) for f in faults}


def known_matches(backend: str, faults: list[dict[str, Any]]) -> list[str]:
    """Known fixtures that expect something of this backend under the same kinds of
    fault (crash points by point): the documented behaviour a finding may be."""
    try:
        from harness.known import known_fixtures

        fixtures = known_fixtures()
    except Exception:  # a broken fixture must not take the report down with it
        return []
    base = backend.split("?", 1)[0]
    found = []
    for fixture in fixtures:
        names = {name.split("?", 1)[0] for name in fixture.known.expect}
        if base in names and _shape(fixture.scenario.get("faults", [])) == _shape(faults):
            found.append(fixture.name)
    return found


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return f"({path} is missing)"


def findings_section(explorations: list[dict[str, Any]]) -> Section:
    findings = [(e, f) for e in explorations for f in e.get("findings", [])]
    trials = sum(len(e.get("trials", [])) for e in explorations)
    if not findings:
        return Section(
            "findings",
            "Findings from explore",
            f"No anomaly in {trials} explored trial(s) on "
            f"{', '.join(sorted({e['backend'] for e in explorations}))}.",
        )
    reading = (
        f"{len(findings)} anomaly(ies) found in {trials} explored trial(s), each shrunk to a "
        "minimal reproducer; below, each with its reproduction rate and its witness."
    )
    section = Section("findings", "Findings from explore", reading)
    rows = []
    for exploration, finding in findings:
        minimal = finding.get("minimal", {})
        known = known_matches(exploration["backend"], minimal.get("faults", []))
        rows.append(
            {
                "finding": finding["finding"],
                "backend": exploration["backend"],
                "breaks": ", ".join(finding["broken"]),
                "faults": finding["faults_count"],
                "reproduced": f"{finding['reproduced']}/{finding['reruns']}",
                "shrink_steps": finding.get("shrink_steps"),
                "found_at_s": finding.get("found_at_s"),
                "known_fixture": ", ".join(known) or "none",
            }
        )
    section.add(Table("findings", pd.DataFrame(rows)))
    for (exploration, finding), row in zip(findings, rows, strict=True):
        section.add(
            Note(
                f"Finding {finding['finding']} on {exploration['backend']}: breaks "
                f"{row['breaks']}, reproduced {row['reproduced']}; known fixture: "
                f"{row['known_fixture']}. Re-run: durabench run {finding['reproducer']} "
                f"--backend {exploration['backend']}"
            ),
            Code(_read(finding["reproducer"])),
            Code(_read(finding["explanation"])),
        )
    return section
