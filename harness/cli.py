"""The `durabench` command line."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from backends.base import BUILTIN_BACKENDS, available_backends
from harness.errors import DurabenchError
from harness.results import ResultsDir
from harness.scenario import list_scenarios, load_scenario

__all__ = ["main"]

console = Console(stderr=True)
out = Console()


def _fail(message: str, code: int = 2) -> NoReturn:
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    sys.exit(code)


def _log_to(directory: Path) -> None:
    """Library warnings (a database pool reconnecting during a store restart, a retried
    gRPC call) are expected under faults: they go to a log file, not over the progress."""
    directory.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(directory / "durabench.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def _terminate_as_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def print_summary(summary: dict[str, dict[str, Any]]) -> None:
    table = Table(title="durabench results")
    for column in (
        "backend",
        "runs",
        "complete",
        "integrity",
        "anomalies",
        "steps/s",
        "step p50 ms",
        "step p99 ms",
        "overhead p50 ms",
        "overhead p99 ms",
    ):
        table.add_column(column, justify="left" if column in ("backend", "anomalies") else "right")
    for backend, s in summary.items():
        anomalies = ", ".join(f"{k}={v}" for k, v in s["anomalies"].items() if v) or "none"
        table.add_row(
            backend,
            str(s["runs"]),
            str(s["completed"]),
            f"{s['integrity']:.3f}",
            anomalies,
            _fmt(s["steps_per_s"], 1),
            _fmt(s["step_latency_ms"]["p50"]),
            _fmt(s["step_latency_ms"]["p99"]),
            _fmt(s["overhead_ms"]["p50"]),
            _fmt(s["overhead_ms"]["p99"]),
        )
    out.print(table)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="durabench")
def cli() -> None:
    """durabench: does agent state survive crashes, and what does durability cost per step?"""


@cli.command()
@click.argument("scenario")
@click.option(
    "--backend",
    "-b",
    "backends",
    multiple=True,
    metavar="NAME",
    help="Backend to run (repeatable): a built-in name such as 'baseline', or an import "
    "path 'package.module:Class'. Default: every backend whose dependencies are "
    "installed.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=Path("results"),
    show_default=True,
    help="Directory that receives results/<run-id>/.",
)
@click.option(
    "--pg-dsn",
    envvar="DURABENCH_PG_DSN",
    metavar="DSN",
    help="Use this existing Postgres (postgresql://...) instead of starting an embedded one; "
    "durabench creates its own schema per run and touches nothing else. "
    "[env: DURABENCH_PG_DSN]",
)
@click.option(
    "--temporal-address",
    envvar="DURABENCH_TEMPORAL_ADDRESS",
    metavar="HOST:PORT",
    help="Use this Temporal frontend instead of starting the dev server. "
    "[env: DURABENCH_TEMPORAL_ADDRESS]",
)
@click.option(
    "--temporal-namespace",
    envvar="DURABENCH_TEMPORAL_NAMESPACE",
    default="default",
    show_default=True,
    help="Temporal namespace. [env: DURABENCH_TEMPORAL_NAMESPACE]",
)
@click.option(
    "--temporal-tls-cert",
    type=click.Path(exists=True, dir_okay=False),
    help="Client certificate for mTLS to Temporal.",
)
@click.option(
    "--temporal-tls-key",
    type=click.Path(exists=True, dir_okay=False),
    help="Client private key for mTLS to Temporal.",
)
@click.option(
    "--temporal-tls-ca",
    type=click.Path(exists=True, dir_okay=False),
    help="CA certificate of the Temporal server.",
)
@click.option(
    "--temporal-api-key-env",
    metavar="VAR",
    help="Name of the environment variable holding a Temporal Cloud API key "
    "(the key itself is never stored).",
)
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
def run(
    scenario: str,
    backends: tuple[str, ...],
    out_dir: Path,
    trials: int,
    platform_name: str,
    kube_context: str | None,
    kube_namespace: str | None,
    kube_dry_run: bool,
    pg_dsn: str | None,
    temporal_address: str | None,
    temporal_namespace: str,
    temporal_tls_cert: str | None,
    temporal_tls_key: str | None,
    temporal_tls_ca: str | None,
    temporal_api_key_env: str | None,
) -> None:
    """Run SCENARIO (a YAML file, or the name of a shipped scenario) on each backend,
    check integrity against the oracle, and write results/<run-id>/."""
    from backends.base import ExternalServices
    from harness.runner import BenchmarkRun

    external = ExternalServices(
        pg_dsn=pg_dsn,
        temporal_address=temporal_address,
        temporal_namespace=temporal_namespace,
        temporal_tls_cert=temporal_tls_cert,
        temporal_tls_key=temporal_tls_key,
        temporal_tls_ca=temporal_tls_ca,
        temporal_api_key_env=temporal_api_key_env,
    )

    names = list(backends) or [n for n, missing in available_backends().items() if not missing]
    if platform_name == "kubernetes":
        _kube_target(kube_context, kube_namespace, kube_dry_run, export=True)
    signal.signal(signal.SIGTERM, _terminate_as_interrupt)
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

    try:
        bench = BenchmarkRun(
            Path(scenario), names, out_dir, report, external, trials, platform_name
        )
    except DurabenchError as exc:
        _fail(str(exc))
    _log_to(out_dir)
    try:
        with progress:
            results = asyncio.run(bench.execute())
    except KeyboardInterrupt:
        where = f" (partial results kept in {bench.results.path})" if bench.results else ""
        _fail(f"interrupted{where}", 130)
    except DurabenchError as exc:
        where = f"\n(partial results kept in {bench.results.path})" if bench.results else ""
        _fail(f"{exc}{where}", 1)
    if bench.dry_run:
        out.print("dry run: nothing was created or run; the API calls above are the plan")
        return
    print_summary(results.read_json("summary.json"))
    out.print(f"results: {results.path}")


@cli.command()
@click.option(
    "--backend",
    "-b",
    "backends",
    multiple=True,
    metavar="NAME",
    help="Backend to include (repeatable). Default: every installed backend.",
)
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
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=Path("results"),
    show_default=True,
    help="Directory that receives suite-<time>/.",
)
def suite(backends: tuple[str, ...], quick: bool, only: tuple[str, ...], out_dir: Path) -> None:
    """Run the standard chaos suite: every backend under every fault class
    (scenarios/chaos/), one results directory per cell, and a matrix summary.

    Exit codes: 0 every cell met its expectation, 1 some integrity expectation failed,
    2 bad arguments or scenario, 3 the harness itself failed in some cell."""
    from backends.base import load_backend
    from harness.suite import Cell, run_suite

    names = list(backends) or [n for n, missing in available_backends().items() if not missing]
    signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    try:
        for name in names:
            load_backend(name)
        from harness.suite import chaos_scenarios

        chaos_scenarios(list(only) or None)
    except DurabenchError as exc:
        _fail(str(exc))
    _log_to(out_dir)

    def show(cell: Cell) -> None:
        mark = {True: "[green]met[/]", False: "[red]NOT MET[/]", None: "-"}[cell.met]
        if cell.status == "failed":
            mark = f"[red]harness failed: {cell.error}[/]"
        console.print(
            f"{cell.fault_class:>14} x {cell.backend:<24} integrity "
            f"{_fmt(cell.integrity, 3)} (expected >= {_fmt(cell.expected_integrity)}) {mark}"
        )

    try:
        result = asyncio.run(
            run_suite(names, out_dir, quick=quick, only=list(only) or None, on_cell=show)
        )
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except DurabenchError as exc:
        _fail(str(exc))
    print_matrix(result.cells)
    out.print(f"suite: {result.path}")
    sys.exit(result.exit_code)


def print_matrix(cells: list[Any]) -> None:
    table = Table(title="chaos suite")
    for column in (
        "fault class",
        "backend",
        "integrity",
        "expected",
        "met",
        "anomalies",
        "recovery p50 ms",
        "recovery p99 ms",
        "wasted llm",
        "wasted tools",
        "overhead p50 ms",
    ):
        table.add_column(
            column, justify="left" if column in ("fault class", "backend") else "right"
        )
    for c in cells:
        met = "failed" if c.status == "failed" else {True: "yes", False: "NO", None: "-"}[c.met]
        table.add_row(
            c.fault_class,
            c.backend,
            _fmt(c.integrity, 3),
            _fmt(c.expected_integrity),
            met,
            _fmt(c.anomalies),
            _fmt(c.recovery_p50_ms, 0),
            _fmt(c.recovery_p99_ms, 0),
            _fmt(c.wasted_llm_calls),
            _fmt(c.wasted_tool_executions),
            _fmt(c.overhead_p50_ms),
        )
    out.print(table)


@cli.command(name="list")
def list_() -> None:
    """List the shipped scenarios and the built-in backends."""
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
    for name, missing in available_backends().items():
        status = "ready" if not missing else f"missing {', '.join(missing)}"
        backends.add_row(name, status, BUILTIN_BACKENDS[name].path)
    out.print(backends)
    out.print("Third-party backends load by import path: --backend package.module:Class")


@cli.command()
@click.argument("results_dir", type=click.Path(path_type=Path))
def check(results_dir: Path) -> None:
    """Re-run the integrity checker on stored results and compare with the stored verdicts.
    Exits 1 when any verdict differs."""
    from harness.recheck import recheck

    try:
        outcome = recheck(ResultsDir.open(results_dir))
    except DurabenchError as exc:
        _fail(str(exc))
    print_summary(outcome.summary)
    if outcome.differences:
        for diff in outcome.differences[:20]:
            console.print(f"differs: {diff}")
        _fail(f"{len(outcome.differences)} verdicts differ from the stored ones", 1)
    out.print(f"verdicts reproduced: {len(outcome.runs)} runs, identical to the stored verdicts")


@cli.command()
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
        _fail(str(exc))
    out.print(f"report: {paths.html}")
    out.print(f"markdown: {paths.markdown} ({len(paths.figures)} figures beside it)")


@cli.command()
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
        _fail(str(exc))
    if result.exit_code == 2:
        _fail(result.failures[0])
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


@cli.command()
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where runs keep their active-fault files. [default: $DURABENCH_STATE_DIR or "
    "/tmp/durabench-state]",
)
@click.option(
    "--platform",
    "platform_name",
    type=click.Choice(["local", "docker", "kubernetes"]),
    default="local",
    show_default=True,
    help="Also sweep this platform: docker removes every container labelled durabench.run "
    "of a run no live durabench owns; kubernetes deletes such objects in --namespace.",
)
@click.option("--context", "kube_context", metavar="NAME", help="kubernetes: context.")
@click.option("--namespace", "kube_namespace", metavar="NS", help="kubernetes: namespace.")
def heal(
    state_dir: Path | None,
    platform_name: str,
    kube_context: str | None,
    kube_namespace: str | None,
) -> None:
    """Undo what a durabench run that died left behind: continue stopped processes and
    unpause containers, heal fault-proxy links and service fault switches, end processes
    (matched by pid and start time), containers and Kubernetes objects (matched by the
    run-id label) durabench started, so nothing else is ever touched."""
    from harness.healing import STATE_DIR, heal_all, live_runs

    target = None
    if platform_name == "kubernetes":
        target = _kube_target(kube_context, kube_namespace, False)
    report = heal_all(state_dir or STATE_DIR)
    spare = live_runs(state_dir or STATE_DIR)
    if platform_name == "docker":
        from harness.platform.docker import docker_client, sweep_containers

        try:
            report.containers_removed += sweep_containers(docker_client(), spare=spare)
        except DurabenchError as exc:
            _fail(str(exc), 1)
    if target is not None:
        from harness.platform.kubernetes.healing import sweep_namespace

        try:
            report.kube_objects_deleted += sweep_namespace(target, spare, console.print)
        except DurabenchError as exc:
            _fail(str(exc), 1)
    if report.still_running:
        out.print(f"left alone {report.still_running} run(s) whose durabench is still running")
    out.print(
        f"healed {report.files - report.still_running} run(s): "
        f"{report.continued} process(es) continued, "
        f"{report.killed} stray process(es) ended, {report.links_healed} proxy reset(s), "
        f"{report.switches_reset} service switch(es) reset, "
        f"{report.containers_unpaused} container(s) unpaused, "
        f"{report.containers_removed} container(s) removed, "
        f"{report.kube_objects_deleted} kubernetes object(s) deleted"
        + (f", {report.errors} already gone" if report.errors else "")
    )


def _kube_target(
    context: str | None, namespace: str | None, dry_run: bool, *, export: bool = False
) -> Any:
    """The kubernetes target, printed before anything happens; guardrail refusals exit 2.
    `export` hands it to the platform (through the environment) for `run`."""
    import os

    from harness.platform.kubernetes.guardrails import (
        CONTEXT_ENV,
        DRY_RUN_ENV,
        NAMESPACE_ENV,
        KubeTarget,
    )

    console.print(
        f"kubernetes: context {context or '(none)'}, namespace {namespace or '(none)'}"
        + (" [dry run]" if dry_run else ""),
        highlight=False,
    )
    try:
        kubeconfig = os.environ.get("DURABENCH_KUBECONFIG") or os.environ.get("KUBECONFIG")
        target = KubeTarget(context or "", namespace or "", dry_run, kubeconfig)
    except DurabenchError as exc:
        _fail(str(exc))
    if export:
        os.environ[CONTEXT_ENV] = target.context
        os.environ[NAMESPACE_ENV] = target.namespace
        os.environ[DRY_RUN_ENV] = "1" if dry_run else ""
    return target


@cli.group()
def k8s() -> None:
    """Kubernetes: render the manifests of a scenario for review."""


@k8s.command()
@click.argument("scenario")
@click.option("--backend", "-b", "backend", required=True, metavar="NAME", help="Backend.")
@click.option("--namespace", required=True, metavar="NS", help="Namespace of the objects.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Write one YAML file per object here (default: print them).",
)
@click.option(
    "--image",
    default="durabench:latest",
    show_default=True,
    help="The durabench image (built from the Dockerfile and pushed to your registry).",
)
@click.option("--pg-dsn", metavar="DSN", help="Use this database, not a Postgres StatefulSet.")
@click.option(
    "--temporal-address", metavar="HOST:PORT", help="Use this Temporal instead of a dev server."
)
def render(
    scenario: str,
    backend: str,
    namespace: str,
    out_dir: Path | None,
    image: str,
    pg_dsn: str | None,
    temporal_address: str | None,
) -> None:
    """Write the manifests that run SCENARIO on one backend: Deployments for llm, tools
    and workers, Services, a PodDisruptionBudget, and StatefulSets for Postgres and the
    Temporal dev server unless external addresses are given. Nothing is contacted."""
    import yaml

    from harness.platform.kubernetes.render import render_manifests, write_manifests

    try:
        objects = render_manifests(
            scenario,
            backend,
            namespace,
            image=image,
            pg_dsn=pg_dsn,
            temporal_address=temporal_address,
        )
    except DurabenchError as exc:
        _fail(str(exc))
    if out_dir is None:
        out.print(yaml.safe_dump_all(objects, sort_keys=False), highlight=False, markup=False)
        return
    for path in write_manifests(objects, out_dir):
        out.print(str(path), highlight=False)


@cli.command()
def doctor() -> None:
    """Show what is installed and reachable (packages, Postgres, temporal, Docker), with fixes."""
    from harness.doctor import run_checks

    table = Table(title="durabench doctor")
    for column in ("check", "ok", "detail", "fix"):
        table.add_column(column)
    failed_required = False
    for check in run_checks():
        mark = (
            "[green]yes[/]" if check.ok else ("[red]NO[/]" if check.required else "[yellow]no[/]")
        )
        failed_required |= check.required and not check.ok
        table.add_row(check.name, mark, check.detail, check.hint)
    out.print(table)
    if failed_required:
        sys.exit(1)


from harness.load.commands import load_command, sweep_command  # noqa: E402

cli.add_command(load_command)
cli.add_command(sweep_command)


def main() -> None:
    cli(prog_name="durabench")


if __name__ == "__main__":
    main()
