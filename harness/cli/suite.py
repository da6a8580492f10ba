"""`durabench suite`: every backend under every fault class, with a matrix summary."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

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
from harness.cli.tables import print_matrix
from harness.errors import DurabenchError

__all__ = ["suite"]


@click.command()
@backends_option("Backend to include (repeatable). Default: every installed backend.")
@click.option(
    "--quick",
    is_flag=True,
    help="Run each fault class's scenario as written (minutes); without it, "
    "every cell runs 5x the runs.",
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
def suite(
    backends: tuple[str, ...], quick: bool, only: tuple[str, ...], known: bool, out_dir: Path
) -> None:
    """Run the standard chaos suite: every backend under every fault class
    (scenarios/chaos/), one results directory per cell, and a matrix summary.

    Exit codes: 0 every cell met its expectation, 1 some integrity expectation failed,
    2 bad arguments or scenario, 3 the harness itself failed in some cell."""
    from backends.base import load_backend
    from harness.suite import Cell, chaos_scenarios, run_suite

    if known:
        from harness.cli.known import run_known_fixtures

        run_known_fixtures(list(backends), list(only), out_dir)
    names = list(backends) or installed_backends()
    stop_on_signals()
    try:
        for name in names:
            load_backend(name)
        chaos_scenarios(list(only) or None)
    except DurabenchError as exc:
        fail(str(exc))
    log_to(out_dir)

    def show(cell: Cell) -> None:
        mark = {True: "[green]met[/]", False: "[red]NOT MET[/]", None: "-"}[cell.met]
        if cell.status == "failed":
            mark = f"[red]harness failed: {cell.error}[/]"
        console.print(
            f"{cell.fault_class:>14} x {cell.backend:<24} integrity "
            f"{fmt(cell.integrity, 3)} (expected >= {fmt(cell.expected_integrity)}) {mark}"
        )

    try:
        result = asyncio.run(
            run_suite(names, out_dir, quick=quick, only=list(only) or None, on_cell=show)
        )
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except DurabenchError as exc:
        fail(str(exc))
    print_matrix(result.cells)
    out.print(f"suite: {result.path}")
    sys.exit(result.exit_code)
