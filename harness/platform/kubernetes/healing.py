"""`durabench heal` for Kubernetes: delete what a dead durabench left in a namespace.

Only objects that still carry durabench's labels are touched: an entry's object is
deleted when its run label matches the entry, and a sweep deletes objects labelled
`app.kubernetes.io/managed-by=durabench` whose run no live durabench still owns.
The namespace guardrails apply to healing as to everything else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from harness.errors import DurabenchError
from harness.heal_entry import HealEntry
from harness.platform.kubernetes.api import ApiError, KubeApi, collection_path, object_path
from harness.platform.kubernetes.guardrails import (
    MANAGED_BY,
    RUN_LABEL,
    KubeTarget,
    check_namespace_labels,
    label_selector,
)

__all__ = ["CHAOS_KINDS", "SWEPT_KINDS", "KubeObject", "heal_kube_entry", "sweep_namespace"]

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


def sweep_namespace(
    target: KubeTarget,
    spare: frozenset[str] = frozenset(),
    echo: Callable[[str], None] = print,
    api: KubeApi | None = None,
) -> int:
    """Delete every durabench-managed object in the namespace whose run is not in
    `spare` (runs a live durabench still owns). Returns how many were deleted."""
    api = api or KubeApi(target, echo)
    namespace = api.request("GET", f"/api/v1/namespaces/{target.namespace}")
    if namespace is not None:
        check_namespace_labels(target.namespace, (namespace.get("metadata") or {}).get("labels"))
    deleted = 0
    for kind in (*SWEPT_KINDS, *CHAOS_KINDS):
        query = {"labelSelector": label_selector({MANAGED_BY[0]: MANAGED_BY[1]})}
        try:
            answer = api.request("GET", collection_path(kind, target.namespace), query=query)
        except ApiError:
            continue  # e.g. no Chaos Mesh: nothing of that kind
        for item in (answer or {}).get("items", []):
            metadata = item.get("metadata") or {}
            labels = metadata.get("labels") or {}
            if labels.get(MANAGED_BY[0]) != MANAGED_BY[1] or labels.get(RUN_LABEL) in spare:
                continue
            try:
                api.request(
                    "DELETE",
                    object_path(kind, target.namespace, str(metadata["name"])),
                    query={"propagationPolicy": "Background"},
                )
                deleted += 1
            except ApiError:
                continue
    return deleted
