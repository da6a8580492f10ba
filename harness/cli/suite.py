"""`durabench suite`: every backend under every fault class, with a matrix summary."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import click

from harness.cli.ci import ci_options, write_ci
from harness.cli.common import (
    backends_option,
    console,
    fail,
    fmt,
    installed_backends,
    log_to,
    out,
    out_option,
    stop_on_signals,
)
from harness.cli.live import metrics_option, metrics_served
from harness.cli.tables import print_headline, print_matrix
from harness.cli.until import goal_from, until_options
from harness.errors import DurabenchError
from harness.progress import CellProgress

__all__ = ["SUITE_LANGGRAPH", "suite", "suite_backends"]


# LangGraph runs in the suite in its durable mode: `async` (its default) may legitimately
# lose the steps it had not yet checkpointed; `sync` is the mode that promises to hold.
SUITE_LANGGRAPH = "langgraph:sqlite?durability=sync"
# the framework backends by the names their results carry (the substrate made explicit)
SUITE_NAMES = {
    "langgraph": SUITE_LANGGRAPH,
    "pydantic-ai": "pydantic-ai:temporal",
    "openai-agents": "openai-agents:temporal",
}


def suite_backends() -> list[str]:
    """Every installed built-in backend, LangGraph as SUITE_LANGGRAPH."""
    return [SUITE_NAMES.get(n, n) for n in installed_backends()]


@click.command()
@backends_option(
    "Backend to include (repeatable). Default: every installed backend, LangGraph as "
    f"{SUITE_LANGGRAPH!r}."
)
@click.option(
    "--quick",
    is_flag=True,
    help="A smoke test: the small variant of each fault class (scenarios/chaos/quick/, "
    "at most 10 minutes on 2 cores for the whole matrix), with little statistical power. "
    "Without it, each cell runs scenarios/chaos/<class>.yaml, sized to expose tens of runs.",
)
@click.option(
    "--only",
    multiple=True,
    metavar="CLASS",
    help="Only these fault classes (repeatable), e.g. --only kill --only partition.",
)
@click.option(
    "--known",
    is_flag=True,
    help="Run the known-answer fixtures (scenarios/known/) instead: documented behaviours "
    "of released backends; --only then names fixtures.",
)
@out_option("Directory that receives suite-<time>/ (known-<time>/ with --known).")
@until_options
@ci_options
@metrics_option
def suite(
    backends: tuple[str, ...],
    quick: bool,
    only: tuple[str, ...],
    known: bool,
    out_dir: Path,
    junit: Path | None,
    summary_md: Path | None,
    metrics_port: int | None,
    **until: Any,
) -> None:
    """Run the standard chaos suite: every backend under every fault class
    (scenarios/chaos/), one results directory per cell, and a matrix summary.

    A cell whose faults exposed no run (a pause before any run was claimed, a kill of a
    worker that held none) is INCONCLUSIVE, never a pass. Without --quick the cells are
    sized to expose enough runs for a design flaw to show; --quick is a smoke test with
    little statistical power.

    Exit codes: 0 every cell met its expectation, 1 some integrity expectation failed,
    2 bad arguments or scenario, 3 the harness itself failed in some cell, 4 some cell
    was inconclusive (nothing failed), 5 a backend misbehaved (its inspect() raised or
    returned malformed state for some run). With --until-integrity each cell runs until
    its lower bound clears P, an anomaly is found, or its budget is spent (a spent budget
    makes the cell inconclusive, exit 4)."""
    from backends.base import load_backend
    from harness.suite import QUICK_NOTE, Cell, chaos_scenarios, run_suite

    if known:
        from harness.cli.known import run_known_fixtures

        run_known_fixtures(list(backends), list(only), out_dir)
    names = list(backends) or suite_backends()
    stop_on_signals()
    try:
        goal = goal_from(until)
        for name in names:
            load_backend(name)
        classes = chaos_scenarios(list(only) or None, quick=quick)
    except DurabenchError as exc:
        fail(str(exc))
    log_to(out_dir)

    def show(cell: Cell) -> None:
        if cell.status == "failed":
            mark = f"[red]harness failed: {cell.error}[/]"
        elif cell.inspect_errors:
            mark = "[red]backend misbehaved (inspect failed)[/]"
        elif cell.inconclusive:
            mark = "[yellow]INCONCLUSIVE: no fault exposed any run[/]"
        elif cell.result == "not applicable":
            mark = "[dim]not applicable: every fault was skipped for this backend[/]"
        else:
            mark = {True: "[green]met[/]", False: "[red]NOT MET[/]", None: "-"}[cell.met]
        if cell.exposed_runs is None:
            evidence = f"{cell.runs or 0} runs (no faults)"
        else:
            evidence = f"{cell.exposed_runs} exposed of {cell.runs or 0} runs"
        rate = cell.exposed_integrity if cell.exposed_runs is not None else cell.integrity
        ci = (
            f" [{cell.evidence_lower:.3f}, {cell.evidence_upper:.3f}]"
            if cell.evidence_n and cell.evidence_lower is not None
            else ""
        )
        until = ""
        if cell.until is not None:
            until = f"; until: {cell.until}, lower bound {fmt(cell.until_lower_bound, 4)}"
        bar.advance(
            f"{cell.fault_class} x {cell.backend}: {evidence}, integrity {fmt(rate, 3)}{ci} "
            f"(all runs {fmt(cell.integrity, 3)}; expected >= {fmt(cell.expected_integrity)})"
            f"{until} {mark}"
        )

    if quick:
        console.print(QUICK_NOTE, highlight=False)
    bar = CellProgress(console, "suite cells", len(classes) * len(names))
    try:
        with bar, metrics_served(metrics_port):
            result = asyncio.run(
                run_suite(
                    names, out_dir, quick=quick, only=list(only) or None, on_cell=show, goal=goal
                )
            )
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except DurabenchError as exc:
        fail(str(exc))
    print_matrix(result.cells)
    if quick:
        out.print(QUICK_NOTE, style="yellow", highlight=False)
    out.print(f"suite: {result.path}")
    from harness.headline import headline_lines, outcome_from_cell

    outcomes = [outcome_from_cell(c) for c in result.cells]
    print_headline(headline_lines(outcomes))
    title = "durabench suite" + (" --quick" if quick else "")
    write_ci(junit, summary_md, title, outcomes, results=str(result.path))
    sys.exit(result.exit_code)
