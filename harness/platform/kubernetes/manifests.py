"""Kubernetes objects for durabench components, as plain dicts ready to apply or print.

Every object carries the run label, the component and role labels, and
`app.kubernetes.io/managed-by: durabench`: that is how the platform, the injectors
and `durabench heal` find what durabench made, and nothing else. A ComponentSpec
becomes a Deployment (workers, llm, tools) or a StatefulSet (server, store) with a
Service in front of its port; addresses other components dial (`127.0.0.1:PORT` on
the local platform) become that Service's DNS name.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.masking import is_secret_name
from harness.platform.base import ComponentSpec
from harness.platform.kubernetes.guardrails import (
    COMPONENT_LABEL,
    MANAGED_BY,
    ROLE_LABEL,
    RUN_LABEL,
)

__all__ = [
    "DEFAULT_IMAGE",
    "STATEFUL_ROLES",
    "WORK_MOUNT",
    "add_volume",
    "co_locate",
    "component_objects",
    "k8s_name",
    "listen_on_pod_network",
    "network_chaos",
    "network_policies",
    "object_labels",
    "pod_argv",
    "pod_chaos",
    "pod_disruption_budget",
    "secret_object",
    "secret_values",
    "service",
    "volume_claim",
    "workload",
]

Manifest = dict[str, Any]
DEFAULT_IMAGE = "durabench:latest"
STATEFUL_ROLES = frozenset({"server", "store"})
SERVICE_HOST_ROLES = frozenset({"llm", "tools"})  # take --host: must listen on the pod IP
WORK_MOUNT = "/var/lib/durabench"
WORK_CLAIM_SPEC = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
_UNSAFE = re.compile(r"[^a-z0-9-]")
_KV_DSN = re.compile(r"\bhost=(127\.0\.0\.1|localhost)\b.*?\bport=(?P<port>\d+)")
_KV_HOST = re.compile(r"\bhost=(127\.0\.0\.1|localhost)\b")


def k8s_name(name: str) -> str:
    """A DNS-1123 label: lowercase alphanumerics and '-', at most 63 characters."""
    cleaned = _UNSAFE.sub("-", name.lower()).strip("-")[:63].strip("-")
    return cleaned or "component"


def object_labels(run: str, component: str, role: str) -> dict[str, str]:
    return {
        RUN_LABEL: run,
        COMPONENT_LABEL: k8s_name(component),
        ROLE_LABEL: role,
        MANAGED_BY[0]: MANAGED_BY[1],
    }


def _metadata(name: str, namespace: str, labels: Mapping[str, str]) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": dict(labels)}


def pod_argv(spec: ComponentSpec, services: Mapping[int, str]) -> list[str]:
    """The spec's argv as the pod runs it: the image's python and tools instead of this
    virtualenv's, Service names instead of loopback ports, and servers listening on the
    pod's network (other pods dial them through their Service)."""
    argv = list(spec.argv)
    if argv and (argv[0] == sys.executable or re.search(r"/python3?(\.\d+)?$", argv[0])):
        argv[0] = "python"
    elif argv and argv[0].startswith(str(Path(sys.prefix) / "bin") + "/"):
        argv[0] = Path(argv[0]).name  # a console script of this virtualenv: on the image's PATH
    rewritten = [rewrite_addresses(arg, services) for arg in argv]
    return listen_on_pod_network(spec.role, rewritten)


def listen_on_pod_network(role: str, argv: list[str]) -> list[str]:
    """Loopback binds become pod-network binds: services take `--host 0.0.0.0`, the
    Temporal dev server `--ip 0.0.0.0`, restate-server `--bind-ip 0.0.0.0`, the embedded
    Postgres `--admit-network`
    (listen on all addresses, password auth from any host)."""
    if role in SERVICE_HOST_ROLES and "--host" not in argv:
        return [*argv, "--host", "0.0.0.0"]
    if role == "server":
        binds = ("--ip", "--bind-ip")
        return ["0.0.0.0" if i > 0 and argv[i - 1] in binds else a for i, a in enumerate(argv)]
    if role == "store" and "harness.postgres" in argv and "--admit-network" not in argv:
        return [*argv, "--admit-network"]
    return argv


def rewrite_addresses(text: str, services: Mapping[int, str]) -> str:
    """`127.0.0.1:PORT` (URLs) and `host=127.0.0.1 ... port=PORT` (libpq key=value
    DSNs) become the Service that owns PORT."""
    for port, host in services.items():
        for loopback in ("127.0.0.1", "localhost"):
            text = text.replace(f"{loopback}:{port}", f"{host}:{port}")
    match = _KV_DSN.search(text)
    if match and int(match.group("port")) in services:
        text = _KV_HOST.sub(f"host={services[int(match.group('port'))]}", text)
    return text


def _probe(spec: ComponentSpec) -> dict[str, Any] | None:
    """Readiness as on the local platform, checked inside the pod (loopback works there)."""
    if spec.health_url is not None:
        code = f"import urllib.request; urllib.request.urlopen({spec.health_url!r}, timeout=2)"
    elif spec.port is not None:
        code = f"import socket; socket.create_connection(('127.0.0.1', {spec.port}), 2)"
    else:
        return None
    return {
        "exec": {"command": ["python", "-c", code]},
        "periodSeconds": 2,
        "timeoutSeconds": 3,
        "failureThreshold": max(3, int(spec.ready_timeout_s / 2)),
    }


def workload(
    kind: str,
    name: str,
    namespace: str,
    labels: Mapping[str, str],
    container: Mapping[str, Any],
    *,
    volumes: list[dict[str, Any]] | None = None,
    claims: list[dict[str, Any]] | None = None,
    grace_s: int = 10,
) -> Manifest:
    """A one-replica Deployment or StatefulSet selecting its pods by durabench's labels."""
    selector = {k: labels[k] for k in (RUN_LABEL, COMPONENT_LABEL)}
    pod_spec: dict[str, Any] = {
        "containers": [dict(container)],
        "terminationGracePeriodSeconds": grace_s,
        "automountServiceAccountToken": False,
    }
    if kind == "Deployment":
        # The pod's pause container is PID 1, not the command: the kernel ignores a
        # signal PID 1 has no handler for, so a worker (no SIGTERM handler) as PID 1
        # never saw an eviction's SIGTERM and only died at the grace's SIGKILL. As
        # docker-init on the docker platform; servers and stores (StatefulSets) stay
        # PID 1, handling their signals themselves.
        pod_spec["shareProcessNamespace"] = True
    if volumes:
        pod_spec["volumes"] = volumes
    spec: dict[str, Any] = {
        "replicas": 1,
        "selector": {"matchLabels": selector},
        "template": {"metadata": {"labels": dict(labels)}, "spec": pod_spec},
    }
    if kind == "StatefulSet":
        spec["serviceName"] = name
        if claims:
            spec["volumeClaimTemplates"] = claims
    api_version = "apps/v1"
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": _metadata(name, namespace, labels),
        "spec": spec,
    }


def service(name: str, namespace: str, labels: Mapping[str, str], port: int) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(name, namespace, labels),
        "spec": {
            "selector": {k: labels[k] for k in (RUN_LABEL, COMPONENT_LABEL)},
            "ports": [{"name": "main", "port": port, "targetPort": port, "protocol": "TCP"}],
        },
    }


def pod_disruption_budget(
    name: str, namespace: str, labels: Mapping[str, str], selector: Mapping[str, str]
) -> Manifest:
    """At most one worker pod voluntarily disrupted at a time: evictions beyond are refused."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(name, namespace, labels),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": dict(selector)}},
    }


def network_policies(
    name: str,
    namespace: str,
    labels: Mapping[str, str],
    side_a: Mapping[str, str],
    side_b: Mapping[str, str],
) -> list[Manifest]:
    """A partition between two label sets: each side admits traffic from, and sends it
    to, every pod except the other side (NetworkPolicies only allow, so the deny is an
    allow-all-but). DNS and other namespaces stay reachable."""

    def one(suffix: str, selected: Mapping[str, str], other: Mapping[str, str]) -> Manifest:
        not_other = {
            "podSelector": {
                "matchExpressions": [
                    {"key": key, "operator": "NotIn", "values": [value]}
                    for key, value in sorted(other.items())
                    if key != RUN_LABEL
                ]
            }
        }
        elsewhere = {
            "namespaceSelector": {
                "matchExpressions": [
                    {
                        "key": "kubernetes.io/metadata.name",
                        "operator": "NotIn",
                        "values": [namespace],
                    }
                ]
            }
        }
        return {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": _metadata(f"{name}-{suffix}", namespace, labels),
            "spec": {
                "podSelector": {"matchLabels": dict(selected)},
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [{"from": [not_other, elsewhere]}],
                "egress": [{"to": [not_other, elsewhere]}],
            },
        }

    return [one("a", side_a, side_b), one("b", side_b, side_a)]


def volume_claim(
    name: str,
    namespace: str,
    labels: Mapping[str, str],
    *,
    access_mode: str = "ReadWriteOnce",
    size: str = "2Gi",
    storage_class: str | None = None,
) -> Manifest:
    """The run's work volume: every component mounts it where the harness keeps its
    work directory, so measurement files, ledgers and crash-point markers outlive
    the pods that wrote them (an emptyDir dies with a killed pod)."""
    spec: dict[str, Any] = {
        "accessModes": [access_mode],
        "resources": {"requests": {"storage": size}},
    }
    if storage_class:
        spec["storageClassName"] = storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _metadata(name, namespace, labels),
        "spec": spec,
    }


def add_volume(
    manifest: Manifest, volume: dict[str, Any], path: str, sub_path: str | None = None
) -> None:
    """Mount `volume` at `path` in the workload's container (one key with `sub_path`)."""
    pod = manifest["spec"]["template"]["spec"]
    if all(v["name"] != volume["name"] for v in pod.get("volumes", [])):
        pod.setdefault("volumes", []).append(volume)
    mount = {"name": volume["name"], "mountPath": path}
    if sub_path is not None:
        mount["subPath"] = sub_path
    pod["containers"][0].setdefault("volumeMounts", []).append(mount)


def co_locate(manifest: Manifest, labels: Mapping[str, str]) -> None:
    """Schedule the workload on the node of the pod with `labels` (a ReadWriteOnce
    volume is mounted by one node at a time)."""
    pod = manifest["spec"]["template"]["spec"]
    pod["affinity"] = {
        "podAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {
                    "labelSelector": {"matchLabels": dict(labels)},
                    "topologyKey": "kubernetes.io/hostname",
                }
            ]
        }
    }


def network_chaos(
    name: str,
    namespace: str,
    labels: Mapping[str, str],
    source: Mapping[str, str],
    target: Mapping[str, str],
    *,
    action: str,
    parameters: Mapping[str, Any],
    direction: str,
) -> Manifest:
    """A Chaos Mesh NetworkChaos on the traffic between two label sets (`action` is
    delay, loss or bandwidth; `parameters` its block), until it is deleted."""
    return {
        "apiVersion": "chaos-mesh.org/v1alpha1",
        "kind": "NetworkChaos",
        "metadata": _metadata(name, namespace, labels),
        "spec": {
            "action": action,
            "mode": "all",
            "selector": {"namespaces": [namespace], "labelSelectors": dict(source)},
            "direction": direction,
            "target": {
                "mode": "all",
                "selector": {"namespaces": [namespace], "labelSelectors": dict(target)},
            },
            action: dict(parameters),
        },
    }


def pod_chaos(
    name: str,
    namespace: str,
    labels: Mapping[str, str],
    selector: Mapping[str, str],
    action: str = "pod-failure",
) -> Manifest:
    """A Chaos Mesh PodChaos on the pods with these labels, until it is deleted."""
    return {
        "apiVersion": "chaos-mesh.org/v1alpha1",
        "kind": "PodChaos",
        "metadata": _metadata(name, namespace, labels),
        "spec": {
            "action": action,
            "mode": "all",
            "selector": {"namespaces": [namespace], "labelSelectors": dict(selector)},
        },
    }


def secret_values(spec: ComponentSpec, services: Mapping[int, str]) -> dict[str, str]:
    """The component's secret environment values (by `is_secret_name`), as the pod needs
    them (loopback addresses rewritten to Services)."""
    return {
        key: rewrite_addresses(value, services)
        for key, value in sorted(spec.env.items())
        if is_secret_name(key)
    }


def secret_object(
    name: str, namespace: str, labels: Mapping[str, str], values: Mapping[str, str]
) -> Manifest:
    """An Opaque Secret holding `values`: created through the API by a run, never written
    to a file."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _metadata(name, namespace, labels),
        "type": "Opaque",
        "stringData": dict(values),
    }


def component_objects(
    spec: ComponentSpec,
    *,
    namespace: str,
    run: str,
    image: str,
    services: Mapping[int, str],
    work_paths: tuple[str, ...] = (),
    name: str | None = None,
    secrets: str | None = None,
) -> list[Manifest]:
    """The Deployment or StatefulSet, and the Service, that run one ComponentSpec, named
    `name` (default: the component's). `work_paths` are directories the argv writes
    into: each gets an emptyDir, or for a server or store a volume claim (its data
    survives a deleted pod). With `secrets`, secret environment values (a DSN) are
    references into the Secret of that name (`secret_object`), never plain values."""
    name = name or k8s_name(spec.name)
    labels = object_labels(run, name, spec.role)
    container: dict[str, Any] = {
        "name": "main",
        "image": image,
        "command": pod_argv(spec, services),
        "env": [
            {"name": key, "valueFrom": {"secretKeyRef": {"name": secrets, "key": key}}}
            if secrets is not None and is_secret_name(key)
            else {"name": key, "value": rewrite_addresses(value, services)}
            for key, value in sorted(spec.env.items())
        ],
    }
    if spec.port is not None:
        container["ports"] = [{"containerPort": spec.port, "name": "main"}]
    probe = _probe(spec)
    if probe is not None:
        container["readinessProbe"] = probe
    kind = "StatefulSet" if spec.role in STATEFUL_ROLES else "Deployment"
    names = [f"work-{i}" for i, _ in enumerate(work_paths)]
    if work_paths:
        container["volumeMounts"] = [
            {"name": n, "mountPath": path} for n, path in zip(names, work_paths, strict=True)
        ]
    if kind == "StatefulSet":  # a server's or store's state must outlive its pod
        claims = [{"metadata": {"name": n}, "spec": WORK_CLAIM_SPEC} for n in names]
        made = workload(kind, name, namespace, labels, container, claims=claims)
    else:
        volumes = [{"name": n, "emptyDir": {}} for n in names]
        made = workload(kind, name, namespace, labels, container, volumes=volumes)
    objects = [made]
    if spec.port is not None:
        objects.append(service(name, namespace, labels, spec.port))
    return objects
