"""`durabench suite --known`: the known-answer fixtures, one line per fixture and backend."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import NoReturn

from harness.cli.common import console, fail, log_to, out, stop_on_signals
from harness.errors import DurabenchError

__all__ = ["run_known_fixtures"]

_MARKS = {
    "pass": "[green]pass[/]",
    "fail": "[red]FAIL[/]",
    "not_applicable": "[yellow]not applicable[/]",
    "error": "[red]harness failed[/]",
}


def run_known_fixtures(backends: list[str], only: list[str], out_dir: Path) -> NoReturn:
    """Run the fixtures, print each outcome and why, exit 0 / 1 (an expectation failed) /
    2 (bad fixture) / 3 (the harness failed)."""
    from harness.known import KnownResult, known_fixtures, run_known

    stop_on_signals()
    try:
        known_fixtures(only or None)  # every fixture validated before anything runs
    except DurabenchError as exc:
        fail(str(exc))
    log_to(out_dir)

    def show(result: KnownResult) -> None:
        installed = f"{result.package} {result.installed or 'not installed'}"
        console.print(
            f"{_MARKS[result.status]:<28} {result.fixture} x {result.backend} ({installed}, "
            f"applies to {result.versions})",
            highlight=False,
        )
        for problem in result.problems:
            console.print(f"    {problem}", highlight=False)

    try:
        run = asyncio.run(
            run_known(out_dir, only=only or None, backends=backends or None, on_result=show)
        )
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except DurabenchError as exc:
        fail(str(exc))
    counts = {s: sum(r.status == s for r in run.results) for s in _MARKS}
    out.print(
        f"known: {counts['pass']} pass, {counts['fail']} fail, "
        f"{counts['not_applicable']} not applicable, {counts['error']} harness failed: {run.path}",
        highlight=False,
    )
    sys.exit(run.exit_code)
