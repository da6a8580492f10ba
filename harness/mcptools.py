"""The act phase's MCP client: one session per worker process, opened on first use and
opened again when it is gone.

MCP sessions are not durable. The tool server keeps them in memory, so after its
restart every old session id answers 404 ("Session terminated"); a connection that
breaks mid-call (the server killed, the link reset) ends the SDK's transport and
every call in flight on it. Either way `call` raises `SessionLost`, a transient error:
the act phase retries it, with the backend's idempotency key, on a new session (and
whether that repeats the effect is the backend's key's business, which the ledger
shows). A call's fate on a lost session is unknown to the client (it may have been
applied): the act row records it as `info`, retried.

The SDK's transport and session are anyio task groups, entered and left by one task;
`_Connection` owns that task, and calls from any task of the same event loop go
through its session.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

from harness.errors import DurabenchError

__all__ = ["CONNECT_TIMEOUT_S", "McpToolClient", "SessionLost", "ToolAnswered"]

CONNECT_TIMEOUT_S = 30.0  # opening a session: initialize and list the tools
HTTP_TIMEOUT_S = 30.0  # connect, write, pool
READ_TIMEOUT_S = 300.0  # one call's answer may take minutes (the SDK's default)


class SessionLost(DurabenchError):
    """The MCP session or its connection is gone; the call may or may not have happened."""


@dataclass(frozen=True)
class ToolAnswered:
    """A `tools/call` answer: `status` 200 with `body` {output, applied}, or the error
    status the tool answered (and its Retry-After)."""

    status: int
    body: dict[str, Any]
    service_ms: float
    retry_after_s: float | None = None


@dataclass
class _Connection:
    """One MCP session and the task that holds it open."""

    url: str
    session: Any = None
    dead: asyncio.Event = field(default_factory=asyncio.Event)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    error: BaseException | None = None
    task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        ready = asyncio.Event()
        self.task = asyncio.create_task(self._hold(ready))
        waiting = asyncio.create_task(ready.wait())
        ended = asyncio.create_task(self.dead.wait())
        try:
            done, _ = await asyncio.wait(
                (waiting, ended), timeout=CONNECT_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            waiting.cancel()
            ended.cancel()
        if waiting not in done or self.dead.is_set():
            self.close()
            raise SessionLost(f"cannot open an MCP session at {self.url}: {self._why()}")

    def _why(self) -> str:
        error = self.error
        while isinstance(error, BaseExceptionGroup) and error.exceptions:
            error = error.exceptions[0]
        return "timed out" if error is None else f"{type(error).__name__}: {error}"[:300]

    async def _hold(self, ready: asyncio.Event) -> None:
        import httpx2
        from mcp import ClientSession
        from mcp.client.streamable_http import streamable_http_client

        timeout = httpx2.Timeout(HTTP_TIMEOUT_S, read=READ_TIMEOUT_S)
        try:
            async with (
                httpx2.AsyncClient(timeout=timeout) as http,
                streamable_http_client(self.url, http_client=http) as (read, write),
                ClientSession(read, write) as session,
            ):
                await session.initialize()
                await session.list_tools()
                self.session = session
                ready.set()
                await self.stop.wait()
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # this task itself is cancelled (the worker shuts down)
            self.error = ConnectionError("the MCP transport was cancelled")
        except BaseException as exc:  # the transport's task group ended with an error
            self.error = exc
        finally:
            self.dead.set()

    def close(self) -> None:
        self.stop.set()

    async def call(self, tool: str, arguments: dict[str, Any], meta: dict[str, Any]) -> Any:
        """The SDK's `call_tool`, raced against the connection's end: a call in flight on
        a connection that breaks would otherwise be cancelled or wait for ever."""
        call = asyncio.ensure_future(self.session.call_tool(tool, arguments, meta=meta))
        dead = asyncio.ensure_future(self.dead.wait())
        try:
            await asyncio.wait((call, dead), return_when=asyncio.FIRST_COMPLETED)
        finally:
            dead.cancel()
            if not call.done():
                call.cancel()
                with contextlib.suppress(BaseException):
                    await call
        if call.cancelled() or not call.done():
            raise SessionLost(f"MCP connection lost during {tool}: {self._why()}")
        return call.result()


def _session_gone(exc: Exception) -> bool:
    """The SDK's spelling of "this session id is gone" (a 404) or "the connection closed"."""
    from mcp.shared.exceptions import MCPError
    from mcp_types import CONNECTION_CLOSED, INVALID_REQUEST

    if not isinstance(exc, MCPError):
        return False
    return exc.code == CONNECTION_CLOSED or (
        exc.code == INVALID_REQUEST and "session" in exc.message.lower()
    )


class McpToolClient:
    """The worker's MCP session with the tool service at `url` (…/mcp). `sessions` counts
    the sessions opened (1 + the number of times it was gone)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sessions = 0
        self._current: _Connection | None = None
        self._lock = asyncio.Lock()

    async def _connection(self) -> _Connection:
        async with self._lock:
            current = self._current
            if current is not None and not current.dead.is_set():
                return current
            connection = _Connection(self.url)
            await connection.open()
            self._current = connection
            self.sessions += 1
            return connection

    def _drop(self, connection: _Connection) -> None:
        connection.close()
        if self._current is connection:
            self._current = None

    async def call(
        self, tool: str, arguments: dict[str, Any], meta: dict[str, Any]
    ) -> ToolAnswered:
        """One `tools/call`; SessionLost when the session or the connection is gone."""
        from harness.services.tools_mcp import SERVICE_MS_META

        connection = await self._connection()
        try:
            result = await connection.call(tool, arguments, meta)
        except SessionLost:
            self._drop(connection)
            raise
        except Exception as exc:
            if _session_gone(exc):
                self._drop(connection)
                raise SessionLost(f"MCP session gone during {tool}: {exc}") from None
            raise
        body = result.structured_content if isinstance(result.structured_content, dict) else {}
        service_ms = float((result.meta or {}).get(SERVICE_MS_META, 0.0))
        if not result.is_error:
            return ToolAnswered(200, body, service_ms)
        retry = body.get("retry_after_s")
        return ToolAnswered(
            int(body.get("status", 500)),
            body,
            service_ms,
            float(retry) if retry is not None else None,
        )

    async def aclose(self) -> None:
        """End the session (the server forgets it); a later call opens a new one."""
        async with self._lock:
            current, self._current = self._current, None
        if current is not None:
            current.close()
            if current.task is not None:
                with contextlib.suppress(BaseException):
                    await current.task
