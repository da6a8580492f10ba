"""Contract tests for `cloudflare:account`: a real account cannot be reached from here,
so the REST client is held to Cloudflare's documented Workflows API shapes
(developers.cloudflare.com/api/resources/workflows/subresources/instances) against a
stand-in on 127.0.0.1 that answers exactly those shapes, and the variant's checks and
secret handling are tested directly. Nothing here talks to Cloudflare."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web

from backends.base import load_backend
from backends.cloudflare.account import AccountApi, AccountTarget, deploy_command
from backends.cloudflare.client import NoInstance
from backends.cloudflare.history import Recorded
from harness.errors import BackendError

ACCOUNT, TOKEN = "0123456789abcdef", "test-token-secret-value"
ROOT = f"/client/v4/accounts/{ACCOUNT}/workflows/durabench-agent-agent/instances"


class StandIn:
    """The documented endpoints, recording every request."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, Any, str]] = []
        self.instances: dict[str, dict[str, Any]] = {}

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else None
        self.requests.append(
            (request.method, request.path, body, request.headers.get("Authorization", ""))
        )
        if request.path == ROOT and request.method == "POST":
            self.instances[body["instance_id"]] = {"status": "queued", "params": body["params"]}
            return web.json_response({"success": True, "result": {"id": body["instance_id"]}})
        instance = request.path.removeprefix(ROOT + "/").split("/")[0]
        if instance not in self.instances:
            return web.json_response({"success": False, "errors": [{"code": 404}]}, status=404)
        if request.method == "GET":
            steps = [
                {
                    "name": "reason-0-1",
                    "type": "step",
                    "success": True,
                    "output": json.dumps(
                        {
                            "phase": "reason",
                            "step": 0,
                            "attempt": 1,
                            "decision": {"tool": "t", "arguments": {}, "thought": ""},
                        }
                    ),
                },
                {"name": "approval-0", "type": "waitForEvent", "success": True, "output": {"x": 1}},
                {
                    "name": "act-0-1",
                    "type": "step",
                    "success": True,
                    "output": {"phase": "act", "step": 0, "attempt": 1, "key": "k", "output": {}},
                },
                {"name": "act-0-2", "type": "step", "success": False, "output": None},
            ]
            result = {"status": "running", "steps": steps, "output": None, "error": None}
            return web.json_response({"success": True, "result": result})
        if request.method == "PATCH":
            self.instances[instance]["status"] = body["status"]
        return web.json_response({"success": True, "result": {}})


@asynccontextmanager
async def stand_in() -> AsyncIterator[tuple[StandIn, str]]:
    server = StandIn()
    runner = web.AppRunner(server.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield server, f"http://127.0.0.1:{port}/client/v4"
    finally:
        await runner.cleanup()


async def test_account_contract_requests_follow_the_documented_api() -> None:
    async with stand_in() as (server, base):
        await _drive(base)
    _check(server)


async def _drive(base: str) -> None:
    api = AccountApi(ACCOUNT, TOKEN, base)
    try:
        await api.create("agent", "db-x-run-000000", {"run_id": "run-000000"})
        snapshot = await api.status("agent", "db-x-run-000000")
        # the successful steps' outputs (a JSON string parsed), not the event wait nor a
        # failed step
        assert snapshot.status == "running"
        assert set(Recorded(snapshot.outputs).outputs) == {("reason", 0, 1), ("act", 0, 1)}
        await api.send_event("agent", "db-x-run-000000", "approve", {"approved": True})
        await api.terminate("agent", "db-x-run-000000")
        with pytest.raises(NoInstance):
            await api.status("agent", "db-x-missing")
    finally:
        await api.close()


def _check(server: StandIn) -> None:
    methods = [(m, p.removeprefix(ROOT)) for m, p, _, _ in server.requests]
    assert methods == [
        ("POST", ""),
        ("GET", "/db-x-run-000000"),
        ("POST", "/db-x-run-000000/events/approve"),
        ("PATCH", "/db-x-run-000000/status"),
        ("GET", "/db-x-missing"),
    ]
    assert server.requests[0][2] == {
        "instance_id": "db-x-run-000000",
        "params": {"run_id": "run-000000"},
    }
    assert server.requests[2][2] == {"approved": True}
    assert server.requests[3][2] == {"status": "terminate"}
    assert {auth for *_, auth in server.requests} == {f"Bearer {TOKEN}"}


async def test_account_contract_an_api_error_is_a_backend_error() -> None:
    async with stand_in() as (_, base):
        api = AccountApi(ACCOUNT, TOKEN, base.replace("/client/v4", "/elsewhere"))
        try:
            with pytest.raises(BackendError):
                await api.create("agent", "db-y", {})
        finally:
            await api.close()


def test_account_contract_every_missing_setting_is_named_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CLOUDFLARE_API_TOKEN", raising=False)
    monkeypatch.delenv("CLOUDFLARE_ACCOUNT_ID", raising=False)
    target = AccountTarget(
        "CLOUDFLARE_ACCOUNT_ID", "CLOUDFLARE_API_TOKEN", "http://127.0.0.1:9", None
    )
    with pytest.raises(BackendError) as caught:
        target.check(None)
    message = str(caught.value)
    for part in ("set CLOUDFLARE_ACCOUNT_ID", "set CLOUDFLARE_API_TOKEN", "llm_url=", "tools_url="):
        assert part in message


def test_account_contract_secrets_stay_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_CF_TOKEN", TOKEN)
    monkeypatch.setenv("MY_CF_ACCOUNT", ACCOUNT)
    backend: Any = load_backend(
        "cloudflare:account?token_env=MY_CF_TOKEN&account_id_env=MY_CF_ACCOUNT"
        "&llm_url=https://llm.example.test&tools_url=https://tools.example.test"
    )
    described = json.dumps(backend.describe())
    assert TOKEN not in described and ACCOUNT not in described
    assert "MY_CF_TOKEN" in described
    assert TOKEN not in " ".join(deploy_command("/tmp/wrangler.json"))
    assert backend.crash_points() == []
