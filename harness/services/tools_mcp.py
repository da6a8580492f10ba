"""The tool service's second door: the Model Context Protocol over streamable HTTP.

The scenario's tools are MCP tools (`tools/list`, `tools/call`) served by the official
SDK's low-level server at `/mcp` on the tool service's own port, so the fault proxy's
`worker->tools` link, a restart of the `tools` component and the ledger are the same
for both transports. Every call goes through `harness.services.tools.perform`: the
same latency, fault switches, outputs and ledger as `POST /tools/{name}`.

The idempotency key travels in the request's `_meta` (the arguments stay the tool's
own, what the model chose):

    _meta: {"durabench/call": {"run_id": ..., "step": ..., "attempt": ...,
                               "idempotency_key": ...}}

A client that cannot set request metadata may put the same object in the arguments
under `_durabench` instead; it is taken out before the arguments are recorded.

Sessions are stateful (the initialize handshake, an `Mcp-Session-Id`) and live in
this process's memory only: after a restart every old session id answers 404, and
a client must open a new session. The SDK speaks ASGI; `asgi_handler` serves it from
aiohttp, the tool service's server.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

from harness.scenario import Scenario

__all__ = [
    "ARGUMENTS_SCHEMA",
    "CALL_META",
    "MCP_PATH",
    "SERVICE_MS_META",
    "add_mcp_routes",
]

MCP_PATH = "/mcp"
CALL_META = "durabench/call"  # the request `_meta` key carrying run, step, attempt, key
CALL_ARGUMENT = "_durabench"  # the same object as an argument, for clients without _meta
SERVICE_MS_META = "durabench/service_ms"  # in the result's `_meta`: time inside the service
DISCONNECT_POLL_S = 0.5
ARGUMENTS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "item": {"type": "string"},
        "quantity": {"type": "integer"},
        "amount_cents": {"type": "integer"},
        "counterparty": {"type": "string"},
    },
}

Perform = Callable[[web.Application, Any], Awaitable[Any]]  # tools.perform(app, ToolCall)
MANAGER_KEY: web.AppKey[Any] = web.AppKey("mcp_manager")
STOPPING_KEY: web.AppKey[asyncio.Event] = web.AppKey("mcp_stopping", asyncio.Event)


def _call_fields(params: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(run/step/attempt/key, the tool's own arguments) from a `tools/call`'s params."""
    arguments = dict(params.arguments or {})
    fields = (params.meta or {}).get(CALL_META)
    inline = arguments.pop(CALL_ARGUMENT, None)
    if fields is None:
        fields = inline
    if not isinstance(fields, dict):
        raise KeyError(f"_meta[{CALL_META!r}] (or the {CALL_ARGUMENT!r} argument) is missing")
    return dict(fields), arguments


def _result(status: int, body: dict[str, Any], service_ms: float, retry: float | None) -> Any:
    import mcp.types as types

    meta: dict[str, Any] = {SERVICE_MS_META: round(service_ms, 3)}
    if status == 200:
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=json.dumps(body["output"]))],
            structured_content=body,
            _meta=meta,
        )
    error = {"status": status, "error": body.get("error"), "retry_after_s": retry}
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=json.dumps(error))],
        structured_content=error,
        is_error=True,
        _meta=meta,
    )


def _server(app: web.Application, scenario: Scenario, perform: Perform, parse: Any) -> Any:
    """The SDK's low-level server with the scenario's tools."""
    import mcp.types as types
    from mcp.server.lowlevel import Server

    tools = [
        types.Tool(name=name, description=f"durabench tool {name}", input_schema=ARGUMENTS_SCHEMA)
        for name in scenario.tools
    ]

    async def list_tools(ctx: Any, params: Any) -> Any:
        return types.ListToolsResult(tools=tools)

    async def call_tool(ctx: Any, params: Any) -> Any:
        try:
            fields, arguments = _call_fields(params)
            call = parse(params.name, {**fields, "arguments": arguments}, "mcp")
        except (ValueError, KeyError, TypeError) as exc:
            return _result(400, {"error": f"bad tool request: {exc!r}"}, 0.0, None)
        answer = await perform(app, call)
        return _result(answer.status, answer.body, answer.service_ms, answer.retry_after_s)

    return Server("durabench-tools", on_list_tools=list_tools, on_call_tool=call_tool)


def _scope(request: web.Request) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": f"{request.version.major}.{request.version.minor}",
        "method": request.method,
        "scheme": request.scheme,
        "path": request.path,
        "raw_path": request.raw_path.split("?", 1)[0].encode(),
        "root_path": "",
        "query_string": request.query_string.encode(),
        "headers": [(k.lower(), v) for k, v in request.raw_headers],
        "client": None,
        "server": None,
    }


async def asgi_handler(request: web.Request) -> web.StreamResponse:
    """Serve one HTTP request through the SDK's ASGI session manager. The body is read
    whole (MCP messages are small); a disconnect is noticed when the connection closes
    or the service stops; what the app sends after that is dropped, as ASGI servers do."""
    manager = request.app[MANAGER_KEY]
    stopping = request.app[STOPPING_KEY]
    body = await request.read()
    delivered = False
    start: dict[str, Any] = {}
    response: web.StreamResponse | None = None

    def gone() -> bool:
        transport = request.transport
        return transport is None or transport.is_closing() or stopping.is_set()

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        while not gone():
            await asyncio.sleep(DISCONNECT_POLL_S)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal response
        if message["type"] == "http.response.start":
            start.update(message)
            return
        if message["type"] != "http.response.body" or gone():
            return
        if response is None:
            response = web.StreamResponse(status=int(start.get("status", 500)))
            for key, value in start.get("headers", ()):
                response.headers.add(key.decode("latin-1"), value.decode("latin-1"))
            await response.prepare(request)
        try:
            await response.write(message.get("body", b""))
            if not message.get("more_body", False):
                await response.write_eof()
        except ConnectionError:
            pass  # the client went away: nothing more to say to it

    await manager.handle_request(_scope(request), receive, send)
    if response is None:
        response = web.Response(status=int(start.get("status", 500)))
    return response


async def _not_installed(request: web.Request) -> web.Response:
    return web.json_response(
        {"error": "this tool service has no MCP support: install durabench[mcp]"}, status=501
    )


def add_mcp_routes(app: web.Application, scenario: Scenario, perform: Perform, parse: Any) -> None:
    """Mount `/mcp`; the SDK's session manager runs for as long as the app does (in a
    task of its own: anyio scopes are entered and left by the same task)."""
    try:
        from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
    except ImportError:
        app.router.add_route("*", MCP_PATH, _not_installed)
        return
    server = _server(app, scenario, perform, parse)
    app[MANAGER_KEY] = StreamableHTTPSessionManager(
        app=server, json_response=scenario.tool_transport.mcp_responses == "json"
    )
    app[STOPPING_KEY] = asyncio.Event()

    async def run_manager(app: web.Application) -> AsyncIterator[None]:
        ready = asyncio.Event()

        async def hold() -> None:
            async with app[MANAGER_KEY].run():
                ready.set()
                await app[STOPPING_KEY].wait()

        task = asyncio.create_task(hold())
        waiting = asyncio.create_task(ready.wait())
        await asyncio.wait((task, waiting), return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        if task.done():
            task.result()  # the manager could not start: say why
        yield
        app[STOPPING_KEY].set()
        await task

    async def stop_streams(app: web.Application) -> None:
        app[STOPPING_KEY].set()  # open SSE streams end, so shutdown need not wait them out

    app.cleanup_ctx.append(run_manager)
    app.on_shutdown.append(stop_streams)
    app.router.add_route("*", MCP_PATH, asgi_handler)
