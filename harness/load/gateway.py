"""The run gateway: where Locust's users start agent runs, inside the harness process.

Locust users (in Locust's gevent processes, possibly on other machines) ask the gateway
to start a run; the gateway starts it through the backend's own client (`backend.start`,
exactly as the closed loop does), then waits for it in the background (`backend.wait`,
approvals included) whether or not the user waits too. So every run started under load
is tracked to its end and judged, even when the user that started it stopped early.

The gateway allocates the run ids (`run-000000`, `run-000001`, ...): unique across every
user and worker, and valid logical ids the oracle derives the workload from. It stops
accepting once the run budget is spent (HTTP 410), which is how a Locust test of a fixed
number of runs ends.

    GET  /info              backend name, deadline, budget
    POST /runs              start the next run -> 202 {"run_id"} | 410 budget spent | 503
    GET  /runs/{id}?wait=S  wait up to S seconds -> {"done", "in_time", "finished"}
    GET  /status            started, finished, in_flight, exhausted
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from backends.base import Backend
from harness.platform.base import free_port
from harness.runner import RunTiming, await_run, start_run
from harness.scenario import Scenario

__all__ = ["WORKER_HEADER", "GatewayStatus", "RunGateway"]

WORKER_HEADER = "X-Durabench-Worker"  # which Locust worker asked (its worker index)
WAIT_POLL_LIMIT_S = 600.0  # the longest one wait request may hold


@dataclass(frozen=True)
class GatewayStatus:
    started: int
    finished: int
    refused: int
    exhausted: bool

    @property
    def in_flight(self) -> int:
        return self.started - self.finished


@dataclass
class RunGateway:
    """Start runs on request, track each to its end; `drain` returns every run's timing."""

    name: str  # the backend's name, as Locust labels its requests
    scenario: Scenario
    backend: Backend
    budget: int | None = None  # runs to accept in total (None: no limit)
    host: str = "127.0.0.1"
    port: int = 0  # 0: any free port
    advertise_host: str | None = None  # what Locust workers on other machines dial
    on_finished: Callable[[int, int], None] | None = None  # (finished, started)
    on_first_start: Callable[[], None] | None = None  # called once, before the first run
    _next: int = 0
    _refused: int = 0
    started_by: dict[str, int] = field(default_factory=dict)  # Locust worker -> runs started
    _timings: dict[str, RunTiming] = field(default_factory=dict)
    _tasks: dict[str, asyncio.Task[RunTiming]] = field(default_factory=dict)
    _runner: web.AppRunner | None = None
    url: str = ""

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/info", self._info)
        app.router.add_get("/status", self._status)
        app.router.add_post("/runs", self._start_run)
        app.router.add_get("/runs/{run_id}", self._wait_run)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        port = self.port or free_port()
        await web.TCPSite(self._runner, self.host, port).start()
        self.url = f"http://{self.advertise_host or self.host}:{port}"
        return self.url

    def status(self) -> GatewayStatus:
        exhausted = self.budget is not None and self._next >= self.budget
        return GatewayStatus(self._next, len(self._timings), self._refused, exhausted)

    async def drain(self) -> list[RunTiming]:
        """Every started run's timing, once each has finished or passed its deadline."""
        if self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        return [self._timings[run_id] for run_id in sorted(self._timings)]

    async def stop(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- handlers ------------------------------------------------------------------------

    async def _info(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"backend": self.name, "deadline_s": self.scenario.deadline_s, "budget": self.budget}
        )

    async def _status(self, request: web.Request) -> web.Response:
        s = self.status()
        return web.json_response(
            {
                "started": s.started,
                "finished": s.finished,
                "in_flight": s.in_flight,
                "refused": s.refused,
                "exhausted": s.exhausted,
            }
        )

    async def _start_run(self, request: web.Request) -> web.Response:
        if self.budget is not None and self._next >= self.budget:
            return web.json_response({"error": "run budget spent"}, status=410)
        if self._next == 0 and self.on_first_start is not None:
            self.on_first_start()
        run_id = f"run-{self._next:06d}"  # the oracle's id format (harness.oracle.run_ids)
        self._next += 1
        worker = request.headers.get(WORKER_HEADER, "?")
        self.started_by[worker] = self.started_by.get(worker, 0) + 1
        started = time.time()
        refused = await start_run(self.scenario, self.backend, run_id)
        if refused is not None:
            self._refused += 1
            self._finish(refused)
            return web.json_response({"run_id": run_id, "error": refused.start_error}, status=503)
        self._tasks[run_id] = asyncio.create_task(self._follow(run_id, started))
        return web.json_response({"run_id": run_id}, status=202)

    async def _follow(self, run_id: str, started: float) -> RunTiming:
        try:
            timing = await await_run(self.scenario, self.backend, run_id, started)
        except Exception:  # the client failed while waiting: the checker judges what persisted
            timing = RunTiming(run_id, started, None, False)
        self._finish(timing)
        return timing

    def _finish(self, timing: RunTiming) -> None:
        self._timings[timing.run_id] = timing
        if self.on_finished is not None:
            self.on_finished(len(self._timings), self._next)

    async def _wait_run(self, request: web.Request) -> web.Response:
        run_id = request.match_info["run_id"]
        timing = self._timings.get(run_id)
        task = self._tasks.get(run_id)
        if timing is None and task is None:
            return web.json_response({"error": f"no run {run_id} was started here"}, status=404)
        wait_s = min(float(request.query.get("wait", "0")), WAIT_POLL_LIMIT_S)
        if timing is None and task is not None and wait_s > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), wait_s)
            timing = self._timings.get(run_id)
        return web.json_response(_answer(timing))


def _answer(timing: RunTiming | None) -> dict[str, Any]:
    if timing is None:
        return {"finished": False, "done": False, "in_time": False}
    return {
        "finished": True,
        "done": timing.finished_at is not None,
        "in_time": timing.finished_in_time,
        "error": timing.start_error,
    }
