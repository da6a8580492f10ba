"""`durabench load` and `durabench sweep`: Locust-driven load and the scaling grid.

The load machinery lives in harness.load; heavy imports (runner, pandas, Locust) happen
inside the commands.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError
from rich.table import Table

from harness.cli.ci import ci_options, write_ci
from harness.cli.common import (
    console,
    execute_bench,
    external_from,
    external_options,
    fail,
    out,
    out_option,
    stop_on_signals,
)
from harness.cli.live import metrics_option, metrics_served
from harness.cli.tables import print_results_headline, print_summary
from harness.errors import DurabenchError
from harness.progress import CellProgress, run_progress

__all__ = ["load_command", "parse_run_time", "parse_shape_option", "sweep_command"]

LOCUST_MASTER_PORT = 5557  # Locust's own default


def parse_run_time(text: str) -> float:
    """Locust's time spans: `90`, `90s`, `5m`, `1h30m` -> seconds."""
    text = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", text)
    if not text or parts is None or not any(parts.groups()):
        raise DurabenchError(f"--run-time {text!r}: use seconds or a span like 90s, 5m, 1h30m")
    h, m, s = (int(g or 0) for g in parts.groups())
    return float(h * 3600 + m * 60 + s)


def parse_shape_option(text: str) -> Any:
    """`ramp:to_users=64,duration_s=60` -> a validated shape (see harness.load.shapes)."""
    from harness.load.shapes import SHAPE_KINDS, parse_shape

    kind, _, rest = text.partition(":")
    if kind not in SHAPE_KINDS:
        raise DurabenchError(f"--shape {kind!r}: shapes are {', '.join(SHAPE_KINDS)}")
    data: dict[str, Any] = {"kind": kind}
    for pair in filter(None, rest.split(",")):
        key, sep, value = pair.partition("=")
        if not sep:
            raise DurabenchError(f"--shape {text!r}: {pair!r} must look like key=value")
        data[key.strip()] = float(value) if "." in value else int(value)
    try:
        return parse_shape(data)
    except (ValidationError, ValueError) as exc:
        raise DurabenchError(f"--shape {text!r}: {exc}") from None


@click.command(name="load")
@click.argument("scenario", required=False)
@click.option(
    "--backend",
    "-b",
    "backends",
    multiple=True,
    metavar="NAME",
    help="Backend to load (repeatable; one Locust test each).",
)
@click.option("--users", "-u", type=click.IntRange(min=1), help="Locust users (constant shape).")
@click.option("--spawn-rate", "-r", type=float, default=None, help="Users started per second.")
@click.option("--run-time", "-t", metavar="SPAN", help="Stop after this long (90s, 5m, 1h).")
@click.option(
    "--shape",
    metavar="KIND[:k=v,...]",
    help="Load shape: constant, ramp, step or spike with its fields, e.g. "
    "'ramp:to_users=64,duration_s=60' (see the scenario's load.shape).",
)
@click.option(
    "--runs",
    type=click.IntRange(min=1),
    help="Run budget: end once this many runs started and finished. Default: the "
    "scenario's runs, unless a run time or a timed shape ends the test.",
)
@click.option(
    "--no-wait",
    is_flag=True,
    help="Users start runs without waiting for them "
    "(durabench still waits for and judges every run).",
)
@click.option(
    "--user-rate",
    type=float,
    default=0.0,
    show_default=True,
    help="Runs per second per user, Poisson arrivals (0: back to back).",
)
@click.option(
    "--headless/--web",
    default=True,
    show_default=True,
    help="Without the web UI, or with it (it starts and quits on its own).",
)
@click.option("--web-port", type=int, default=8089, show_default=True)
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Distributed on this machine: a Locust master and this many worker processes.",
)
@click.option(
    "--master",
    "as_master",
    is_flag=True,
    help="Be the Locust master for workers on other machines (with --expect-workers).",
)
@click.option(
    "--expect-workers",
    type=click.IntRange(min=0),
    default=0,
    help="Remote workers the master waits for.",
)
@click.option(
    "--bind-host",
    default=None,
    help="Address the master and the run gateway bind (default 127.0.0.1; 0.0.0.0 with --master).",
)
@click.option(
    "--advertise-host", default=None, help="Address remote workers use to reach the run gateway."
)
@click.option(
    "--master-port",
    type=int,
    default=None,
    help="Locust master port (default: 5557 with --master or --worker, else free).",
)
@click.option(
    "--gateway-port",
    type=int,
    default=0,
    help="Port of the run gateway Locust users call (default: a free port).",
)
@click.option(
    "--worker",
    "as_worker",
    is_flag=True,
    help="Be a Locust worker for a `durabench load --master` elsewhere.",
)
@click.option(
    "--master-host",
    default="127.0.0.1",
    show_default=True,
    help="With --worker: where the master runs.",
)
@click.option(
    "--timeout",
    "timeout_s",
    type=float,
    default=None,
    help="Give up (as a failure) when Locust runs longer than this many seconds.",
)
@out_option()
@external_options
@ci_options
@metrics_option
def load_command(
    scenario: str | None,
    backends: tuple[str, ...],
    users: int | None,
    spawn_rate: float | None,
    run_time: str | None,
    shape: str | None,
    runs: int | None,
    no_wait: bool,
    user_rate: float,
    headless: bool,
    web_port: int,
    workers: int,
    as_master: bool,
    expect_workers: int,
    bind_host: str | None,
    advertise_host: str | None,
    master_port: int | None,
    gateway_port: int,
    as_worker: bool,
    master_host: str,
    timeout_s: float | None,
    out_dir: Path,
    junit: Path | None,
    summary_md: Path | None,
    metrics_port: int | None,
    **services: Any,
) -> None:
    """Drive SCENARIO's agent runs on each backend with Locust (local, or distributed with
    --workers / --master / --worker), inject the scenario's faults during the load, then
    check every run started and write results/<run-id>/ with Locust's reports in locust/."""
    if as_worker:
        from harness.load.driver import worker_argv

        argv = worker_argv(master_host, master_port or LOCUST_MASTER_PORT)
        sys.exit(subprocess.run(argv, env=os.environ.copy(), check=False).returncode)
    if scenario is None:
        fail("a SCENARIO is needed (except with --worker)")
    if not backends:
        fail("name at least one --backend")
    from harness.load.driver import LocustDriver, LocustPlan, default_plan
    from harness.load.shapes import ConstantShape, shape_duration
    from harness.runner import BenchmarkRun
    from harness.scenario import load_scenario

    try:
        scenario_model = load_scenario(scenario)
        base = default_plan(scenario_model, runs)
        chosen = base.shape
        if shape is not None:
            chosen = parse_shape_option(shape)
        elif users is not None or run_time is not None:
            count: int = users or int(getattr(base.shape, "users", 1))
            chosen = ConstantShape(
                users=count,
                spawn_rate=spawn_rate or max(1.0, float(count)),
                duration_s=parse_run_time(run_time) if run_time else None,
            )
        timed = shape_duration(chosen) is not None
        host = bind_host or ("0.0.0.0" if as_master else "127.0.0.1")
        plan = LocustPlan(
            chosen,
            runs=runs if runs is not None else (None if timed else scenario_model.runs),
            wait=base.wait and not no_wait,
            user_rate=user_rate or base.user_rate,
            workers=workers,
            expect_workers=expect_workers if as_master else 0,
            bind_host=host,
            advertise_host=advertise_host,
            master_port=master_port or (LOCUST_MASTER_PORT if as_master else None),
            gateway_port=gateway_port,
            headless=headless,
            web_port=web_port,
            timeout_s=timeout_s,
        )
        driver = LocustDriver(plan)
        progress, report = run_progress(console)
        bench = BenchmarkRun(
            Path(scenario),
            list(backends),
            out_dir,
            progress=report,
            external=external_from(services),
            driver=driver,
        )
    except DurabenchError as exc:
        fail(str(exc))
    stop_on_signals()
    with metrics_served(metrics_port):
        results = execute_bench(bench, progress)
    print_summary(results.read_json("summary.json"))
    _print_locust(results.read_json("load.json"))
    out.print(f"results: {results.path}")
    print_results_headline(results.path)
    from harness.headline import outcomes_from_results

    outcomes = outcomes_from_results(results.path)
    write_ci(junit, summary_md, f"durabench load {scenario}", outcomes, results=str(results.path))


def _print_locust(load: dict[str, Any]) -> None:
    table = Table(title="Locust: agent requests")
    for column in ("backend", "request", "requests", "failures", "per s", "p50 ms", "p99 ms"):
        table.add_column(column, justify="left" if column in ("backend", "request") else "right")
    for backend, data in load.items():
        for name, stats in data["locust"].items():
            if stats is None:
                continue
            table.add_row(
                backend,
                name,
                str(stats["requests"]),
                str(stats["failures"]),
                f"{stats['per_s'] or 0:.2f}",
                str(stats["p50_ms"]),
                str(stats["p99_ms"]),
            )
    out.print(table)


@click.command(name="sweep")
@click.argument("scenario")
@click.option(
    "--backend",
    "-b",
    "backends",
    multiple=True,
    metavar="NAME",
    required=True,
    help="Backend to sweep (repeatable).",
)
@click.option(
    "--concurrency", default="1,4,16,64", show_default=True, help="Runs in flight, comma-separated."
)
@click.option(
    "--steps",
    default="10,100,1000",
    show_default=True,
    help="Steps per run (the history length), comma-separated.",
)
@click.option(
    "--runs",
    type=click.IntRange(min=1),
    default=None,
    help="Runs per cell. Default: max(scenario runs, 2 x concurrency).",
)
@out_option()
@external_options
def sweep_command(
    scenario: str,
    backends: tuple[str, ...],
    concurrency: str,
    steps: str,
    runs: int | None,
    out_dir: Path,
    **services: Any,
) -> None:
    """Run SCENARIO over a grid of concurrency x steps on each backend and record, per
    cell, throughput, step latency and overhead percentiles, persisted bytes and history
    length: sweep.json, sweep.parquet and figures in a sweep directory.
    Exits 1 when some cell failed."""
    from backends.base import load_backend
    from harness.load.sweep import SweepCell, parse_grid, run_sweep

    try:
        grid_c = parse_grid(concurrency, "concurrency")
        grid_s = parse_grid(steps, "steps")
        for name in backends:
            load_backend(name)
    except DurabenchError as exc:
        fail(str(exc))

    def show(cell: SweepCell) -> None:
        what = (
            f"{cell.steps_per_s} steps/s, overhead p50 {cell.overhead_p50_ms} ms, "
            f"integrity {cell.integrity}"
            if cell.status == "ok"
            else f"[red]failed: {cell.error}[/]"
        )
        bar.advance(f"{cell.backend:<24} c={cell.concurrency:<4} steps={cell.steps:<5} {what}")

    stop_on_signals()
    options = {"external": external_from(services)}
    bar = CellProgress(console, "sweep cells", len(grid_c) * len(grid_s) * len(backends))
    try:
        with bar:
            result = asyncio.run(
                run_sweep(
                    scenario,
                    list(backends),
                    grid_c,
                    grid_s,
                    out_dir,
                    runs=runs,
                    on_cell=show,
                    bench_options=options,
                )
            )
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except DurabenchError as exc:
        fail(str(exc))
    out.print(f"sweep: {result.path}")
    sys.exit(1 if result.failed else 0)
