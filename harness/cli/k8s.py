"""`durabench k8s render`, and the Kubernetes target every Kubernetes command resolves
first (printed before anything happens; guardrail refusals exit 2)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from harness.cli.common import console, fail, out
from harness.errors import DurabenchError

__all__ = ["k8s", "kube_target"]


def kube_target(
    context: str | None, namespace: str | None, dry_run: bool, *, export: bool = False
) -> Any:
    """The kubernetes target, printed before anything happens; guardrail refusals exit 2.
    `export` hands it to the platform (through the environment) for `run`."""
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
        fail(str(exc))
    if export:
        os.environ[CONTEXT_ENV] = target.context
        os.environ[NAMESPACE_ENV] = target.namespace
        os.environ[DRY_RUN_ENV] = "1" if dry_run else ""
    return target


@click.group()
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

    from harness.platform.kubernetes.guardrails import check_namespace_name
    from harness.platform.kubernetes.render import (
        render_manifests,
        secret_references,
        write_manifests,
    )

    try:
        check_namespace_name(namespace)
        objects = render_manifests(
            scenario,
            backend,
            namespace,
            image=image,
            pg_dsn=pg_dsn,
            temporal_address=temporal_address,
        )
    except DurabenchError as exc:
        fail(str(exc))
    for secret, keys in secret_references(objects).items():
        literals = " ".join(f"--from-literal={key}=..." for key in sorted(keys))
        console.print(
            f"note: secret values are read from the Secret {secret!r}, which the manifests "
            f"do not contain; create it first: kubectl -n {namespace} create secret generic "
            f"{secret} {literals}",
            highlight=False,
            soft_wrap=True,
        )
    if out_dir is None:
        out.print(yaml.safe_dump_all(objects, sort_keys=False), highlight=False, markup=False)
        return
    for path in write_manifests(objects, out_dir):
        out.print(str(path), highlight=False)
