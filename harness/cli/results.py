"""The commands that read results already on disk: `list`, `check`, `report`, `compare`."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.table import Table

from harness.cli.common import console, fail, out
from harness.cli.tables import print_summary
from harness.errors import DurabenchError
from harness.results import ResultsDir

__all__ = ["check", "compare", "list_", "report"]


@click.command(name="list")
def list_() -> None:
    """List the shipped scenarios and the built-in backends."""
    from backends.base import BUILTIN_BACKENDS, available_backends
    from harness.scenario import list_scenarios, load_scenario

    scenarios = Table(title="scenarios")
    for column in ("name", "runs", "steps", "load", "description"):
        scenarios.add_column(column)
    for path in list_scenarios():
        try:
            s = load_scenario(path)
        except DurabenchError as exc:
            scenarios.add_row(path.stem, "-", "-", "-", f"[red]invalid: {exc}[/]")
            continue
        load = (
            f"concurrency {s.load.concurrency}"
            if s.load.concurrency
            else f"{s.load.arrival_rate}/s arrivals"
        )
        scenarios.add_row(s.name, str(s.runs), str(s.steps), load, s.description)
    out.print(scenarios)
    backends = Table(title="backends")
    backends.add_column("name")
    backends.add_column("status")
    backends.add_column("implementation")
    backends.add_column("release stage")
    for name, missing in available_backends().items():
        status = "ready" if not missing else f"missing {', '.join(missing)}"
        builtin = BUILTIN_BACKENDS[name]
        backends.add_row(name, status, builtin.path, builtin.stage or "-")
    out.print(backends)
    out.print("Third-party backends load by import path: --backend package.module:Class")


@click.command()
@click.argument("results_dir", type=click.Path(path_type=Path))
def check(results_dir: Path) -> None:
    """Re-run the integrity checker on stored results and compare with the stored verdicts.
    Exits 1 when any verdict differs."""
    from harness.recheck import recheck

    try:
        outcome = recheck(ResultsDir.open(results_dir))
    except DurabenchError as exc:
        fail(str(exc))
    print_summary(outcome.summary)
    if outcome.differences:
        for diff in outcome.differences[:20]:
            console.print(f"differs: {diff}")
        fail(f"{len(outcome.differences)} verdicts differ from the stored ones", 1)
    out.print(f"verdicts reproduced: {len(outcome.runs)} runs, identical to the stored verdicts")


@click.command()
@click.argument("results_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Directory for report.html, report.md (with its PNGs) and report.json. "
    "[default: <first RESULTS_DIR>/report]",
)
def report(results_dirs: tuple[Path, ...], out_dir: Path | None) -> None:
    """Write a report from one or more results directories (or suite directories):
    a self-contained report.html, report.md with its figures as PNG files beside it,
    and report.json with every table's numbers."""
    from harness.report import build_report

    try:
        paths = build_report(list(results_dirs), out_dir or results_dirs[0] / "report")
    except DurabenchError as exc:
        fail(str(exc))
    out.print(f"report: {paths.html}")
    out.print(f"markdown: {paths.markdown} ({len(paths.figures)} figures beside it)")


@click.command()
@click.argument("baseline_dir", type=click.Path(path_type=Path))
@click.argument("candidate_dir", type=click.Path(path_type=Path))
@click.option(
    "--fail-on",
    "fail_on",
    multiple=True,
    metavar="EXPR",
    help="Fail (exit 1) when a metric gets worse than this (repeatable): "
    "METRIC[@BACKEND]:LIMIT, e.g. p99:10% (step latency p99 may grow at most 10%), "
    "integrity:0 (may not drop), overhead:5ms, steps_per_s:-10%. Metrics: p50 p95 p99 "
    "p99.9 overhead overhead_p95 overhead_p99 recovery_p50 recovery_p99 steps_per_s "
    "integrity pass_k wasted_llm_calls wasted_tool_executions bytes_per_step.",
)
def compare(baseline_dir: Path, candidate_dir: Path, fail_on: tuple[str, ...]) -> None:
    """Compare two results sets per backend and metric, with a bootstrap 95% interval of
    each latency difference. Exit codes: 0 no threshold crossed, 1 a threshold crossed,
    2 bad arguments (an unknown metric, a malformed expression, missing results)."""
    from harness.compare import compare as compare_results

    try:
        result = compare_results(baseline_dir, candidate_dir, list(fail_on))
    except DurabenchError as exc:
        fail(str(exc))
    if result.exit_code == 2:
        fail(result.failures[0])
    shown = result.display()
    table = Table(title=f"durabench compare: {baseline_dir.name} -> {candidate_dir.name}")
    for column in shown.columns:
        left = column in ("fault class", "backend", "metric", "gate", "status")
        table.add_column(str(column), justify="left" if left else "right")
    for record in shown.to_dict("records"):
        style = "bold red" if record["status"] == "REGRESSION" else None
        table.add_row(*(str(record[c]) for c in shown.columns), style=style)
    out.print(table)
    for failure in result.failures:
        console.print(f"[bold red]regression:[/] {failure}", highlight=False)
    sys.exit(result.exit_code)
