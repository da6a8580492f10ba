"""The Kubernetes platform: components as Deployments/StatefulSets in one opted-in
namespace, faults through the real API.

kill = pod delete with grace 0 (the Deployment makes a new pod); evict = the
Eviction API, which respects PodDisruptionBudgets (a refusal, HTTP 429, is raised as
EvictionRefused and becomes the fault's outcome); partition = a pair of
NetworkPolicies between two label sets, deleted on heal; pause = a Chaos Mesh
PodChaos when its API group is served (detected, never required), else
UnsupportedFault. Every object carries the run label, is tracked, deleted by
`stop_all` (on exit and on Ctrl-C, through `closing_platform`) and, if durabench
dies, by `durabench heal --platform kubernetes`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import ComponentError, DurabenchError, UnsupportedFault
from harness.platform.base import ComponentSpec, Handle
from harness.platform.kubernetes.api import ApiError, KubeApi, collection_path, object_path
from harness.platform.kubernetes.guardrails import (
    COMPONENT_LABEL,
    ROLE_LABEL,
    RUN_LABEL,
    KubeTarget,
    announce,
    check_namespace_labels,
    label_selector,
    run_label_value,
)
from harness.platform.kubernetes.manifests import (
    DEFAULT_IMAGE,
    STATEFUL_ROLES,
    component_objects,
    k8s_name,
    network_policies,
    object_labels,
    pod_chaos,
)

__all__ = [
    "IMAGE_ENV",
    "EvictionRefused",
    "KubeComponent",
    "KubernetesPlatform",
    "UnsupportedFault",
]

IMAGE_ENV = "DURABENCH_KUBE_IMAGE"
POLL_INTERVAL_S = 1.0
LOG_TAIL_LINES = 30
SWEPT_KINDS = (
    "NetworkPolicy",
    "PodDisruptionBudget",
    "Deployment",
    "StatefulSet",
    "Service",
    "ConfigMap",
    "Secret",
)
CHAOS_GROUP = "/apis/chaos-mesh.org/v1alpha1"


class EvictionRefused(ComponentError):
    """The API refused an eviction (HTTP 429: a PodDisruptionBudget forbids it now)."""


@dataclass
class KubeComponent:
    """A component running as a workload; `ident` is its current pod (or workload) name."""

    spec: ComponentSpec
    kind: str
    name: str
    objects: list[tuple[str, str]] = field(default_factory=list)  # (kind, name)
    pod: str | None = None

    @property
    def ident(self) -> str:
        return self.pod or self.name


class KubernetesPlatform:
    """Runs components in the target namespace and applies faults through the API."""

    name = "kubernetes"

    def __init__(
        self,
        workdir: Path,
        bench_id: str,
        target: KubeTarget,
        *,
        api: KubeApi | None = None,
        image: str | None = None,
        echo: Callable[[str], None] = print,
    ) -> None:
        announce(target, echo)  # before anything else happens
        self.workdir = workdir.resolve()
        self.bench_id = bench_id
        self.run = run_label_value(bench_id)
        self.target = target
        self.namespace = target.namespace
        self.image = image or os.environ.get(IMAGE_ENV, DEFAULT_IMAGE)
        self.api = api or KubeApi(target, echo)
        self._components: dict[str, KubeComponent] = {}
        self._services: dict[int, str] = {}
        self._created: list[tuple[str, str]] = []  # every object, in creation order
        self._lock = threading.RLock()
        self._chaos: bool | None = None
        self._check_namespace()

    @classmethod
    def from_environment(cls, workdir: Path, bench_id: str) -> KubernetesPlatform:
        """The target the CLI put in the environment (--context, --namespace, --dry-run)."""
        return cls(workdir, bench_id, KubeTarget.from_environment())

    def _check_namespace(self) -> None:
        answer = self.api.request("GET", f"/api/v1/namespaces/{self.namespace}")
        if answer is None:  # dry run: the label is checked when it runs for real
            return
        check_namespace_labels(self.namespace, (answer.get("metadata") or {}).get("labels"))

    # -- objects -----------------------------------------------------------------------

    def _selector(self, **extra: str) -> dict[str, str]:
        return {RUN_LABEL: self.run, **extra}

    def _create(self, manifest: dict[str, Any]) -> None:
        kind = str(manifest["kind"])
        name = str(manifest["metadata"]["name"])
        if manifest["metadata"].get("labels", {}).get(RUN_LABEL) != self.run:
            raise DurabenchError(f"refusing to create {kind} {name} without this run's label")
        self.api.request("POST", collection_path(kind, self.namespace), body=manifest)
        with self._lock:
            self._created.append((kind, name))

    def _delete(self, kind: str, name: str, grace_s: int | None = None) -> bool:
        query = {"propagationPolicy": "Background"}
        if grace_s is not None:
            query["gracePeriodSeconds"] = str(grace_s)
        try:
            self.api.request("DELETE", object_path(kind, self.namespace, name), query=query)
        except ApiError as exc:
            if exc.status != 404:
                raise
            return False
        finally:
            with self._lock:
                if (kind, name) in self._created:
                    self._created.remove((kind, name))
        return True

    def pods(self, selector: dict[str, str]) -> list[str]:
        """Names of the pods with these labels (always including this run's label)."""
        query = {"labelSelector": label_selector({**selector, RUN_LABEL: self.run})}
        answer = self.api.request("GET", collection_path("Pod", self.namespace), query=query)
        if answer is None:
            return []
        return sorted(
            str(item["metadata"]["name"])
            for item in answer.get("items", [])
            if (item.get("metadata") or {}).get("deletionTimestamp") is None
        )

    # -- lifecycle -----------------------------------------------------------------------

    def start(self, spec: ComponentSpec) -> KubeComponent:
        """Create the workload and its Service, wait until a pod is ready."""
        with self._lock:
            if spec.name in self._components:
                raise ComponentError(f"component {spec.name!r} is already running")
            if spec.port is not None:
                self._services[spec.port] = k8s_name(spec.name)
        objects = component_objects(
            spec,
            namespace=self.namespace,
            run=self.run,
            image=self.image,
            services=dict(self._services),
            work_paths=(str(self.workdir),),
        )
        kind = "StatefulSet" if spec.role in STATEFUL_ROLES else "Deployment"
        component = KubeComponent(spec, kind, k8s_name(spec.name))
        for manifest in objects:
            self._create(manifest)
            component.objects.append((manifest["kind"], manifest["metadata"]["name"]))
        with self._lock:
            self._components[spec.name] = component
        try:
            self._wait_ready(component)
        except ComponentError:
            self._remove(component)
            raise
        return component

    def _wait_ready(self, component: KubeComponent) -> None:
        path = object_path(component.kind, self.namespace, component.name)
        deadline = time.monotonic() + component.spec.ready_timeout_s
        while True:
            answer = self.api.request("GET", path)
            if answer is None:
                return  # dry run
            if int((answer.get("status") or {}).get("readyReplicas") or 0) >= 1:
                pods = self.pods({COMPONENT_LABEL: component.name})
                component.pod = pods[0] if pods else None
                return
            if time.monotonic() >= deadline:
                break
            time.sleep(POLL_INTERVAL_S)
        raise ComponentError(
            f"{component.spec.name} ({component.kind} {component.name}) was not ready after "
            f"{component.spec.ready_timeout_s:g}s; log tail:\n{self._logs(component)}"
        )

    def _logs(self, component: KubeComponent) -> str:
        pods = self.pods({COMPONENT_LABEL: component.name})
        if not pods:
            return "(no pod)"
        try:
            return self.api.get_text(
                f"{collection_path('Pod', self.namespace)}/{pods[0]}/log",
                {"tailLines": str(LOG_TAIL_LINES)},
            )
        except ApiError as exc:
            return f"(no logs: {exc})"

    def _remove(self, component: KubeComponent) -> None:
        with self._lock:
            if self._components.get(component.spec.name) is component:
                del self._components[component.spec.name]
        for kind, name in reversed(component.objects):
            self._delete(kind, name)

    def stop(self, name: str) -> None:
        with self._lock:
            component = self._components.get(name)
        if component is not None:
            self._remove(component)

    def stop_all(self) -> None:
        """Delete everything this run created, then anything else carrying its label."""
        with self._lock:
            created = list(reversed(self._created))
            self._components.clear()
        for kind, name in created:
            try:
                self._delete(kind, name)
            except ApiError as exc:
                self.api.echo(f"kubernetes: could not delete {kind} {name}: {exc}")
        self.sweep()

    def sweep(self) -> int:
        """Delete every object of the swept kinds labelled with this run."""
        deleted = 0
        kinds = [*SWEPT_KINDS, *(("PodChaos",) if self._chaos else ())]
        for kind in kinds:
            query = {"labelSelector": label_selector(self._selector())}
            try:
                answer = self.api.request("GET", collection_path(kind, self.namespace), query=query)
            except ApiError:
                continue
            for item in (answer or {}).get("items", []):
                labels = (item.get("metadata") or {}).get("labels") or {}
                if labels.get(RUN_LABEL) == self.run and self._delete(
                    kind, item["metadata"]["name"]
                ):
                    deleted += 1
        return deleted

    # -- inspection ----------------------------------------------------------------------

    def component(self, name: str) -> KubeComponent:
        with self._lock:
            try:
                return self._components[name]
            except KeyError:
                known = ", ".join(sorted(self._components)) or "none"
                raise ComponentError(f"no component {name!r} (running: {known})") from None

    def components(self, role: str | None = None) -> list[KubeComponent]:
        with self._lock:
            return [c for c in self._components.values() if role is None or c.spec.role == role]

    # -- faults --------------------------------------------------------------------------

    def kill(self, name: str, restart_delay_s: float) -> str:
        """Delete the component's pods with grace 0; its controller starts a new one (the
        restart delay is the controller's, not ours)."""
        component = self.component(name)
        pods = self.pods({COMPONENT_LABEL: component.name})
        for pod in pods:
            self._delete_pod(pod, grace_s=0)
        return ",".join(pods)

    def _delete_pod(self, pod: str, grace_s: int) -> None:
        self.api.request(
            "DELETE",
            object_path("Pod", self.namespace, pod),
            query={"gracePeriodSeconds": str(grace_s)},
            body={"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": grace_s},
        )

    def evict(self, name: str, grace_s: float) -> str:
        """The Eviction API for each pod: PodDisruptionBudgets decide; a refusal (429)
        raises EvictionRefused naming the pod and the API's reason."""
        component = self.component(name)
        pods = self.pods({COMPONENT_LABEL: component.name})
        for pod in pods:
            body = {
                "apiVersion": "policy/v1",
                "kind": "Eviction",
                "metadata": {"name": pod, "namespace": self.namespace},
                "deleteOptions": {"gracePeriodSeconds": int(grace_s)},
            }
            try:
                self.api.request(
                    "POST", f"{object_path('Pod', self.namespace, pod)}/eviction", body=body
                )
            except ApiError as exc:
                if exc.status == 429:
                    raise EvictionRefused(
                        f"eviction of pod {pod} refused (HTTP 429): {exc.reason}"
                    ) from None
                raise
        return ",".join(pods)

    def chaos_mesh(self) -> bool:
        """Whether Chaos Mesh's API group is served here (asked once)."""
        if self._chaos is None:
            try:
                self._chaos = self.api.request("GET", CHAOS_GROUP) is not None
            except ApiError:
                self._chaos = False
        return self._chaos

    def pause(self, name: str) -> dict[str, Any]:
        """A Chaos Mesh PodChaos (pod-failure) on the component's pods; without Chaos
        Mesh, UnsupportedFault (Kubernetes itself cannot freeze a pod)."""
        component = self.component(name)
        if not self.chaos_mesh():
            raise UnsupportedFault(
                "pause needs Chaos Mesh (PodChaos) on kubernetes, and its API group "
                f"{CHAOS_GROUP} is not served in this cluster"
            )
        chaos_name = k8s_name(f"pause-{component.name}-{int(time.time())}")
        labels = object_labels(self.run, component.spec.name, component.spec.role)
        self._create(
            pod_chaos(
                chaos_name,
                self.namespace,
                labels,
                self._selector(**{COMPONENT_LABEL: component.name}),
            )
        )
        return self.kube_entry("PodChaos", chaos_name)

    def resume(self, name: str, entry: dict[str, Any]) -> None:
        self._delete(str(entry["kind"]), str(entry["name"]))

    def partition(self, link: str) -> dict[str, Any]:
        """Cut a link `a->b` (roles, or component names) with NetworkPolicies between the
        two label sets; returns the entry that `heal_partition` and `durabench heal` undo."""
        side_a, _, side_b = link.partition("->")
        if not side_a or not side_b:
            raise DurabenchError(f"link {link!r}: expected 'from->to', e.g. worker->store")
        roles = {c.spec.role for c in self.components()}
        a = self._side(side_a, roles)
        b = self._side(side_b, roles)
        name = k8s_name(f"partition-{side_a}-{side_b}-{int(time.time())}")
        labels = object_labels(self.run, "partition", "nemesis")
        names = []
        for policy in network_policies(name, self.namespace, labels, a, b):
            self._create(policy)
            names.append(policy["metadata"]["name"])
        return {**self.kube_entry("NetworkPolicy", names[0]), "names": names}

    def _side(self, side: str, roles: set[str]) -> dict[str, str]:
        key = ROLE_LABEL if side in roles else COMPONENT_LABEL
        return self._selector(**{key: side if key == ROLE_LABEL else k8s_name(side)})

    def heal_partition(self, entry: dict[str, Any]) -> None:
        for name in entry.get("names", [entry["name"]]):
            self._delete("NetworkPolicy", str(name))

    def restart(self, name: str, down_s: float = 0.0) -> KubeComponent:
        """Down for `down_s` (replicas 0), then up again on the same volume (replicas 1);
        with no down time, a pod delete with grace 0."""
        component = self.kill_now(name) if down_s > 0 else self.component(name)
        if down_s > 0:
            time.sleep(down_s)
            return self.revive(component)
        self.kill(name, 0.0)
        self._wait_ready(component)
        return component

    def _scale(self, component: KubeComponent, replicas: int) -> None:
        self.api.request(
            "PATCH",
            object_path(component.kind, self.namespace, component.name),
            body={"spec": {"replicas": replicas}},
            content_type="application/merge-patch+json",
        )

    def kill_now(self, name: str) -> KubeComponent:
        """Scale to zero and delete its pods with grace 0; forgotten until `revive`."""
        component = self.component(name)
        self._scale(component, 0)
        for pod in self.pods({COMPONENT_LABEL: component.name}):
            self._delete_pod(pod, grace_s=0)
        with self._lock:
            self._components.pop(name, None)
        return component

    def revive(self, handle: Handle) -> KubeComponent:
        assert isinstance(handle, KubeComponent)
        self._scale(handle, 1)
        with self._lock:
            self._components[handle.spec.name] = handle
        self._wait_ready(handle)
        return handle

    def kube_entry(self, kind: str, name: str) -> dict[str, Any]:
        """What `durabench heal` needs to delete one object of this run."""
        return {
            "type": "kube",
            "context": self.target.context,
            "namespace": self.namespace,
            "kubeconfig": self.target.kubeconfig,
            "kind": kind,
            "name": name,
            "run": self.run,
        }

    def started_entry(self, handle: Handle) -> dict[str, Any]:
        assert isinstance(handle, KubeComponent)
        return {**self.kube_entry(handle.kind, handle.name), "also": handle.objects}
