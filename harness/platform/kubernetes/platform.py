"""The Kubernetes platform: components as Deployments/StatefulSets in one opted-in
namespace, faults through the real API.

Every pod mounts the run's work volume (a PersistentVolumeClaim) where the harness
keeps its work directory, and the host files its command names (the scenario) from a
ConfigMap at the same paths, so a component's argv is the one it has on the local
platform. The harness reaches components through port-forwards on the same loopback
ports (`portforward`), and brings back what workers wrote on the volume with
`collect`, from a small file server that mounts it (`harness.services.files`).

kill = pod delete with grace 0 (the Deployment makes a new pod); evict = the
Eviction API, which respects PodDisruptionBudgets (a refusal, HTTP 429, is raised as
EvictionRefused and becomes the fault's outcome); partition = a pair of
NetworkPolicies between two label sets, deleted on heal; latency, bandwidth and
blackhole = a Chaos Mesh NetworkChaos, and pause = a Chaos Mesh PodChaos, when its API
group is served (detected, never required), else UnsupportedFault (the fault is
recorded as skipped, with the reason). Every object carries the run label, is tracked, deleted by
`stop_all` (on exit and on Ctrl-C, through `closing_platform`) and, if durabench
dies, by `durabench heal --platform kubernetes`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import socket
import sys
import tarfile
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.errors import ComponentError, DurabenchError, UnsupportedFault
from harness.faults import NetworkFault
from harness.heal_entry import HealEntry
from harness.platform.base import ComponentSpec, Handle, find_component, free_port, with_role
from harness.platform.kubernetes.api import ApiError, KubeApi, collection_path, object_path
from harness.platform.kubernetes.guardrails import (
    COMPONENT_LABEL,
    OPT_IN_LABEL,
    OPT_IN_VALUE,
    ROLE_LABEL,
    RUN_LABEL,
    KubeTarget,
    announce,
    check_namespace_labels,
    label_selector,
    run_label_value,
)
from harness.platform.kubernetes.healing import CHAOS_KINDS, SWEPT_KINDS, KubeObject
from harness.platform.kubernetes.lease import DURATION_S as LEASE_DURATION_S
from harness.platform.kubernetes.lease import RENEW_S as LEASE_RENEW_S
from harness.platform.kubernetes.lease import LeaseKeeper, lease_manifest
from harness.platform.kubernetes.manifests import (
    DEFAULT_IMAGE,
    STATEFUL_ROLES,
    add_volume,
    co_locate,
    component_objects,
    k8s_name,
    network_chaos,
    network_policies,
    object_labels,
    pod_chaos,
    pod_disruption_budget,
    secret_object,
    secret_values,
    volume_claim,
)
from harness.platform.kubernetes.portforward import PortForward

__all__ = [
    "IMAGE_ENV",
    "EvictionRefused",
    "KubeComponent",
    "KubernetesPlatform",
    "UnsupportedFault",
]

IMAGE_ENV = "DURABENCH_KUBE_IMAGE"
VOLUME_ACCESS_ENV = "DURABENCH_KUBE_VOLUME_ACCESS"  # ReadWriteOnce (default) | ReadWriteMany
STORAGE_CLASS_ENV = "DURABENCH_KUBE_STORAGE_CLASS"
VOLUME_SIZE_ENV = "DURABENCH_KUBE_VOLUME_SIZE"
FILES_COMPONENT = "files"
POLL_INTERVAL_S = 1.0
LOG_TAIL_LINES = 30
CHAOS_GROUP = "/apis/chaos-mesh.org/v1alpha1"
# a link's direction (upstream = from the first side) -> NetworkChaos's, seen from it
CHAOS_DIRECTIONS = {"upstream": "to", "downstream": "from", "both": "both"}
CHAOS_BANDWIDTH_LIMIT = 20 * 1024 * 1024  # bytes queued before drops (tbf `limit`)
CHAOS_BANDWIDTH_BUFFER = 10_000  # bytes sent at once (tbf `buffer`)


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
    forward: PortForward | None = None

    @property
    def ident(self) -> str:
        return self.pod or self.name


class KubernetesPlatform:
    """Runs components in the target namespace and applies faults through the API."""

    name = "kubernetes"  # pods see the work volume, the harness `collect`s it: no shared files
    lease_renew_s = LEASE_RENEW_S

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
        self._volume: str | None = None  # the work volume's claim, made on first start
        self._budget = False  # the workers' PodDisruptionBudget, made with the first worker
        self._lease: str | None = None  # the run's lease (harness/platform/kubernetes/lease.py)
        self._keeper: LeaseKeeper | None = None
        self._listeners: list[Callable[[Handle], None]] = []
        # object names end with this: runs (and backends of one run) never collide
        self.suffix = hashlib.sha1(f"{self.run}/{self.workdir.name}".encode()).hexdigest()[:6]
        self._check_namespace()

    @classmethod
    def from_environment(cls, workdir: Path, bench_id: str) -> KubernetesPlatform:
        """The target the CLI put in the environment (--context, --namespace, --dry-run)."""
        return cls(workdir, bench_id, KubeTarget.from_environment())

    def _check_namespace(self) -> None:
        """The opt-in label, before anything else. A dry run reads it too (a GET changes
        nothing) when a cluster answers, and says plainly when it could not."""
        path = f"/api/v1/namespaces/{self.namespace}"
        if not self.target.dry_run:
            answer = self.api.request("GET", path)
        else:
            try:
                answer = self.api.read_only(path)
            except Exception as exc:  # no kubeconfig, no cluster, an error answer
                self.api.echo(
                    f"kubernetes: dry run: could NOT check the opt-in label "
                    f"{OPT_IN_LABEL}={OPT_IN_VALUE} of namespace {self.namespace!r} "
                    f"({_reason(exc)}); a real run checks it before it creates anything"
                )
                return
        check_namespace_labels(self.namespace, ((answer or {}).get("metadata") or {}).get("labels"))
        if self.target.dry_run:
            self.api.echo(
                f"kubernetes: namespace {self.namespace!r} carries the opt-in label "
                f"{OPT_IN_LABEL}={OPT_IN_VALUE} (checked read-only)"
            )

    # -- objects -----------------------------------------------------------------------

    @property
    def dry_run(self) -> bool:
        """API calls are printed, not made: a run stops once its plan is printed."""
        return self.target.dry_run

    def object_name(self, name: str) -> str:
        """A component's object name in the namespace: its name and this run's suffix."""
        return f"{k8s_name(name)[:55].rstrip('-')}-{self.suffix}"

    def _selector(self, **extra: str) -> dict[str, str]:
        return {RUN_LABEL: self.run, **extra}

    def _create(self, manifest: dict[str, Any]) -> None:
        kind = str(manifest["kind"])
        name = str(manifest["metadata"]["name"])
        if manifest["metadata"].get("labels", {}).get(RUN_LABEL) != self.run:
            raise DurabenchError(f"refusing to create {kind} {name} without this run's label")
        try:
            self.api.request("POST", collection_path(kind, self.namespace), body=manifest)
        except ApiError as exc:
            if exc.status == 409:
                raise DurabenchError(
                    f"{kind} {name} already exists in namespace {self.namespace}: "
                    "refusing to touch an object this run did not create"
                ) from None
            raise
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
        """Create the workload (its Service, its host files) on the work volume, wait
        until a pod is ready, and forward its port to the same port on 127.0.0.1."""
        self._ensure_lease()
        if spec.name != FILES_COMPONENT:
            self._ensure_volume()
        if spec.role == "worker":
            self._ensure_worker_budget()
        with self._lock:
            if spec.name in self._components:
                raise ComponentError(f"component {spec.name!r} is already running")
            if spec.port is not None:
                self._services[spec.port] = self.object_name(spec.name)
        services = dict(self._services)
        secrets = secret_values(spec, services)
        secret_name = f"{self.object_name(spec.name)}-secrets" if secrets else None
        objects = component_objects(
            spec,
            name=self.object_name(spec.name),
            namespace=self.namespace,
            run=self.run,
            image=spec.image or self.image,
            services=services,
            secrets=secret_name,
        )
        objects[0:0] = self._on_volume(spec, objects[0])
        if secret_name is not None:  # through the API only: no file ever holds it
            labels = objects[0]["metadata"]["labels"]
            objects.insert(0, secret_object(secret_name, self.namespace, labels, secrets))
        kind = "StatefulSet" if spec.role in STATEFUL_ROLES else "Deployment"
        component = KubeComponent(spec, kind, self.object_name(spec.name))
        with self._lock:
            self._components[spec.name] = component
        try:
            for manifest in objects:
                self._create(manifest)
                component.objects.append((manifest["kind"], manifest["metadata"]["name"]))
            self._wait_ready(component)
            self._forward(component)
        except (ComponentError, ApiError):
            self._remove(component)
            raise
        self._started(component)
        return component

    def _started(self, component: KubeComponent) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener(component)

    def on_start(self, listener: Callable[[Handle], None]) -> None:
        """`listener` hears of every component started (or scaled back up) from now on."""
        with self._lock:
            self._listeners.append(listener)

    def _ensure_lease(self) -> None:
        """The run's lease, before any other object, renewed while the run lives: what
        lets `durabench heal --platform kubernetes` on any machine tell it is dead."""
        with self._lock:
            if self._lease is not None:
                return
            self._lease = self.object_name("lease")
        holder = f"{socket.gethostname()}:{os.getpid()}"
        labels = object_labels(self.run, self._lease, "lease")
        self._create(lease_manifest(self._lease, self.namespace, labels, holder, time.time()))
        if not self.target.dry_run:
            self._keeper = LeaseKeeper(self._renew_lease, self.lease_renew_s)

    def _renew_lease(self, at: str) -> None:
        assert self._lease is not None
        self.api.request(
            "PATCH",
            object_path("Lease", self.namespace, self._lease),
            body={"spec": {"renewTime": at}},
            content_type="application/merge-patch+json",
        )

    def _ensure_volume(self) -> None:
        """The run's work volume and the file server that reads it, once."""
        with self._lock:
            if self._volume is not None:
                return
            self._volume = self.object_name("work")
        access = os.environ.get(VOLUME_ACCESS_ENV, "ReadWriteOnce")
        self._create(
            volume_claim(
                self._volume,
                self.namespace,
                object_labels(self.run, "work", "volume"),
                access_mode=access,
                size=os.environ.get(VOLUME_SIZE_ENV, "2Gi"),
                storage_class=os.environ.get(STORAGE_CLASS_ENV) or None,
            )
        )
        port = free_port()
        files = self.start(
            ComponentSpec(
                name=FILES_COMPONENT,
                role="files",
                argv=(
                    sys.executable,
                    "-m",
                    "harness.services.files",
                    "--root",
                    str(self.workdir),
                    "--port",
                    str(port),
                ),
                port=port,
                health_url=f"http://127.0.0.1:{port}/health",
                ready_timeout_s=180.0,  # the first pod waits for the volume and the image
            )
        )
        files.objects.extend(  # healed with the files
            [("PersistentVolumeClaim", self._volume), ("Lease", self._lease or "")]
        )
        self._started(files)  # recorded again, with them

    def _ensure_worker_budget(self) -> None:
        """One PodDisruptionBudget over the workers, as `k8s render` ships it: evictions
        beyond one unavailable worker are refused, and durabench reports the refusal."""
        with self._lock:
            if self._budget:
                return
            self._budget = True
        self._create(
            pod_disruption_budget(
                self.object_name("workers"),
                self.namespace,
                object_labels(self.run, self.object_name("workers"), "worker"),
                self._selector(**{ROLE_LABEL: "worker"}),
            )
        )

    def _on_volume(self, spec: ComponentSpec, workload: dict[str, Any]) -> list[dict[str, Any]]:
        """Mount the work volume at the work directory's path and the host files the
        argv names at theirs (from a ConfigMap, returned to be created first); pin the
        pod to the volume's node unless the volume is ReadWriteMany."""
        assert self._volume is not None
        claim = {"name": "work", "persistentVolumeClaim": {"claimName": self._volume}}
        add_volume(workload, claim, str(self.workdir))
        if spec.name != FILES_COMPONENT and os.environ.get(VOLUME_ACCESS_ENV) != "ReadWriteMany":
            co_locate(
                workload, self._selector(**{COMPONENT_LABEL: self.object_name(FILES_COMPONENT)})
            )
        files = host_files(spec, self.workdir)
        if not files:
            return []
        name = self.object_name(f"{spec.name}-files")
        keys = {path: f"file-{index}" for index, path in enumerate(files)}
        volume = {"name": "host-files", "configMap": {"name": name}}
        for path, key in keys.items():
            add_volume(workload, volume, path, sub_path=key)
        return [
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": name,
                    "namespace": self.namespace,
                    "labels": object_labels(self.run, name, spec.role),
                },
                "data": {key: Path(path).read_text() for path, key in keys.items()},
            }
        ]

    def _forward(self, component: KubeComponent) -> None:
        """127.0.0.1:PORT here -> PORT of the component's current ready pod."""
        port = component.spec.port
        if port is None or self.target.dry_run:
            return

        def open_remote() -> Any:
            pods = self.ready_pods({COMPONENT_LABEL: component.name})
            if not pods:
                raise ComponentError(f"{component.spec.name} has no ready pod")
            return self.api.open_portforward(pods[0], port)

        component.forward = PortForward(component.spec.name, port, open_remote)

    def collect(self, paths: Sequence[str]) -> None:
        """Bring `paths` (relative to the work directory) from the work volume into the
        harness's work directory."""
        with self._lock:
            files = self._components.get(FILES_COMPONENT)
        if files is None or files.spec.port is None or self.target.dry_run:
            return
        query = "&".join(f"path={p}" for p in paths)
        url = f"http://127.0.0.1:{files.spec.port}/archive?{query}"
        with urllib.request.urlopen(url, timeout=120) as response:
            data = response.read()
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            tar.extractall(self.workdir, filter="data")

    def ready_pods(self, selector: dict[str, str]) -> list[str]:
        """The pods with these labels (and this run's) whose Ready condition is True."""
        query = {"labelSelector": label_selector({**selector, RUN_LABEL: self.run})}
        answer = self.api.request("GET", collection_path("Pod", self.namespace), query=query)
        return sorted(
            str(item["metadata"]["name"])
            for item in (answer or {}).get("items", [])
            if (item.get("metadata") or {}).get("deletionTimestamp") is None
            and any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in (item.get("status") or {}).get("conditions") or []
            )
        )

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
        if component.forward is not None:
            component.forward.close()
        for kind, name in reversed(component.objects):
            self._delete(kind, name)

    def stop(self, name: str) -> None:
        with self._lock:
            component = self._components.get(name)
        if component is not None:
            self._remove(component)

    def stop_all(self) -> None:
        """Delete everything this run created, then anything else carrying its label, and
        the lease last: if something could not be deleted, the lease is left to expire,
        and then `durabench heal --platform kubernetes` deletes the rest from anywhere."""
        with self._lock:
            created = list(reversed(self._created))
            forwards = [c.forward for c in self._components.values() if c.forward]
            self._components.clear()
            self._volume = None
            self._budget = False
            keeper, self._keeper = self._keeper, None
            lease, self._lease = self._lease, None
        if keeper is not None:
            keeper.stop()
        for forward in forwards:
            forward.close()
        failed = False
        for kind, name in created:
            if (kind, name) == ("Lease", lease):
                continue
            try:
                self._delete(kind, name)
            except ApiError as exc:
                failed = True
                self.api.echo(f"kubernetes: could not delete {kind} {name}: {exc}")
        try:
            self.sweep()
        except ApiError:
            failed = True
        if lease is None:
            return
        if failed:
            self.api.echo(
                f"kubernetes: kept the run's lease {lease}: it expires in {LEASE_DURATION_S}s, "
                "then `durabench heal --platform kubernetes` deletes what is left"
            )
            return
        with contextlib.suppress(ApiError):
            self._delete("Lease", lease)

    def sweep(self) -> int:
        """Delete every object of the swept kinds labelled with this run."""
        deleted = 0
        kinds = [*SWEPT_KINDS, *(CHAOS_KINDS if self._chaos else ())]
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
            return find_component(self._components, name)

    def components(self, role: str | None = None) -> list[KubeComponent]:
        with self._lock:
            return with_role(self._components, role)

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

    def pause(self, name: str, record: Callable[[HealEntry], None]) -> None:
        """A Chaos Mesh PodChaos (pod-failure) on the component's pods, recorded before it
        is created; without Chaos Mesh, UnsupportedFault (Kubernetes itself cannot freeze
        a pod)."""
        component = self.component(name)
        if not self.chaos_mesh():
            raise UnsupportedFault(
                "pause needs Chaos Mesh (PodChaos) on kubernetes, and its API group "
                f"{CHAOS_GROUP} is not served in this cluster"
            )
        chaos_name = k8s_name(f"pause-{component.name}-{int(time.time())}")
        labels = object_labels(self.run, component.name, component.spec.role)
        record(self.kube_entry("PodChaos", chaos_name))
        self._create(
            pod_chaos(
                chaos_name,
                self.namespace,
                labels,
                self._selector(**{COMPONENT_LABEL: component.name}),
            )
        )

    def resume(self, entry: HealEntry) -> None:
        if not isinstance(entry, KubeObject):
            raise TypeError(f"the kubernetes platform cannot resume a {type(entry).__name__}")
        self._delete(entry.kind, entry.name)

    def partition(self, link: str, record: Callable[[HealEntry], None] | None = None) -> KubeObject:
        """Cut a link `a->b` (roles, or component names) with NetworkPolicies between the
        two label sets; the entry that `heal_partition` and `durabench heal` undo goes to
        `record` before the first policy is created, and is returned."""
        side_a, _, side_b = link.partition("->")
        if not side_a or not side_b:
            raise DurabenchError(f"link {link!r}: expected 'from->to', e.g. worker->store")
        roles = {c.spec.role for c in self.components()}
        a = self._side(side_a, roles)
        b = self._side(side_b, roles)
        name = self.object_name(f"partition-{side_a}-{side_b}-{int(time.time())}")
        labels = object_labels(self.run, "partition", "nemesis")
        policies = network_policies(name, self.namespace, labels, a, b)
        names = tuple(str(p["metadata"]["name"]) for p in policies)
        entry = replace(self.kube_entry("NetworkPolicy", names[0]), names=names)
        if record is not None:
            record(entry)
        for policy in policies:
            self._create(policy)
        return entry

    def refuse_network_fault(self, fault: NetworkFault) -> str | None:
        """Partitions are NetworkPolicies (plain Kubernetes); reset has no equivalent; the
        other modes need Chaos Mesh."""
        if fault.mode == "partition":
            return None
        if fault.mode == "reset":
            return (
                "reset needs durabench's fault proxy (connections aborted mid-stream); "
                "Kubernetes and Chaos Mesh have no equivalent"
            )
        if not self.chaos_mesh():
            return (
                f"network {fault.mode} needs Chaos Mesh (NetworkChaos) on kubernetes, and its "
                f"API group {CHAOS_GROUP} is not served in this cluster"
            )
        return None

    def network_fault(self, fault: NetworkFault, record: Callable[[HealEntry], None]) -> None:
        """A network fault on a link: partition with NetworkPolicies (plain Kubernetes);
        latency, bandwidth and blackhole (100% loss) with a Chaos Mesh NetworkChaos; the
        entry `heal_network_fault` and `durabench heal` undo goes to `record` first."""
        refused = self.refuse_network_fault(fault)
        if refused is not None:
            raise UnsupportedFault(refused)
        if fault.mode == "partition":
            self.partition(fault.target, record)
            return
        source_side, _, target_side = fault.target.partition("->")
        roles = {c.spec.role for c in self.components()}
        action, parameters = _chaos_action(fault)
        name = self.object_name(f"{fault.mode}-{source_side}-{target_side}-{int(time.time())}")
        record(self.kube_entry("NetworkChaos", name))
        self._create(
            network_chaos(
                name,
                self.namespace,
                object_labels(self.run, name, "nemesis"),
                self._side(source_side, roles),
                self._side(target_side, roles),
                action=action,
                parameters=parameters,
                direction=CHAOS_DIRECTIONS[fault.direction],
            )
        )

    def heal_network_fault(self, entry: HealEntry) -> None:
        if not isinstance(entry, KubeObject):
            raise TypeError(f"the kubernetes platform cannot heal a {type(entry).__name__}")
        if entry.kind == "NetworkPolicy":
            self.heal_partition(entry)
        else:
            self._delete(entry.kind, entry.name)

    def _side(self, side: str, roles: set[str]) -> dict[str, str]:
        key = ROLE_LABEL if side in roles else COMPONENT_LABEL
        return self._selector(**{key: side if key == ROLE_LABEL else self.object_name(side)})

    def heal_partition(self, entry: KubeObject) -> None:
        for name in entry.names or (entry.name,):
            self._delete("NetworkPolicy", name)

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
        self._started(handle)
        return handle

    def kube_entry(self, kind: str, name: str) -> KubeObject:
        """What `durabench heal` needs to delete one object of this run."""
        return KubeObject(
            context=self.target.context,
            namespace=self.namespace,
            kubeconfig=self.target.kubeconfig,
            kind=kind,
            name=name,
            run=self.run,
        )

    def started_entry(self, handle: Handle) -> KubeObject:
        assert isinstance(handle, KubeComponent)
        return replace(self.kube_entry(handle.kind, handle.name), also=tuple(handle.objects))


def host_files(spec: ComponentSpec, workdir: Path) -> list[str]:
    """Files of this machine the argv names (absolute paths outside the work directory
    and outside this Python's installation): the pod gets copies at the same paths."""
    found = []
    for arg in spec.argv[1:]:
        path = Path(arg)
        if (
            path.is_absolute()
            and path.is_file()
            and not path.is_relative_to(workdir)
            and not path.is_relative_to(sys.prefix)
            and not path.is_relative_to(sys.base_prefix)
        ):
            found.append(arg)
    return sorted(set(found))


def _chaos_action(fault: NetworkFault) -> tuple[str, dict[str, Any]]:
    """The NetworkChaos action and its block for a latency, bandwidth or blackhole fault.
    A blackhole is 100% loss: TCP retransmits what was held once it heals, as the proxy's
    held bytes are delivered."""
    if fault.mode == "latency":
        return "delay", {
            "latency": f"{fault.latency_ms:g}ms",
            "jitter": f"{fault.jitter_ms:g}ms",
            "correlation": "0",
        }
    if fault.mode == "bandwidth":
        return "bandwidth", {
            "rate": f"{fault.bandwidth_kbps:g}kbps",
            "limit": CHAOS_BANDWIDTH_LIMIT,
            "buffer": CHAOS_BANDWIDTH_BUFFER,
        }
    return "loss", {"loss": "100", "correlation": "0"}


def _reason(exc: BaseException) -> str:
    """One line saying why a read did not happen."""
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]
