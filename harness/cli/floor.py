"""`durabench floor`: only the raw floors, on the servers a benchmark would bring up."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from harness.cli.common import (
    backends_option,
    execute_bench,
    external_from,
    external_options,
    fail,
    installed_backends,
    log_to,
    out,
    out_option,
    stop_on_signals,
)
from harness.cli.tables import print_floors
from harness.errors import DurabenchError

__all__ = ["floor"]


@click.command()
@click.argument("scenario")
@backends_option("Backend whose floor to run (repeatable). Default: every installed backend.")
@out_option("Directory that receives results/<run-id>/ (floors.parquet, floors.json).")
@external_options
@click.option(
    "--runs",
    type=click.IntRange(min=1),
    default=None,
    help="Runs per floor program. Default: the scenario's runs.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=None,
    help="Runs in flight. Default: the scenario's load.concurrency.",
)
def floor(
    scenario: str,
    backends: tuple[str, ...],
    out_dir: Path,
    runs: int | None,
    concurrency: int | None,
    **services: Any,
) -> None:
    """Run each backend's raw floor: the same step shape written directly against its SDK
    and store, nothing of durabench's harness in the loop, on the same servers and
    services a benchmark of SCENARIO brings up. Prints step and overhead percentiles."""
    from harness.floor_run import FloorRun

    external = external_from(services)
    stop_on_signals()
    try:
        bench = FloorRun(
            Path(scenario),
            list(backends) or installed_backends(),
            out_dir,
            external=external,
            runs=runs,
            concurrency=concurrency,
        )
    except DurabenchError as exc:
        fail(str(exc))
    log_to(out_dir)
    figures = execute_bench(bench)
    print_floors(figures)
    if bench.results is not None:
        out.print(f"results: {bench.results.path}")
