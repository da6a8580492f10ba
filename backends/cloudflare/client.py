"""Talking to Workflow instances: through the Worker's own HTTP routes on the local
runtime (src/index.js), or through Cloudflare's REST API for a deployed Worker
(account.py). Both answer with the same `Snapshot`: the instance's status and its
persisted step outputs, as the Workflows API returns them.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

import aiohttp

from harness.errors import BackendError

__all__ = ["InstanceApi", "LocalApi", "NoInstance", "Snapshot"]

REQUEST_TIMEOUT_S = 30.0
RETRIES = 40  # a request that meets a restarting runtime is tried again
RETRY_S = 0.25


class NoInstance(BackendError):
    """The runtime knows no such instance."""


@dataclass(frozen=True)
class Snapshot:
    """One instance as the Workflows API reads it back."""

    status: str  # queued | running | paused | errored | terminated | complete | waiting | ...
    outputs: list[Any] = field(default_factory=list)  # persisted step outputs, in order
    output: Any = None  # the Workflow's return value, once complete
    error: Any = None
    size: int = 0  # bytes of the status answer: what the runtime persisted for the run


class InstanceApi(Protocol):
    async def create(self, workflow: str, instance: str, params: dict[str, Any]) -> None: ...

    async def status(self, workflow: str, instance: str) -> Snapshot: ...

    async def wait(self, workflow: str, instance: str, ms: int) -> Snapshot: ...

    async def send_event(self, workflow: str, instance: str, kind: str, payload: Any) -> None: ...

    async def terminate(self, workflow: str, instance: str) -> None: ...

    async def boot(self) -> str | None: ...

    async def close(self) -> None: ...


class LocalApi:
    """The Worker's routes on the local runtime (127.0.0.1)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
            connector=aiohttp.TCPConnector(limit=0),
        )

    async def _call(self, method: str, path: str, body: Any = None, retries: int = RETRIES) -> Any:
        last = ""
        for _ in range(retries):
            try:
                async with self.http.request(method, self.base_url + path, json=body) as response:
                    data = await response.json(content_type=None)
                    if response.status == 404:
                        raise NoInstance(str(data.get("error", path)))
                    if response.status == 200:
                        return data
                    last = f"{response.status}: {data.get('error', data)}"
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            await asyncio.sleep(RETRY_S)
        raise BackendError(f"cloudflare: {method} {path} failed: {last}")

    @staticmethod
    def _path(workflow: str, instance: str, tail: str = "") -> str:
        return f"/instances/{workflow}/{quote(instance, safe='')}{tail}"

    @staticmethod
    def _snapshot(data: dict[str, Any], size: int) -> Snapshot:
        return Snapshot(
            str(data.get("status")),
            list(data.get("__LOCAL_DEV_STEP_OUTPUTS") or []),
            data.get("output"),
            data.get("error"),
            size,
        )

    async def create(self, workflow: str, instance: str, params: dict[str, Any]) -> None:
        await self._call(
            "POST", "/instances", {"workflow": workflow, "id": instance, "params": params}
        )

    async def _read(self, path: str) -> Snapshot:
        for attempt in range(RETRIES):
            try:
                async with self.http.get(self.base_url + path) as response:
                    raw = await response.read()
                    if response.status == 404:
                        raise NoInstance(path)
                    if response.status == 200:
                        return self._snapshot(json.loads(raw), len(raw))
            except (aiohttp.ClientError, TimeoutError, ValueError):
                pass
            if attempt + 1 < RETRIES:
                await asyncio.sleep(RETRY_S)
        raise BackendError(f"cloudflare: GET {path} failed {RETRIES} times")

    async def status(self, workflow: str, instance: str) -> Snapshot:
        return await self._read(self._path(workflow, instance))

    async def wait(self, workflow: str, instance: str, ms: int) -> Snapshot:
        return await self._read(self._path(workflow, instance, f"/wait?ms={ms}"))

    async def send_event(self, workflow: str, instance: str, kind: str, payload: Any) -> None:
        await self._call(
            "POST", self._path(workflow, instance, f"/events/{kind}"), {"payload": payload}
        )

    async def terminate(self, workflow: str, instance: str) -> None:
        await self._call("POST", self._path(workflow, instance, "/terminate"), {})

    async def boot(self) -> str | None:
        """The runtime's lifetime id (a new one after every restart), None when it is down."""
        try:
            data = await self._call("GET", "/health", retries=1)
        except BackendError:
            return None
        return str(data["boot"])

    async def close(self) -> None:
        await self.http.close()
