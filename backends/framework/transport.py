"""The measured HTTP transport under a framework's model client (the OpenAI SDK's
`httpx2` client, which Pydantic AI, the OpenAI Agents SDK and LangChain all use).

A framework makes its model requests itself, so the reason phase is timed here: each
request is read as the simulated LLM reads it (`infer_position`) and recorded as one
`reason` row of that (run, step, attempt), with the service time the provider reports.
The `commit` row of a step is written when the framework's next model request for the
run carries that step's committing verdict: the framework has then moved past the
step, which for Temporal means the tool activity's result is in the history (the next
model activity was scheduled after it), and for a LangGraph checkpointer that the
tools node's checkpoint was written before the model node ran (durability `sync`).
Requests that are not a tagged conversation pass through untouched.
"""

from __future__ import annotations

import json
from typing import Any

import httpx2

from backends.framework.runtime import current
from harness.services.common import SERVICE_TIME_HEADER
from harness.services.conversation import Position, infer_position

__all__ = ["MeasuredTransport", "measured_client"]

DROPPED_HEADERS = frozenset({"content-length", "transfer-encoding", "content-encoding"})


class MeasuredTransport(httpx2.AsyncBaseTransport):
    """Wraps a real transport; records reason and commit rows on the worker's Recorder."""

    def __init__(self, inner: httpx2.AsyncBaseTransport | None = None) -> None:
        self.inner = inner or httpx2.AsyncHTTPTransport()
        self._committed: set[tuple[str, int]] = set()

    def _position(self, request: httpx2.Request) -> Position | None:
        try:
            body = json.loads(request.content)
            return infer_position(current().scenario, body["messages"])
        except (ValueError, KeyError, TypeError, httpx2.RequestNotRead):
            return None

    def _commit(self, position: Position) -> None:
        last = position.last
        if last is None or last.move != "commit":
            return
        key = (position.run_id, last.step)
        if key in self._committed:
            return
        self._committed.add(key)
        recorder = current().context.recorder
        with recorder.phase(position.run_id, last.step, last.attempt, "commit") as row:
            row.extra = {"seen": "next model request"}

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        position = self._position(request)
        if position is None:
            return await self.inner.handle_async_request(request)
        self._commit(position)
        if position.kind in ("final", "aborted"):
            return await self._forward(request, None)
        recorder = current().context.recorder
        with recorder.phase(position.run_id, position.step, position.attempt, "reason") as row:
            response = await self._forward(request, row)
            row.extra = {"framework_call": position.kind}
            if response.status_code != 200:
                row.outcome = "fail"
                row.error = f"HTTP {response.status_code}"
            return response

    async def _forward(self, request: httpx2.Request, row: Any) -> httpx2.Response:
        """The inner answer, read whole (the phase ends when the answer is in)."""
        response = await self.inner.handle_async_request(request)
        content = await response.aread()
        if row is not None:
            row.service_ms = float(response.headers.get(SERVICE_TIME_HEADER, 0.0))
        await response.aclose()
        headers = [(k, v) for k, v in response.headers.items() if k.lower() not in DROPPED_HEADERS]
        return httpx2.Response(
            response.status_code,
            headers=headers,
            content=content,
            request=request,
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self.inner.aclose()


def measured_client(timeout_s: float = 600.0) -> httpx2.AsyncClient:
    """An `httpx2` client whose requests go through a `MeasuredTransport`."""
    return httpx2.AsyncClient(transport=MeasuredTransport(), timeout=timeout_s)
