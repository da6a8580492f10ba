"""Talking to a Restate server from the harness: its admin API (deployments, the SQL
introspection endpoint `/query`, invocation kills) and its ingress (starting a
workflow with `/send`, attaching to it, calling a handler with an idempotency key).

One place turns every failure into a BackendError naming the URL and what the server
said; a server that is restarting (connection refused or reset, 5xx) is retried by
the callers that must outlive a restart fault (`transient`).
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

from harness.errors import BackendError

__all__ = [
    "RestateClient",
    "RestateHTTPError",
    "ServerAddress",
    "probe",
    "sql_text",
    "transient",
]

REQUEST_TIMEOUT_S = 10.0
PROBE_TIMEOUT_S = 5.0
TRANSIENT_STATUS = frozenset({500, 502, 503, 504})


class RestateHTTPError(BackendError):
    """The server answered with an error status; `status` and its message kept."""

    def __init__(self, url: str, status: int, message: str) -> None:
        super().__init__(f"restate: {url} answered {status}: {message[:500]}")
        self.status = status
        self.message = message


@dataclass(frozen=True)
class ServerAddress:
    """Where a Restate server's two APIs are (base URLs, no trailing slash)."""

    ingress_url: str
    admin_url: str

    @classmethod
    def of(cls, ingress: str, admin: str) -> ServerAddress:
        return cls(ingress.rstrip("/"), admin.rstrip("/"))


def sql_text(value: str) -> str:
    """A SQL string literal (the query API takes plain SQL, no parameters)."""
    return "'" + value.replace("'", "''") + "'"


def _message(body: str) -> str:
    try:
        data = json.loads(body)
    except json.JSONDecodeError:
        return body.strip()
    return str(data.get("message", body)) if isinstance(data, dict) else body.strip()


def probe(address: ServerAddress) -> str:
    """Blocking: the server's version, or one BackendError naming the URL that failed
    (for `components`, before any worker starts)."""
    for url in (f"{address.admin_url}/version", f"{address.ingress_url}/restate/health"):
        try:
            with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_S) as answer:
                body = answer.read().decode(errors="replace")
        except urllib.error.HTTPError as exc:
            raise BackendError(
                f"restate: {url} answered {exc.code}: not a Restate server?"
            ) from None
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise BackendError(
                f"restate: cannot reach {url} ({reason}); check --restate-admin and "
                "--restate-ingress (an existing server's admin and ingress URLs)"
            ) from None
        if url.endswith("/version"):
            try:
                version = str(json.loads(body)["version"])
            except (json.JSONDecodeError, KeyError, TypeError):
                raise BackendError(
                    f"restate: {url} did not answer like a Restate admin API"
                ) from None
    return version


class RestateClient:
    """The harness's HTTP session to one server (aiohttp, no connection limit)."""

    def __init__(self, address: ServerAddress) -> None:
        self.address = address
        self._http: aiohttp.ClientSession | None = None

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
            self._http = aiohttp.ClientSession(connector=connector)
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def request(
        self,
        method: str,
        url: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> Any:
        """One request; the decoded JSON answer (None when empty). aiohttp's errors and
        timeouts pass through (the caller decides whether to retry); an error status
        is a RestateHTTPError."""
        data = None if body is None else json.dumps(body).encode()
        sent = {"accept": "application/json"}
        if data is not None:  # a handler without input refuses any content type
            sent["content-type"] = "application/json"
        async with self.http.request(
            method,
            url,
            data=data,
            headers={**sent, **(headers or {})},
            skip_auto_headers=() if data is not None else ("Content-Type",),
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        ) as answer:
            text = await answer.text()
            if answer.status >= 400:
                raise RestateHTTPError(url, answer.status, _message(text))
            return json.loads(text) if text.strip() else None

    # -- admin --------------------------------------------------------------------------

    async def query(self, sql: str) -> list[dict[str, Any]]:
        """Rows of the admin SQL introspection API (`POST /query`)."""
        answer = await self.request("POST", f"{self.address.admin_url}/query", {"query": sql})
        rows: list[dict[str, Any]] = (answer or {}).get("rows", [])
        return rows

    async def register(self, uri: str) -> dict[str, Any]:
        """Register a deployment (the server discovers its services at `uri`)."""
        answer: dict[str, Any] = await self.request(
            "POST", f"{self.address.admin_url}/deployments", {"uri": uri}, timeout_s=30.0
        )
        return answer

    async def service(self, name: str) -> dict[str, Any] | None:
        try:
            answer: dict[str, Any] = await self.request(
                "GET", f"{self.address.admin_url}/services/{quote(name, safe='')}"
            )
        except RestateHTTPError as exc:
            if exc.status == 404:
                return None
            raise
        return answer

    async def kill(self, invocation_id: str) -> None:
        url = f"{self.address.admin_url}/invocations/{quote(invocation_id, safe='')}/kill"
        try:
            await self.request("PATCH", url)
        except RestateHTTPError as exc:
            if exc.status != 404:  # already gone
                raise

    async def healthy(self) -> bool:
        try:
            await self.request("GET", f"{self.address.admin_url}/health", timeout_s=2.0)
            await self.request("GET", f"{self.address.ingress_url}/restate/health", timeout_s=2.0)
        except (aiohttp.ClientError, TimeoutError, BackendError):
            return False
        return True

    async def wait_healthy(self, timeout_s: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not await self.healthy():
            if loop.time() >= deadline:
                raise BackendError(
                    f"restate: the server at {self.address.admin_url} (admin) and "
                    f"{self.address.ingress_url} (ingress) did not answer within {timeout_s:g}s"
                )
            await asyncio.sleep(0.1)

    # -- ingress ------------------------------------------------------------------------

    def handler_url(self, service: str, key: str, handler: str) -> str:
        return (
            f"{self.address.ingress_url}/{quote(service, safe='')}/{quote(key, safe='')}/{handler}"
        )

    async def send(
        self,
        service: str,
        key: str,
        handler: str,
        body: Any = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Enqueue an invocation (`/send`); returns once the server accepted it durably."""
        headers = {"idempotency-key": idempotency_key} if idempotency_key else None
        answer: dict[str, Any] = await self.request(
            "POST", self.handler_url(service, key, handler) + "/send", body, headers=headers
        )
        return answer

    def attach_url(self, service: str, key: str) -> str:
        return (
            f"{self.address.ingress_url}/restate/workflow/"
            f"{quote(service, safe='')}/{quote(key, safe='')}/attach"
        )


def transient(exc: BaseException) -> bool:
    """A failure worth retrying while a server restarts: no connection, a reset, a
    timeout, or a 5xx."""
    if isinstance(exc, RestateHTTPError):
        return exc.status in TRANSIENT_STATUS
    return isinstance(exc, aiohttp.ClientError | TimeoutError | ConnectionError)
