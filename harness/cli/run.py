"""`durabench run`: one scenario on each backend, judged against the oracle."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from harness.cli.ci import ci_options, write_ci
from harness.cli.common import (
    backends_option,
    console,
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
from harness.cli.k8s import kube_target
from harness.cli.live import metrics_option, metrics_served
from harness.cli.tables import print_results_headline, print_summary
from harness.cli.until import (
    goal_from,
    print_until,
    until_exit_code,
    until_options,
    until_setup,
    write_outcome,
)
from harness.errors import DurabenchError

EXIT_BACKEND = 5  # as `durabench suite`: a backend's inspect() raised or returned garbage

__all__ = ["run"]


def _progress() -> tuple[Progress, Any]:
    """A bar per backend, and the callback the runner reports progress through."""
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    tasks: dict[str, Any] = {}

    def report(backend: str, done: int, total: int) -> None:
        if backend not in tasks:
            tasks[backend] = progress.add_task(f"{backend} runs", total=total)
        progress.update(tasks[backend], completed=done)

    return progress, report


@click.command()
@click.argument("scenario")
@backends_option(
    "Backend to run (repeatable): a built-in name such as 'baseline', or an import "
    "path 'package.module:Class'. Default: every backend whose dependencies are "
    "installed."
)
@out_option("Directory that receives results/<run-id>/.")
@external_options
@click.option(
    "--platform",
    "platform_name",
    default="local",
    show_default=True,
    metavar="NAME",
    help="Where components run: local (processes on 127.0.0.1), docker (containers on the "
    "host network; image $DURABENCH_DOCKER_IMAGE, default durabench-local:latest) or "
    "kubernetes (pods; needs --context and --namespace).",
)
@click.option(
    "--context",
    "kube_context",
    envvar="DURABENCH_KUBE_CONTEXT",
    metavar="NAME",
    help="kubernetes: the kubeconfig context to act on (required; never implied).",
)
@click.option(
    "--namespace",
    "kube_namespace",
    envvar="DURABENCH_KUBE_NAMESPACE",
    metavar="NS",
    help="kubernetes: the namespace to act in (required; must carry the label "
    "durabench.io/chaos=enabled; kube-system, kube-public and default are refused).",
)
@click.option(
    "--dry-run",
    "kube_dry_run",
    is_flag=True,
    help="kubernetes: print every API call instead of making it.",
)
@click.option(
    "--trials",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Run every task this many times; summary.json reports pass^k, the "
    "fraction of tasks that passed every verdict in all k trials.",
)
@until_options
@click.option(
    "--with-floor",
    is_flag=True,
    help="Before and after each backend's load, run its raw floor on the same servers "
    "(floors.parquet); the summary then gives step and overhead as a ratio to that floor, "
    "and to each floor pass alone.",
)
@ci_options
@metrics_option
def run(
    scenario: str,
    backends: tuple[str, ...],
    out_dir: Path,
    trials: int,
    platform_name: str,
    kube_context: str | None,
    kube_namespace: str | None,
    kube_dry_run: bool,
    with_floor: bool,
    junit: Path | None,
    summary_md: Path | None,
    metrics_port: int | None,
    **services: Any,
) -> None:
    """Run SCENARIO (a YAML file, or the name of a shipped scenario) on each backend,
    check integrity against the oracle, and write results/<run-id>/.

    Exit codes: 0 the run completed (read its verdicts in the summary), 1 a durabench
    error, 2 bad arguments or scenario, 5 a backend misbehaved (its inspect() raised or
    returned malformed state for some run), 130 interrupted. With --until-integrity:
    0 integrity established for every backend, 6 an anomaly was found, 4 the budget was
    spent before the lower bound cleared the target."""
    from harness.runner import BenchmarkRun

    try:
        goal = goal_from(services)
        if goal is not None and trials > 1:
            raise DurabenchError("--until-integrity starts fresh runs: leave out --trials")
    except DurabenchError as exc:
        fail(str(exc))
    external = external_from(services)
    names = list(backends) or installed_backends()
    if platform_name == "kubernetes":
        kube_target(kube_context, kube_namespace, kube_dry_run, export=True)
    stop_on_signals()
    progress, report = _progress()
    try:
        path, driver = Path(scenario), None
        if goal is not None:
            path, driver = until_setup(path, goal, out_dir)
        bench = BenchmarkRun(path, names, out_dir, report, external, trials, platform_name)
        if driver is not None:
            bench.driver = driver
        bench.with_floor = with_floor
        bench.notify = lambda message: console.print(message, highlight=False, markup=False)
    except DurabenchError as exc:
        fail(str(exc))
    log_to(out_dir)
    with metrics_served(metrics_port):
        results = execute_bench(bench, progress)
    if bench.dry_run:
        out.print("dry run: nothing was created or run; the API calls above are the plan")
        return
    outcomes = write_outcome(results, goal, driver) if goal is not None else None
    summary = results.read_json("summary.json")
    print_summary(summary)
    if outcomes is not None:
        print_until(outcomes)
    out.print(f"results: {results.path}")
    print_results_headline(results.path)
    from harness.headline import outcomes_from_results

    write_ci(
        junit,
        summary_md,
        f"durabench run {scenario}",
        outcomes_from_results(results.path),
        results=str(results.path),
    )
    misbehaved = [b for b, s in summary.items() if (s.get("inspect_errors") or {}).get("runs")]
    if misbehaved:
        fail(
            f"backend misbehaved: inspect() failed for some runs of {', '.join(misbehaved)} "
            "(their verdicts are unknown; the other runs were judged)",
            EXIT_BACKEND,
        )
    if outcomes is not None:
        sys.exit(until_exit_code(outcomes))
