"""The CI summary: the headline and its table as Markdown, for a job's summary page.

`--summary-md FILE` writes it; when `$GITHUB_STEP_SUMMARY` is set (GitHub Actions) it is
appended there too, so a run in CI shows its findings on the job's page without anyone
opening an artifact.
"""

from __future__ import annotations

import os
from pathlib import Path

from harness.headline import Outcome, headline_lines

__all__ = ["STEP_SUMMARY_ENV", "summary_markdown", "write_summary_md"]

STEP_SUMMARY_ENV = "GITHUB_STEP_SUMMARY"
COLUMNS = ("backend", "fault class", "result", "what", "exposed runs intact", "integrity [95%]")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _result(o: Outcome) -> str:
    if o.result == "error":
        return "ERROR"
    if o.failed:
        return "**FAIL**"
    return o.result


def summary_markdown(title: str, outcomes: list[Outcome], *, results: str | None = None) -> str:
    lines = headline_lines(outcomes)
    parts = [f"### {title}", "", f"**{_cell(lines[0])}**  ", _cell(lines[1]) + "  "]
    parts += [f"`{lines[2].split(': ', 1)[-1]}`" if ": " in lines[2] else lines[2], ""]
    parts += ["| " + " | ".join(COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
    for o in sorted(outcomes, key=lambda o: (not o.failed, o.backend, o.fault_class)):
        interval = (
            "-"
            if o.lower is None or o.upper is None or not o.n
            else f"{o.passed / o.n:.3f} [{o.lower:.3f}, {o.upper:.3f}]"
        )
        intact = f"{o.passed}/{o.n}" if o.n else "-"
        cells = (o.backend, o.fault_class, _result(o), o.what(), intact, interval)
        parts.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    if results:
        parts += ["", f"results: `{results}`"]
    return "\n".join(parts) + "\n"


def write_summary_md(path: Path | None, text: str) -> list[Path]:
    """Write `text` to `path` (if given) and append it to $GITHUB_STEP_SUMMARY (if set);
    returns where it went."""
    written: list[Path] = []
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    step = os.environ.get(STEP_SUMMARY_ENV)
    if step:
        target = Path(step)
        with target.open("a", encoding="utf-8") as handle:
            handle.write(text + "\n")
        written.append(target)
    return written
