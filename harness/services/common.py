"""What both simulated services share: argument parsing, health, fault switches."""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from dataclasses import dataclass, replace
from typing import Any

from aiohttp import web

__all__ = [
    "SERVICE_TIME_HEADER",
    "FaultSwitches",
    "add_common_routes",
    "run_app",
    "service_parser",
    "sleep_ms",
    "switches",
]

SERVICE_TIME_HEADER = "x-durabench-service-ms"


@dataclass(frozen=True)
class FaultSwitches:
    """Faults a service injects into its own answers (set at run time by the nemesis).

    `error_status` answered with `error_probability`; 429 carries `Retry-After`.
    `extra_latency_ms` slows every answer; `tools` limits the switch to those tools.
    """

    error_status: int | None = None
    error_probability: float = 1.0
    retry_after_s: float = 1.0
    extra_latency_ms: float = 0.0
    tools: tuple[str, ...] = ()

    def applies_to(self, tool: str | None) -> bool:
        return not self.tools or tool in self.tools

    def error_response(self, rng: random.Random, tool: str | None = None) -> web.Response | None:
        if self.error_status is None or not self.applies_to(tool):
            return None
        if rng.random() >= self.error_probability:
            return None
        headers = {"Retry-After": f"{self.retry_after_s:g}"} if self.error_status == 429 else {}
        return web.json_response(
            {"error": {"message": "injected by durabench", "code": self.error_status}},
            status=self.error_status,
            headers=headers,
        )


@dataclass
class SwitchBoard:
    """The mutable holder of a running service's current fault switches."""

    current: FaultSwitches


SWITCHES_KEY: web.AppKey[SwitchBoard] = web.AppKey("switches", SwitchBoard)


def service_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--scenario", required=True, help="scenario YAML file")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    return parser


async def _health(_: web.Request) -> web.Response:
    return web.json_response({"ok": True, "time": time.time()})


async def _get_switches(request: web.Request) -> web.Response:
    sw = request.app[SWITCHES_KEY].current
    return web.json_response({**sw.__dict__, "tools": list(sw.tools)})


async def _set_switches(request: web.Request) -> web.Response:
    body: dict[str, Any] = await request.json()
    if "tools" in body:
        body["tools"] = tuple(body["tools"])
    try:
        request.app[SWITCHES_KEY].current = replace(FaultSwitches(), **body)
    except TypeError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    return await _get_switches(request)


def add_common_routes(app: web.Application) -> None:
    app[SWITCHES_KEY] = SwitchBoard(FaultSwitches())
    app.router.add_get("/health", _health)
    app.router.add_get("/_durabench/faults", _get_switches)
    app.router.add_put("/_durabench/faults", _set_switches)


def switches(app: web.Application) -> FaultSwitches:
    return app[SWITCHES_KEY].current


def run_app(app: web.Application, host: str, port: int) -> None:
    web.run_app(app, host=host, port=port, print=None, access_log=None, handle_signals=True)


async def sleep_ms(ms: float) -> None:
    if ms > 0:
        await asyncio.sleep(ms / 1000.0)
