"""The baseline worker: the RAV loop with state in process memory and nothing else.

It serves its runs over HTTP so the backend can start, approve and read them.
Kill it and every run it held is gone: that is the baseline's purpose.

Run as `python -m backends.baseline.worker --port P --scenario F ...` (`WorkerArgs`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from backends.workercli import NoOptions, WorkerArgs
from harness.agent import AgentContext, drive_step
from harness.scenario import load_scenario
from harness.services.common import add_common_routes, run_app
from harness.state import RunState, RunStatus, StepRecord
from harness.workload import final_answer

__all__ = ["build_app", "main"]


@dataclass
class RunSlot:
    """One run held in memory."""

    run_id: str
    status: RunStatus = "running"
    steps: list[StepRecord] = field(default_factory=list)
    answer: str | None = None
    error: str | None = None
    approved: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    def snapshot(self) -> RunState:
        return RunState(self.run_id, self.status, tuple(self.steps), self.answer)


CTX_KEY: web.AppKey[AgentContext] = web.AppKey("ctx", AgentContext)
RUNS_KEY: web.AppKey[dict[str, RunSlot]] = web.AppKey("runs", dict)


async def run_agent(ctx: AgentContext, slot: RunSlot) -> None:
    """The plain loop: drive each step, keep it in memory (the 'commit'), then finish."""
    scenario = ctx.scenario
    try:
        for step in range(scenario.steps):
            outcome = await drive_step(ctx, slot.run_id, step)
            with ctx.recorder.phase(slot.run_id, step, outcome.record.attempts, "commit"):
                slot.steps.append(outcome.record)
            if outcome.move == "abort":
                slot.status = "aborted"
                return
            approval = scenario.approval
            if approval is not None and approval.after_step == step:
                slot.status = "waiting_approval"
                with ctx.recorder.phase(
                    slot.run_id, step, outcome.record.attempts, "approval"
                ) as row:
                    try:
                        await asyncio.wait_for(slot.approved.wait(), approval.ttl_s)
                    except TimeoutError:
                        row.outcome = "fail"
                        slot.status = "expired"
                        return
                slot.status = "running"
        slot.answer = final_answer(slot.run_id, [s.output for s in slot.steps])
        slot.status = "completed"
    except Exception as exc:  # the run is stuck, as it would be in production
        slot.error = f"{type(exc).__name__}: {exc}"
    finally:
        slot.done.set()


async def _start(request: web.Request) -> web.Response:
    body = await request.json()
    run_id = str(body["run_id"])
    runs = request.app[RUNS_KEY]
    if run_id in runs:
        return web.json_response({"error": f"run {run_id} exists"}, status=409)
    slot = RunSlot(run_id)
    runs[run_id] = slot
    slot.task = asyncio.create_task(run_agent(request.app[CTX_KEY], slot))
    return web.json_response({"accepted": run_id}, status=202)


def _slot(request: web.Request) -> RunSlot:
    try:
        return request.app[RUNS_KEY][request.match_info["run_id"]]
    except KeyError:
        raise web.HTTPNotFound(text="unknown run") from None


async def _get(request: web.Request) -> web.Response:
    slot = _slot(request)
    return web.json_response({"state": slot.snapshot().to_dict(), "error": slot.error})


async def _wait(request: web.Request) -> web.Response:
    slot = _slot(request)
    timeout = float(request.query.get("timeout", "30"))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(slot.done.wait(), timeout)
    return web.json_response({"done": slot.done.is_set(), "status": slot.status})


async def _approve(request: web.Request) -> web.Response:
    _slot(request).approved.set()
    return web.json_response({"approved": True})


def build_app(ctx_factory: AgentContextFactory) -> web.Application:
    app = web.Application()
    add_common_routes(app)
    app[RUNS_KEY] = {}

    async def context(app: web.Application) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
        async with aiohttp.ClientSession(connector=connector) as http:
            app[CTX_KEY] = ctx_factory(http)
            yield
            for slot in app[RUNS_KEY].values():
                if slot.task is not None:
                    slot.task.cancel()
            app[CTX_KEY].recorder.close()

    app.cleanup_ctx.append(context)
    app.router.add_post("/runs", _start)
    app.router.add_get("/runs/{run_id}", _get)
    app.router.add_get("/runs/{run_id}/wait", _wait)
    app.router.add_post("/runs/{run_id}/approve", _approve)
    return app


class AgentContextFactory:
    """Builds the worker's AgentContext once its HTTP session exists."""

    def __init__(self, args: WorkerArgs[NoOptions]) -> None:
        self.args = args

    def __call__(self, http: aiohttp.ClientSession) -> AgentContext:
        return self.args.agent_context(load_scenario(self.args.scenario), http)


def main(argv: list[str] | None = None) -> None:
    args = WorkerArgs.parse(
        NoOptions, argv, description="durabench baseline worker (no durability)", needs_port=True
    )
    assert args.port is not None
    run_app(build_app(AgentContextFactory(args)), args.host, args.port)


if __name__ == "__main__":
    main()
