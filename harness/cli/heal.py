"""`durabench heal`: undo what a durabench run that died left behind."""

from __future__ import annotations

from pathlib import Path

import click

from harness.cli.common import console, fail, out
from harness.cli.k8s import kube_target
from harness.errors import DurabenchError

__all__ = ["heal"]


@click.command()
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
        target = kube_target(kube_context, kube_namespace, False)
    report = heal_all(state_dir or STATE_DIR)
    spare = live_runs(state_dir or STATE_DIR)
    if platform_name == "docker":
        from harness.platform.docker import docker_client, sweep_containers

        try:
            report.containers_removed += sweep_containers(docker_client(), spare=spare)
        except DurabenchError as exc:
            fail(str(exc), 1)
    if target is not None:
        from harness.platform.kubernetes.healing import sweep_namespace

        try:
            report.kube_objects_deleted += sweep_namespace(target, spare, console.print)
        except DurabenchError as exc:
            fail(str(exc), 1)
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
