"""`--junit FILE` and `--summary-md FILE`: results in the forms CI systems read.

Shared by `run`, `suite`, `explore` and `load` (harness/junit.py, harness/ci_summary.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from harness.cli.common import console

__all__ = ["ci_options", "write_ci"]

F = TypeVar("F", bound=Callable[..., Any])


def ci_options(function: F) -> F:
    function = click.option(
        "--summary-md",
        "summary_md",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        metavar="FILE",
        help="Write the headline and its table as Markdown (also appended to "
        "$GITHUB_STEP_SUMMARY when that is set).",
    )(function)
    return click.option(
        "--junit",
        "junit",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        metavar="FILE",
        help="Write JUnit XML: one test case per backend and cell; a failure carries the "
        "anomaly counts, the first example and its witness; inconclusive cells are skipped.",
    )(function)


def write_ci(
    junit: Path | None,
    summary_md: Path | None,
    title: str,
    outcomes: list[Any],
    *,
    cases: list[Any] | None = None,
    results: str | None = None,
) -> None:
    """Write whichever of the two files was asked for (and the step summary)."""
    import os

    from harness.ci_summary import STEP_SUMMARY_ENV, summary_markdown, write_summary_md

    if junit is not None:
        from harness.junit import write_junit

        properties = {"results": results} if results else None
        write_junit(junit, title, outcomes, cases=cases, properties=properties)
        console.print(f"junit: {junit}", highlight=False)
    if summary_md is not None or os.environ.get(STEP_SUMMARY_ENV):
        text = summary_markdown(title, outcomes, results=results)
        for path in write_summary_md(summary_md, text):
            console.print(f"summary: {path}", highlight=False)
