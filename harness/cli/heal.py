"""`durabench heal`: undo what a durabench run that died left behind."""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape

from harness.cli.common import console, fail, out
from harness.cli.k8s import kube_target
from harness.errors import DurabenchError

__all__ = ["heal"]


@click.command()
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where runs keep their active-fault files; it must be yours and writable by "
    "nobody else. [default: $DURABENCH_STATE_DIR or /tmp/durabench-state-<uid>]",
)
@click.option(
    "--platform",
    "platform_name",
    type=click.Choice(["local", "docker", "kubernetes"]),
    default="local",
    show_default=True,
    help="Also sweep this platform: docker removes every container labelled durabench.run "
    "of a run no live durabench owns; kubernetes deletes, in --namespace, the objects of "
    "runs whose lease expired (or of the --run ids given).",
)
@click.option("--context", "kube_context", metavar="NAME", help="kubernetes: context.")
@click.option("--namespace", "kube_namespace", metavar="NS", help="kubernetes: namespace.")
@click.option(
    "--run",
    "kube_runs",
    multiple=True,
    metavar="ID",
    help="kubernetes: heal only this run (its results directory's name; repeatable), "
    "also when it has no lease; a run whose lease is live is never deleted.",
)
def heal(
    state_dir: Path | None,
    platform_name: str,
    kube_context: str | None,
    kube_namespace: str | None,
    kube_runs: tuple[str, ...],
) -> None:
    """Undo what a durabench run that died left behind: continue stopped processes and
    unpause containers, heal fault-proxy links and service fault switches, end processes
    (matched by pid and start time), containers and Kubernetes objects (matched by the
    run-id label) durabench started, so nothing else is ever touched. Only state files
    of yours, in a directory only you can write, are trusted; a bad entry is reported
    and skipped. A run's manifest still saying `running` is marked `died`."""
    from harness.healing import default_state_dir, heal_all, live_runs

    if kube_runs and platform_name != "kubernetes":
        fail("--run applies to --platform kubernetes only")
    target = None
    if platform_name == "kubernetes":
        target = kube_target(kube_context, kube_namespace, False)
    directory = state_dir or default_state_dir()
    try:
        report = heal_all(directory)
        spare = live_runs(directory)
    except DurabenchError as exc:
        fail(str(exc))
    for problem in report.problems:
        console.print(f"[yellow]heal:[/] {escape(problem)}", highlight=False)
    if platform_name == "docker":
        from harness.platform.docker import docker_client, sweep_containers

        try:
            report.containers_removed += sweep_containers(docker_client(), spare=spare)
        except DurabenchError as exc:
            fail(str(exc), 1)
    if target is not None:
        from harness.platform.kubernetes.healing import sweep_namespace

        try:
            swept = sweep_namespace(
                target, spare, console.print, runs=list(kube_runs) if kube_runs else None
            )
        except DurabenchError as exc:
            fail(str(exc), 1)
        report.kube_objects_deleted += swept.deleted
        for line in swept.spared:
            console.print(f"kubernetes: {line}", highlight=False, markup=False)
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
        + (
            f", {report.manifests_marked} manifest(s) marked died"
            if report.manifests_marked
            else ""
        )
        + (f", {report.errors} already gone" if report.errors else "")
        + (f", {report.skipped} bad entry(ies) skipped" if report.skipped else "")
        + (f", {report.refused} untrusted file(s) refused" if report.refused else ""),
        highlight=False,
    )
