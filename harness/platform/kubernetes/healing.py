"""`durabench heal` for Kubernetes: delete what a dead durabench left in a namespace.

Only objects that still carry durabench's labels are touched: an entry's object is
deleted when its run label matches the entry, and a sweep deletes the objects labelled
`app.kubernetes.io/managed-by=durabench` of runs that are provably dead: their lease
(harness/platform/kubernetes/lease.py) expired. A run whose lease is live, wherever
its durabench runs, is never touched, nor is one with no lease unless it is named
(`--run`). The namespace guardrails apply to healing as to everything else.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from harness.errors import DurabenchError
from harness.heal_entry import HealEntry
from harness.platform.kubernetes.api import ApiError, KubeApi, collection_path, object_path
from harness.platform.kubernetes.guardrails import (
    MANAGED_BY,
    RUN_LABEL,
    KubeTarget,
    check_namespace_labels,
    label_selector,
    run_label_value,
)
from harness.platform.kubernetes.lease import lease_state

__all__ = [
    "CHAOS_KINDS",
    "SWEPT_KINDS",
    "KubeObject",
    "SweepReport",
    "heal_kube_entry",
    "sweep_namespace",
]

SWEPT_KINDS = (
    "NetworkPolicy",
    "PersistentVolumeClaim",
    "PodDisruptionBudget",
    "Deployment",
    "StatefulSet",
    "Service",
    "ConfigMap",
    "Secret",
)
CHAOS_KINDS = ("PodChaos", "NetworkChaos")


@dataclass(frozen=True)
class KubeObject(HealEntry, tag="kube"):
    """One object of a run in a namespace (with the objects started with it, `also`, and
    the other policies of a partition, `names`): deleted on heal if still labelled `run`."""

    counter = "kube_objects_deleted"
    context: str
    namespace: str
    kubeconfig: str | None
    kind: str
    name: str
    run: str
    also: tuple[tuple[str, str], ...] = ()
    names: tuple[str, ...] = ()

    def undo(self) -> bool:
        return heal_kube_entry(self)


def _delete_if_ours(api: KubeApi, namespace: str, kind: str, name: str, run: str) -> bool:
    path = object_path(kind, namespace, name)
    try:
        found = api.request("GET", path)
        labels = ((found or {}).get("metadata") or {}).get("labels") or {}
        if found is not None and labels.get(RUN_LABEL) != run:
            return False  # not ours (any more): never touched
        api.request("DELETE", path, query={"propagationPolicy": "Background"})
    except ApiError:
        return False
    return True


def heal_kube_entry(entry: KubeObject, api: KubeApi | None = None) -> bool:
    """Delete the entry's object (and the objects started with it) if still labelled
    with the entry's run. False when nothing was deleted or the target is refused."""
    try:
        target = KubeTarget(
            context=entry.context, namespace=entry.namespace, kubeconfig=entry.kubeconfig
        )
        api = api or KubeApi(target, lambda _: None)
    except DurabenchError:
        return False
    objects = [(entry.kind, entry.name)]
    objects += [(k, n) for k, n in entry.also if (k, n) != objects[0]]
    objects += [("NetworkPolicy", n) for n in entry.names[1:]]
    deleted = [_delete_if_ours(api, target.namespace, k, n, entry.run) for k, n in objects]
    return any(deleted)


@dataclass
class SweepReport:
    """What a sweep deleted, and every run it left alone with the reason."""

    deleted: int = 0
    spared: list[str] = field(default_factory=list)


def _managed(api: KubeApi, namespace: str) -> dict[str, list[dict[str, Any]]]:
    """run label -> its durabench-managed objects (each with `kind`), leases last."""
    found: dict[str, list[dict[str, Any]]] = {}
    query = {"labelSelector": label_selector({MANAGED_BY[0]: MANAGED_BY[1]})}
    for kind in (*SWEPT_KINDS, *CHAOS_KINDS, "Lease"):
        try:
            answer = api.request("GET", collection_path(kind, namespace), query=query)
        except ApiError:
            continue  # e.g. no Chaos Mesh: nothing of that kind
        for item in (answer or {}).get("items", []):
            metadata = item.get("metadata") or {}
            labels = metadata.get("labels") or {}
            run = labels.get(RUN_LABEL)
            if labels.get(MANAGED_BY[0]) == MANAGED_BY[1] and run and metadata.get("name"):
                found.setdefault(str(run), []).append({**item, "kind": kind})
    return found


def sweep_namespace(
    target: KubeTarget,
    spare: frozenset[str] = frozenset(),
    echo: Callable[[str], None] = print,
    api: KubeApi | None = None,
    *,
    runs: Iterable[str] | None = None,
    now: float | None = None,
) -> SweepReport:
    """Delete the durabench-managed objects in the namespace of every run that is
    provably dead (its lease expired), or, with `runs`, of those runs only (their bench
    ids or run labels; also when they have no lease). Never a run in `spare` (a live
    durabench here owns it) nor one whose lease is live (a durabench elsewhere)."""
    api = api or KubeApi(target, echo)
    namespace = api.request("GET", f"/api/v1/namespaces/{target.namespace}")
    if namespace is not None:
        check_namespace_labels(target.namespace, (namespace.get("metadata") or {}).get("labels"))
    now = time.time() if now is None else now
    wanted = None if runs is None else {run_label_value(r) for r in runs}
    report = SweepReport()
    found = _managed(api, target.namespace)
    for run, items in sorted(found.items()):
        if wanted is not None and run not in wanted:
            continue
        leases = [i for i in items if i["kind"] == "Lease"]
        states = [lease_state(i, now) for i in leases]
        if run in spare:
            report.spared.append(f"run {run}: its durabench is still running here; left alone")
        elif any(not s.dead for s in states):
            live = next(s for s in states if not s.dead)
            report.spared.append(f"run {run}: alive ({live.describe()}); left alone")
        elif not states and wanted is None:
            report.spared.append(
                f"run {run}: has no lease, so it cannot be proved dead; left alone "
                f"(`durabench heal --platform kubernetes --run {run}` deletes it)"
            )
        else:
            report.deleted += _delete_all(api, target.namespace, items, run)
    for run in sorted((wanted or set()) - set(found)):
        report.spared.append(f"run {run}: nothing of it in namespace {target.namespace}")
    return report


def _delete_all(api: KubeApi, namespace: str, items: list[dict[str, Any]], run: str) -> int:
    """Delete a dead run's objects, its lease last (a failure keeps it for the next heal)."""
    deleted = 0
    for item in sorted(items, key=lambda i: i["kind"] == "Lease"):
        if item["kind"] == "Lease" and deleted < len(items) - 1:
            break  # something of the run is still there: keep the lease that names it dead
        if _delete_if_ours(api, namespace, item["kind"], str(item["metadata"]["name"]), run):
            deleted += 1
    return deleted
