"""A thin wrapper over the Kubernetes REST API: every call is recorded, and in a dry
run printed instead of made.

It uses the official `kubernetes` client for what is hard (kubeconfig contexts,
exec and token auth, client certificates, TLS) and speaks plain REST paths for the
rest, so every request durabench makes is one readable line: `POST
/api/v1/namespaces/ns/pods/p/eviction`. Only namespaced paths are ever built.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from harness.errors import DurabenchError
from harness.platform.kubernetes.guardrails import KubeTarget

__all__ = ["RESOURCES", "ApiCall", "ApiError", "KubeApi", "collection_path", "object_path"]

REQUEST_TIMEOUT_S = 30
PROBE_TIMEOUT_S = 5  # a read-only look in a dry run: an unreachable cluster must not stall it
# kind -> (API prefix, plural): everything durabench creates, deletes or reads
RESOURCES: dict[str, tuple[str, str]] = {
    "Pod": ("/api/v1", "pods"),
    "Service": ("/api/v1", "services"),
    "ConfigMap": ("/api/v1", "configmaps"),
    "Secret": ("/api/v1", "secrets"),
    "Deployment": ("/apis/apps/v1", "deployments"),
    "StatefulSet": ("/apis/apps/v1", "statefulsets"),
    "PodDisruptionBudget": ("/apis/policy/v1", "poddisruptionbudgets"),
    "NetworkPolicy": ("/apis/networking.k8s.io/v1", "networkpolicies"),
    "PersistentVolumeClaim": ("/api/v1", "persistentvolumeclaims"),
    "Lease": ("/apis/coordination.k8s.io/v1", "leases"),
    "PodChaos": ("/apis/chaos-mesh.org/v1alpha1", "podchaos"),
    "NetworkChaos": ("/apis/chaos-mesh.org/v1alpha1", "networkchaos"),
}


def collection_path(kind: str, namespace: str) -> str:
    prefix, plural = RESOURCES[kind]
    return f"{prefix}/namespaces/{namespace}/{plural}"


def object_path(kind: str, namespace: str, name: str) -> str:
    return f"{collection_path(kind, namespace)}/{name}"


class ApiError(DurabenchError):
    """The API server answered with an error status (the message carries its reason)."""

    def __init__(self, method: str, path: str, status: int, message: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {message}")
        self.status = status
        self.reason = message


@dataclass(frozen=True)
class ApiCall:
    method: str
    path: str
    query: Mapping[str, str] = field(default_factory=dict)
    body: Any = None

    def __str__(self) -> str:
        query = f"?{urlencode(dict(self.query))}" if self.query else ""
        what = ""
        if isinstance(self.body, dict):
            kind = self.body.get("kind", "")
            name = (self.body.get("metadata") or {}).get("name", "")
            what = f" ({kind} {name})".replace(" )", ")") if kind or name else ""
        return f"{self.method} {self.path}{query}{what}"


class KubeApi:
    """Makes (or, in a dry run, prints) REST calls against one context's API server."""

    def __init__(
        self,
        target: KubeTarget,
        echo: Callable[[str], None] = print,
        api_client: Any = None,
    ) -> None:
        self.target = target
        self.echo = echo
        self.calls: list[ApiCall] = []
        self._client = api_client
        if api_client is None and not target.dry_run:
            self._client = self._connect(target)

    @staticmethod
    def _connect(target: KubeTarget) -> Any:
        try:
            from kubernetes import config
            from kubernetes.config.config_exception import ConfigException
        except ImportError:
            raise DurabenchError(
                "the kubernetes platform needs the kubernetes client: "
                "pip install 'durabench[kubernetes]'"
            ) from None
        try:
            return config.new_client_from_config(  # type: ignore[no-untyped-call]
                config_file=target.kubeconfig, context=target.context, persist_config=False
            )
        except (ConfigException, OSError) as exc:
            raise DurabenchError(
                f"cannot load kubeconfig context {target.context!r}"
                f"{' from ' + target.kubeconfig if target.kubeconfig else ''}: {exc}"
            ) from None

    def _headers(self, content_type: str) -> dict[str, str]:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        configuration = self._client.configuration
        for setting in configuration.auth_settings().values():
            if setting.get("in") == "header" and setting.get("value"):
                headers[setting["key"]] = setting["value"]
        return headers

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> dict[str, Any] | None:
        """One API call; returns the decoded JSON answer (None in a dry run)."""
        call = ApiCall(method, path, dict(query or {}), body)
        self.calls.append(call)
        if self.target.dry_run:
            self.echo(f"dry-run: {call}")
            return None
        return self._send(call, content_type, REQUEST_TIMEOUT_S, None)

    def read_only(self, path: str) -> dict[str, Any] | None:
        """A GET that is made even in a dry run (reading changes nothing), with a short
        timeout and no retries. In a dry run, DurabenchError when there is no cluster to
        ask (no kubeconfig context, no client); ApiError for an error answer; any other
        exception when nothing answers."""
        call = ApiCall("GET", path)
        if not self.target.dry_run:
            return self.request("GET", path)
        if self._client is None:
            self._client = self._connect(self.target)
        self.calls.append(call)
        return self._send(call, "application/json", PROBE_TIMEOUT_S, False)

    def _send(
        self, call: ApiCall, content_type: str, timeout_s: float, retries: bool | None
    ) -> dict[str, Any] | None:
        method, path, query, body = call.method, call.path, call.query, call.body
        configuration = self._client.configuration
        url = configuration.host.rstrip("/") + path
        if query:
            url += "?" + urlencode(dict(query))
        data = json.dumps(body).encode() if body is not None else None
        options: dict[str, Any] = {} if retries is None else {"retries": retries}
        response = self._client.rest_client.pool_manager.request(
            method,
            url,
            body=data,
            headers=self._headers(content_type),
            timeout=timeout_s,
            preload_content=True,
            **options,
        )
        text = response.data.decode(errors="replace") if response.data else ""
        if response.status >= 400:
            try:
                message = str(json.loads(text).get("message", text))
            except ValueError:
                message = text[:300]
            raise ApiError(method, path, response.status, message)
        try:
            decoded = json.loads(text) if text else {}
        except ValueError:
            return {"text": text}
        return decoded if isinstance(decoded, dict) else {"items": decoded}

    def open_portforward(self, pod: str, port: int) -> Any:
        """A socket to `port` of `pod`, through the API's portforward subresource (one
        websocket per connection, as `kubectl port-forward` does per stream)."""
        from kubernetes.stream.ws_client import portforward_call

        path = f"{object_path('Pod', self.target.namespace, pod)}/portforward"
        self.calls.append(ApiCall("GET", path, {"ports": str(port)}))
        configuration = self._client.configuration
        url = f"{configuration.host.rstrip('/')}{path}?{urlencode({'ports': port})}"
        headers = {k.lower(): v for k, v in self._headers("application/json").items()}
        forward = portforward_call(configuration, "GET", url, headers=headers)  # type: ignore[no-untyped-call]
        return forward.socket(port)

    def get_text(self, path: str, query: Mapping[str, str] | None = None) -> str:
        """A plain-text answer (pod logs)."""
        answer = self.request("GET", path, query=query)
        if answer is None:
            return ""
        return str(answer.get("text", json.dumps(answer)))
