"""The tool service's MCP door as a specification, against the real process on loopback
with the official SDK's client: the scenario's tools as MCP tools, the same ledger and
idempotency as plain HTTP, the key in the request's `_meta`, and sessions that do not
survive a restart of the service (the act phase opens a new one and goes on)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from harness.agent import AgentContext, act
from harness.mcptools import McpToolClient, SessionLost
from harness.measure import Recorder, read_rows
from harness.scenario import ToolTransport
from harness.services.tools_mcp import CALL_META, MCP_PATH
from harness.workload import decide, idempotency_key, tool_output

if TYPE_CHECKING:
    from conftest import Services

pytest.importorskip("mcp")

RUN_ID = "run-000003"
TOOL = "search_supplier"
ARGUMENTS = {"item": "sku-0042", "quantity": 3, "amount_cents": 12_345, "counterparty": "party-07"}


def call_meta(step: int = 1, attempt: int = 1, key: str | None = None) -> dict[str, Any]:
    key = key if key is not None else idempotency_key(RUN_ID, step, attempt)
    return {CALL_META: {"run_id": RUN_ID, "step": step, "attempt": attempt, "idempotency_key": key}}


async def ledger(services: Services) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.get(f"{services.tools_url}/ledger") as r:
        entries: list[dict[str, Any]] = await r.json()
        return entries


def mcp_context(services: Services, http: aiohttp.ClientSession, rows: Path) -> AgentContext:
    scenario = services.scenario.model_copy(
        update={"tool_transport": ToolTransport(transport="mcp")}
    )
    return AgentContext(
        scenario=scenario,
        http=http,
        llm_url=services.llm_url,
        tools_url=services.tools_url,
        recorder=Recorder(rows, backend="test", worker="w0"),
    )


async def test_the_scenario_tools_are_listed_as_mcp_tools(services: Services) -> None:
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async with (
        streamable_http_client(f"{services.tools_url}{MCP_PATH}") as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        listed = await session.list_tools()
    assert [t.name for t in listed.tools] == list(services.scenario.tools)
    assert all(t.input_schema["type"] == "object" for t in listed.tools)


async def test_a_call_answers_the_workload_output_and_lands_in_the_same_ledger(
    services: Services,
) -> None:
    client = McpToolClient(f"{services.tools_url}{MCP_PATH}")
    try:
        first = await client.call(TOOL, ARGUMENTS, call_meta())
        again = await client.call(TOOL, ARGUMENTS, call_meta())
    finally:
        await client.aclose()
    expected = tool_output(services.scenario, RUN_ID, 1, 1, TOOL, ARGUMENTS)
    assert (first.status, first.body) == (200, {"output": expected, "applied": True})
    assert (again.status, again.body) == (200, {"output": expected, "applied": False})
    assert first.service_ms > 0
    entries = await ledger(services)
    assert [(e["applied"], e["idempotency_key"]) for e in entries] == [
        (True, f"{RUN_ID}/1/1"),
        (False, f"{RUN_ID}/1/1"),
    ]
    assert entries[0]["request"] == {
        "run_id": RUN_ID,
        "step": 1,
        "attempt": 1,
        "idempotency_key": f"{RUN_ID}/1/1",
        "arguments": ARGUMENTS,  # the tool's own arguments: the key is not one of them
        "transport": "mcp",
    }


async def test_the_key_may_travel_as_an_argument_for_clients_without_meta(
    services: Services,
) -> None:
    client = McpToolClient(f"{services.tools_url}{MCP_PATH}")
    try:
        answer = await client.call(TOOL, {**ARGUMENTS, "_durabench": call_meta()[CALL_META]}, {})
    finally:
        await client.aclose()
    assert answer.status == 200
    [entry] = await ledger(services)
    assert entry["request"]["arguments"] == ARGUMENTS


async def test_a_call_without_its_key_or_of_an_unknown_tool_is_an_error_and_not_recorded(
    services: Services,
) -> None:
    client = McpToolClient(f"{services.tools_url}{MCP_PATH}")
    try:
        keyless = await client.call(TOOL, ARGUMENTS, {})
        unknown = await client.call("launch_missiles", ARGUMENTS, call_meta())
    finally:
        await client.aclose()
    assert keyless.status == 400
    assert CALL_META in keyless.body["error"]
    assert unknown.status == 404
    assert "launch_missiles" in unknown.body["error"]
    assert await ledger(services) == []


async def test_an_injected_tool_error_reaches_the_client_as_its_status(
    services: Services,
) -> None:
    async with aiohttp.ClientSession() as http:
        url = f"{services.tools_url}/_durabench/faults"
        async with http.put(url, json={"error_status": 503}) as r:
            assert r.status == 200
        client = McpToolClient(f"{services.tools_url}{MCP_PATH}")
        try:
            answer = await client.call(TOOL, ARGUMENTS, call_meta())
        finally:
            await client.aclose()
    assert answer.status == 503
    assert await ledger(services) == []


async def test_act_over_mcp_records_the_same_rows_as_over_http(
    services: Services, tmp_path: Path
) -> None:
    rows_dir = tmp_path / "rows"
    decision = decide(services.scenario, RUN_ID, 0, 1)
    key = idempotency_key(RUN_ID, 0, 1)
    async with aiohttp.ClientSession() as http:
        ctx = mcp_context(services, http, rows_dir)
        first = await act(ctx, RUN_ID, 0, 1, decision, key)
        again = await act(ctx, RUN_ID, 0, 1, decision, key)
        ctx.recorder.close()
        await ctx.mcp_tools().aclose()
    expected = tool_output(services.scenario, RUN_ID, 0, 1, decision.tool, decision.arguments)
    assert first == again == expected
    rows = read_rows(rows_dir)
    assert [(r["phase"], r["outcome"], r.get("extra")) for r in rows] == [
        ("act", "invoke", None),
        ("act", "ok", {"applied": True}),
        ("act", "invoke", None),
        ("act", "ok", {"applied": False}),
    ]
    assert all(r["service_ms"] > 0 for r in rows if r["outcome"] == "ok")


async def test_a_restart_of_the_tool_service_ends_the_session_and_act_opens_a_new_one(
    services: Services, tmp_path: Path
) -> None:
    """MCP sessions live in the server's memory: after a restart the old session id is
    unknown (404). The act phase sees the session gone, opens another and retries with
    the same key; the ledger, on disk, kept what was applied before."""
    async with aiohttp.ClientSession() as http:
        ctx = mcp_context(services, http, tmp_path / "rows")
        client = ctx.mcp_tools()
        before = decide(services.scenario, RUN_ID, 0, 1)
        await act(ctx, RUN_ID, 0, 1, before, idempotency_key(RUN_ID, 0, 1))
        await asyncio.to_thread(services.platform.restart, "tools")
        after = decide(services.scenario, RUN_ID, 1, 1)
        output = await act(ctx, RUN_ID, 1, 1, after, idempotency_key(RUN_ID, 1, 1))
        ctx.recorder.close()
        await client.aclose()
    assert output == tool_output(services.scenario, RUN_ID, 1, 1, after.tool, after.arguments)
    assert client.sessions == 2
    [*_, retried] = [r for r in read_rows(tmp_path / "rows") if r["outcome"] == "ok"]
    assert retried["retries"] >= 1
    assert "session" in retried["error"].lower()
    assert [(e["step"], e["applied"]) for e in await ledger(services)] == [(0, True), (1, True)]


async def test_a_call_in_flight_when_the_service_dies_fails_as_session_lost(
    services: Services,
) -> None:
    """A killed server breaks the SDK's transport under every call in flight on it: the
    client says the session is lost (the call's fate is unknown to it), never hangs."""
    client = McpToolClient(f"{services.tools_url}{MCP_PATH}")
    try:
        await client.call(TOOL, ARGUMENTS, call_meta(step=0))  # the session is open
        async with aiohttp.ClientSession() as http:
            url = f"{services.tools_url}/_durabench/faults"
            async with http.put(url, json={"extra_latency_ms": 60_000}) as r:
                assert r.status == 200
        in_flight = asyncio.create_task(client.call(TOOL, ARGUMENTS, call_meta(step=1)))
        await asyncio.sleep(0.5)
        services.platform.signal("tools", signal.SIGKILL)
        with pytest.raises(SessionLost, match=f"during {TOOL}"):
            await asyncio.wait_for(in_flight, 20)
    finally:
        await client.aclose()
