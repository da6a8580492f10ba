"""A small Kubernetes API server stand-in on 127.0.0.1 for contract tests.

It keeps objects in memory, records every request, and behaves like the real API
where durabench depends on it: workloads get a ready pod (and a new one when a pod
is deleted, as a controller would), label selectors filter lists, evictions of pods
named in `refuse_evictions` answer 429 as a PodDisruptionBudget would, and the
Chaos Mesh API group is served only when `chaos_mesh` is set, and a pod's
portforward subresource speaks the real websocket protocol (v4.channel.k8s.io),
carrying the bytes to a real local server: `port_map` maps a pod port to the
loopback port that stands in for the pod (no pod runs). With `pods_on` set, pods do
run, as Docker containers on one shared loopback (`k8s_docker_pods.DockerPods`): their
readiness is their probe's, a delete kills a container, a port-forward reaches the
pod's port. It is not a cluster: tests built on it are contract tests, never counted
as integration tests.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import itertools
import json
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import yaml

if TYPE_CHECKING:
    from k8s_docker_pods import DockerPods

__all__ = ["NOT_OPTED_IN", "OPTED_IN", "OPTED_OUT", "Request", "StubApiServer"]

# the namespaces the contract tests' stub serves
OPTED_IN = "durabench-chaos"
NOT_OPTED_IN = "team-staging"
OPTED_OUT = "payments"

WORKLOAD_PLURALS = ("deployments", "statefulsets")
READY = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_BINARY, OP_CLOSE = 0x2, 0x8


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: Any


@dataclass
class StubApiServer:
    namespaces: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> labels
    refuse_evictions: set[str] = field(default_factory=set)
    chaos_mesh: bool = False
    port_map: dict[int, int] = field(default_factory=dict)  # pod port -> local stand-in
    default_port: int | None = None  # the stand-in for ports not in port_map
    pods_on: DockerPods | None = None  # pods run as containers there (None: no pod runs)
    requests: list[Request] = field(default_factory=list)
    objects: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # coll -> name
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _counter: itertools.count[int] = field(default_factory=itertools.count)

    def __post_init__(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def kubeconfig(self, directory: Path, context: str = "stub") -> Path:
        path = directory / "kubeconfig.yaml"
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "stub", "cluster": {"server": self.url}}],
                    "users": [{"name": "stub", "user": {"token": "contract-test"}}],
                    "contexts": [{"name": context, "context": {"cluster": "stub", "user": "stub"}}],
                    "current-context": "other-context-never-used",
                }
            )
        )
        return path

    # -- what tests look at ----------------------------------------------------------

    def calls(self, method: str | None = None, contains: str = "") -> list[Request]:
        with self._lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method) and contains in r.path
            ]

    def names(self, collection_suffix: str) -> list[str]:
        with self._lock:
            return sorted(
                name
                for coll, items in self.objects.items()
                if coll.endswith(collection_suffix)
                for name in items
            )

    def add_pod(self, namespace: str, name: str, labels: dict[str, str]) -> None:
        with self._lock:
            self._pods(namespace)[name] = {"metadata": {"name": name, "labels": labels}, **READY}

    # -- the fake API ------------------------------------------------------------------

    def _pods(self, namespace: str) -> dict[str, dict[str, Any]]:
        return self.objects.setdefault(f"/api/v1/namespaces/{namespace}/pods", {})

    def _new_pod(self, namespace: str, owner: dict[str, Any]) -> None:
        labels = owner["spec"]["template"]["metadata"]["labels"]
        name = f"{owner['metadata']['name']}-{next(self._counter):05d}"
        self._pods(namespace)[name] = {"metadata": {"name": name, "labels": dict(labels)}, **READY}
        if self.pods_on is not None:
            self._set_ready(namespace, name)(False)  # until its probe succeeds
            config_maps = self.objects.get(f"/api/v1/namespaces/{namespace}/configmaps", {})
            secrets = self.objects.get(f"/api/v1/namespaces/{namespace}/secrets", {})
            self.pods_on.run(
                name,
                _with_secret_values(owner["spec"]["template"], secrets),
                {n: dict(c.get("data") or {}) for n, c in config_maps.items()},
                self._set_ready(namespace, name, locked=True),
            )

    def _set_ready(self, namespace: str, name: str, locked: bool = False) -> Callable[[bool], None]:
        """Sets the pod's Ready condition (`locked`: from another thread, taking the lock)."""

        def set_ready(ready: bool) -> None:
            pod = self._pods(namespace).get(name)
            if pod is not None:
                status = "True" if ready else "False"
                pod["status"] = {"conditions": [{"type": "Ready", "status": status}]}

        def set_ready_locked(ready: bool) -> None:
            with self._lock:
                set_ready(ready)

        return set_ready_locked if locked else set_ready

    def _pods_of(self, namespace: str, workload: dict[str, Any]) -> list[str]:
        component = workload["metadata"]["labels"].get("durabench.io/component")
        return [
            n
            for n, p in self._pods(namespace).items()
            if p["metadata"]["labels"].get("durabench.io/component") == component
        ]

    def _ready_replicas(self, namespace: str, workload: dict[str, Any]) -> int:
        return sum(
            self._pods(namespace)[n]["status"]["conditions"][0]["status"] == "True"
            for n in self._pods_of(namespace, workload)
        )

    def _owner_of(self, namespace: str, pod: dict[str, Any]) -> dict[str, Any] | None:
        component = pod["metadata"]["labels"].get("durabench.io/component")
        for plural in WORKLOAD_PLURALS:
            coll = self.objects.get(f"/apis/apps/v1/namespaces/{namespace}/{plural}", {})
            for workload in coll.values():
                if workload["metadata"]["labels"].get("durabench.io/component") == component:
                    return workload
        return None

    def _remove_pod(self, namespace: str, name: str, grace_s: int | None = None) -> bool:
        pod = self._pods(namespace).pop(name, None)
        if pod is None:
            return False
        if self.pods_on is not None:
            self.pods_on.delete(name, grace_s)
        owner = self._owner_of(namespace, pod)
        if owner is not None and owner["spec"].get("replicas", 1) > 0:
            self._new_pod(namespace, owner)  # the controller replaces it
        return True

    def handle(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        with self._lock:
            self.requests.append(Request(method, path, query, body))
            parts = path.strip("/").split("/")
            if path == "/apis/chaos-mesh.org/v1alpha1":
                return (200, {"kind": "APIResourceList"}) if self.chaos_mesh else (404, {})
            if len(parts) == 4 and parts[:3] == ["api", "v1", "namespaces"]:
                if parts[3] not in self.namespaces:
                    return 404, {"message": f'namespaces "{parts[3]}" not found'}
                return 200, {"metadata": {"name": parts[3], "labels": self.namespaces[parts[3]]}}
            try:
                ns_index = parts.index("namespaces")
            except ValueError:
                return 404, {"message": "not found"}
            namespace = parts[ns_index + 1]
            rest = parts[ns_index + 2 :]
            collection = "/" + "/".join(parts[: ns_index + 2] + rest[:1])
            items = self.objects.setdefault(collection, {})
            if len(rest) == 1:
                if method == "GET":
                    wanted = dict(
                        p.split("=", 1) for p in query.get("labelSelector", "").split(",") if p
                    )
                    found = [
                        o
                        for o in items.values()
                        if all(
                            o["metadata"].get("labels", {}).get(k) == v for k, v in wanted.items()
                        )
                    ]
                    return 200, {"items": found}
                if method == "POST":
                    name = body["metadata"]["name"]
                    if name in items:
                        return 409, {"message": f"{name} already exists"}
                    items[name] = body
                    if rest[0] in WORKLOAD_PLURALS:
                        body["status"] = {"readyReplicas": 1}
                        self._new_pod(namespace, body)
                    if rest[0] == "services" and self.pods_on is not None:
                        self.pods_on.add_service(name, namespace)
                    return 201, body
            name = rest[1]
            if len(rest) == 3 and rest[2] == "eviction":
                if name in self.refuse_evictions:
                    return 429, {
                        "message": "Cannot evict pod as it would violate the pod's "
                        "disruption budget."
                    }
                grace = ((body or {}).get("deleteOptions") or {}).get("gracePeriodSeconds")
                return (201, {}) if self._remove_pod(namespace, name, grace) else (404, {})
            if len(rest) == 3 and rest[2] == "log":
                if self.pods_on is not None:
                    return 200, self.pods_on.logs(name, int(query.get("tailLines", 100)))
                return 200, "log line\n"
            if name not in items:
                return 404, {"message": f"{name} not found"}
            if method == "GET":
                if rest[0] in WORKLOAD_PLURALS and self.pods_on is not None:
                    ready = self._ready_replicas(namespace, items[name])
                    items[name]["status"] = {"readyReplicas": ready}
                return 200, items[name]
            if method == "DELETE":
                if rest[0] == "pods":
                    grace = query.get("gracePeriodSeconds")
                    self._remove_pod(namespace, name, None if grace is None else int(grace))
                    return 200, {}
                gone = items.pop(name)
                if rest[0] in WORKLOAD_PLURALS:
                    for pod in self._pods_of(namespace, gone):
                        del self._pods(namespace)[pod]
                        if self.pods_on is not None:
                            self.pods_on.delete(pod)
                if rest[0] == "persistentvolumeclaims" and self.pods_on is not None:
                    self.pods_on.delete_claim(name)
                return 200, {}
            if method == "PATCH" and rest[0] not in WORKLOAD_PLURALS:  # a merge patch
                _merge(items[name], body)
                return 200, items[name]
            if method == "PATCH":
                replicas = body["spec"]["replicas"]
                items[name]["spec"]["replicas"] = replicas
                if self.pods_on is not None:  # the controller: as many pods as replicas
                    pods = self._pods_of(namespace, items[name])
                    for pod in pods[replicas:]:
                        del self._pods(namespace)[pod]
                        self.pods_on.delete(pod)
                    for _ in range(replicas - len(pods)):
                        self._new_pod(namespace, items[name])
                elif replicas > 0:
                    self._new_pod(namespace, items[name])
                return 200, items[name]
        return 405, {"message": f"{method} not supported on {path}"}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                url = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                if url.path.endswith("/portforward") and self.headers.get("Upgrade"):
                    with stub._lock:
                        stub.requests.append(Request("GET", url.path, query, None))
                    pod = url.path.split("/")[-2]
                    namespace = url.path.split("/")[-4]
                    if pod not in stub._pods(namespace):
                        self.send_error(404, f"pod {pod} not found")
                        return
                    port = int(query["ports"])
                    if stub.pods_on is not None:
                        pods_on = stub.pods_on
                        _port_forward(self, port, lambda: pods_on.relay(pod, port))
                    else:
                        local = stub.port_map.get(port, stub.default_port)
                        _port_forward(self, port, lambda: _connect_local(local))
                    self.close_connection = True
                    return
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                status, answer = stub.handle(self.command, url.path, query, body)
                data = answer.encode() if isinstance(answer, str) else json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = do_PATCH = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


def _with_secret_values(
    template: dict[str, Any], secrets: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """The pod template as the kubelet runs it: `valueFrom.secretKeyRef` env entries
    resolved from the Secrets created so far (a missing one fails the pod, as in a
    cluster: the pod is started with the entry left out)."""
    template = copy.deepcopy(template)
    for container in template["spec"]["containers"]:
        resolved = []
        for item in container.get("env", []):
            ref = (item.get("valueFrom") or {}).get("secretKeyRef")
            if ref is None:
                resolved.append(item)
                continue
            data = (secrets.get(ref["name"]) or {}).get("stringData") or {}
            if ref["key"] in data:
                resolved.append({"name": item["name"], "value": data[ref["key"]]})
        container["env"] = resolved
    return template


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    """A JSON merge patch (RFC 7386), in place."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


# -- the portforward subresource: websocket framing, server side ----------------------


def _read_frame(handler: BaseHTTPRequestHandler) -> tuple[int, bytes]:
    head = handler.rfile.read(2)
    if len(head) < 2:
        return OP_CLOSE, b""
    opcode, length = head[0] & 0x0F, head[1] & 0x7F
    if length == 126:
        (length,) = struct.unpack(">H", handler.rfile.read(2))
    elif length == 127:
        (length,) = struct.unpack(">Q", handler.rfile.read(8))
    mask = handler.rfile.read(4) if head[1] & 0x80 else b"\0\0\0\0"
    data = handler.rfile.read(length)
    return opcode, bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def _frame(opcode: int, data: bytes) -> bytes:
    size = len(data)
    if size < 126:
        head = bytes([0x80 | opcode, size])
    elif size < 1 << 16:
        head = bytes([0x80 | opcode, 126]) + struct.pack(">H", size)
    else:
        head = bytes([0x80 | opcode, 127]) + struct.pack(">Q", size)
    return head + data


def _connect_local(port: int | None) -> socket.socket:
    upstream = socket.create_connection(("127.0.0.1", port or 0), timeout=5)
    upstream.settimeout(None)
    return upstream


def _port_forward(handler: BaseHTTPRequestHandler, port: int, connect: Callable[[], Any]) -> None:
    """Accept the websocket, announce the port on the data and error channels, then
    carry channel-0 bytes to and from what `connect` opens (a socket to the stand-in
    server, or a relay into the pods' loopback) until either side closes."""
    key = handler.headers["Sec-WebSocket-Key"]
    accept = base64.b64encode(hashlib.sha1((key + WEBSOCKET_GUID).encode()).digest()).decode()
    handler.send_response(101)
    handler.send_header("Upgrade", "websocket")
    handler.send_header("Connection", "Upgrade")
    handler.send_header("Sec-WebSocket-Accept", accept)
    handler.send_header("Sec-WebSocket-Protocol", "v4.channel.k8s.io")
    handler.end_headers()
    handler.wfile.flush()
    send_lock = threading.Lock()

    def send(opcode: int, data: bytes) -> None:
        with send_lock:
            handler.wfile.write(_frame(opcode, data))
            handler.wfile.flush()

    announce = struct.pack("<H", port)
    send(OP_BINARY, b"\x00" + announce)
    send(OP_BINARY, b"\x01" + announce)
    try:
        upstream = connect()
    except OSError as exc:
        send(OP_BINARY, b"\x01" + f"error forwarding port {port}: {exc}".encode())
        send(OP_CLOSE, b"")
        return

    def downstream() -> None:
        try:
            while data := upstream.recv(65536):
                send(OP_BINARY, b"\x00" + data)
            send(OP_CLOSE, b"")
        except (OSError, ValueError):  # ValueError: the client's end is already closed
            pass

    threading.Thread(target=downstream, daemon=True).start()
    try:
        while True:
            opcode, data = _read_frame(handler)
            if opcode == OP_CLOSE:
                break
            if opcode == OP_BINARY and data[:1] == b"\x00" and len(data) > 1:
                upstream.sendall(data[1:])
    except OSError:
        pass
    finally:
        upstream.close()
