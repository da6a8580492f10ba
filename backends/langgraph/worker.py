"""The LangGraph worker process: claims threads from the claim table and runs the graph.

For each claimed thread it reads the latest checkpoint through the checkpointer and
picks how to invoke: no checkpoint → the initial state (a fresh run, or a run whose
progress was lost); an approval interrupt → `Command(resume=...)` once approved or
expired; otherwise → `ainvoke(None, config)`, LangGraph's resume from the last
checkpoint. It serves `/health` (ready once the saver and claim table are set up)
and, for the memory saver only, `/threads/{id}`: what its in-process checkpointer
holds, because nothing else holds it.

Run as `python -m backends.langgraph.worker --variant V --scenario F ...`; the
Postgres DSN comes from the environment variable DURABENCH_LANGGRAPH_DSN.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import aiohttp
from aiohttp import web
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.types import Command, Durability

from backends.langgraph.graph import (
    AgentGraph,
    ApprovalAnswer,
    compile_graph,
    initial_state,
    read_thread,
    thread_config,
)
from backends.langgraph.queue import (
    CLAIM_BATCH,
    LEASE_S,
    POLL_INTERVAL_S,
    Claim,
    ClaimQueue,
)
from backends.langgraph.savers import CommitAcknowledger
from backends.langgraph.signals import (
    FINISHED_ROUTE,
    WAKE_ROUTE,
    FinishedLog,
    finished_handler,
)
from backends.langgraph.store import DSN_ENV, StoreSpec
from backends.langgraph.variants import footprint, open_claims, open_saver
from backends.workercli import WorkerArgs
from harness.agent import AgentContext
from harness.scenario import Scenario, load_scenario
from harness.services.common import add_common_routes, run_app

__all__ = ["ThreadRunner", "approval_answer", "main"]

MAX_IN_FLIGHT = 512  # threads one worker runs at once
ERROR_BACKOFF_S = 0.5
FINISHED = frozenset({"completed", "aborted", "expired"})


def approval_answer(claim: Claim, now: float) -> ApprovalAnswer | None:
    """Approved (in time), expired (deadline passed), or still waiting (None)."""
    requested = claim.approval_requested_at or now
    deadline = claim.approval_deadline
    if claim.approved_at is not None and (deadline is None or claim.approved_at <= deadline):
        return ApprovalAnswer("approved", requested)
    if deadline is not None and now >= deadline:
        return ApprovalAnswer("expired", requested)
    return None


@dataclass
class ThreadRunner:
    """Claims threads and drives each through the graph until it ends or waits."""

    scenario: Scenario
    graph: AgentGraph
    saver: BaseCheckpointSaver[Any]
    claims: ClaimQueue
    ctx: AgentContext
    slot: str
    durability: Durability | None  # None: LangGraph's default
    pin_waiting: bool
    owner: str = field(init=False)
    finished: FinishedLog = field(init=False)
    running: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.owner = f"{self.slot}:{os.getpid()}"
        self.finished = FinishedLog(self.owner)

    def wake(self) -> None:
        """The claim table may have work (a start, an approval, a freed slot)."""
        self._wake.set()

    async def serve(self) -> None:
        heartbeat = asyncio.create_task(self._heartbeat())
        try:
            while True:
                self._wake.clear()
                claimed = await self._claim()
                for claim in claimed:
                    self._track(claim.thread_id, asyncio.create_task(self.run_thread(claim)))
                if len(claimed) == CLAIM_BATCH:
                    continue  # there may be more waiting
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), POLL_INTERVAL_S)
        finally:
            heartbeat.cancel()
            for task in list(self.running.values()):
                task.cancel()

    def _track(self, thread_id: str, task: asyncio.Task[None]) -> None:
        self.running[thread_id] = task

        def done(task: asyncio.Task[None]) -> None:
            if self.running.get(thread_id) is task:
                del self.running[thread_id]
                if len(self.running) == MAX_IN_FLIGHT - 1:
                    self.wake()  # the worker was full: claim what waited for room

        task.add_done_callback(done)

    async def _claim(self) -> list[Claim]:
        room = MAX_IN_FLIGHT - len(self.running)
        if room <= 0:
            return []
        try:
            return await self.claims.claim(
                self.owner, self.slot, min(room, CLAIM_BATCH), LEASE_S, self.pin_waiting
            )
        except Exception as exc:  # store briefly unreachable: keep polling
            _log(f"claim failed: {type(exc).__name__}: {exc}")
            await asyncio.sleep(ERROR_BACKOFF_S)
            return []

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(LEASE_S / 3)
            try:
                await self.claims.renew(self.owner, LEASE_S)
            except Exception as exc:
                _log(f"lease renewal failed: {type(exc).__name__}: {exc}")

    async def run_thread(self, claim: Claim) -> None:
        thread_id = claim.thread_id
        try:
            status, error = await self._drive(claim)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the thread is stuck, as it would be in production
            _log(f"{thread_id} failed: {type(exc).__name__}: {exc}")
            status, error = "failed", f"{type(exc).__name__}: {exc}"[:1000]
        if status is not None:
            await self.claims.finish(thread_id, self.owner, status, error)
            self.finished.publish(thread_id)  # after the commit: the table says so now

    async def _drive(self, claim: Claim) -> tuple[str | None, str | None]:
        """Invoke the graph the way the checkpoint calls for; returns the final claim
        status, or None when the run was parked to wait for approval.

        The run's own `status` says whether it is finished, not `snapshot.next`: the
        latest snapshot leaves out tasks whose writes were saved, so a thread killed
        after a node's writes landed but before the next checkpoint shows `next == ()`
        although `ainvoke(None, config)` still has work to do."""
        config = thread_config(claim.thread_id, self.scenario)
        if claim.claims == 1:
            # the first claim ever: nobody ran the thread, so it has no checkpoint to read
            if isinstance(self.saver, CommitAcknowledger):
                self.saver.expect(claim.thread_id, 0)
            return await self._invoke(claim, initial_state(claim.run_id), config)
        snapshot = await self.graph.aget_state(config)
        values: dict[str, Any] = dict(snapshot.values or {})
        if isinstance(self.saver, CommitAcknowledger):
            # acknowledged = in a saved checkpoint (the snapshot also shows pending writes)
            saved = await self.saver.aget_tuple(config)
            history = saved.checkpoint["channel_values"].get("history", []) if saved else []
            self.saver.expect(claim.thread_id, len(history))
        command: Any
        if not values:
            command = initial_state(claim.run_id)
        elif snapshot.interrupts:
            answer = approval_answer(claim, time.time())
            if answer is None:
                return await self._park(claim, time.time())
            command = Command(resume=answer.to_dict())
        elif values.get("status") in FINISHED:
            return self._final(values)
        else:
            command = None  # resume from the last checkpoint
        return await self._invoke(claim, command, config)

    async def _invoke(
        self, claim: Claim, command: Any, config: RunnableConfig
    ) -> tuple[str | None, str | None]:
        result = await self.graph.ainvoke(
            command, config, context=self.ctx, durability=self.durability, version="v2"
        )
        if result.interrupts:
            return await self._park(claim, time.time())
        return self._final(dict(result.value))

    async def _park(self, claim: Claim, now: float) -> tuple[None, None]:
        approval = self.scenario.approval
        ttl = approval.ttl_s if approval is not None else 0.0
        await self.claims.park(claim.thread_id, self.owner, now, ttl)
        return None, None

    @staticmethod
    def _final(values: dict[str, Any]) -> tuple[str, str | None]:
        status = str(values.get("status"))
        if status in FINISHED:
            return status, None
        return "failed", f"graph ended with status {status!r}"


CTX_KEY: web.AppKey[AgentContext] = web.AppKey("ctx", AgentContext)
RUNNER_KEY: web.AppKey[ThreadRunner] = web.AppKey("runner", ThreadRunner)


async def _thread(request: web.Request) -> web.Response:
    """What this worker's checkpointer holds for a thread (memory saver's `inspect`)."""
    runner = request.app[RUNNER_KEY]
    thread_id = request.match_info["thread_id"]
    checkpoints, size = await footprint(runner.saver, thread_id)
    view = await read_thread(runner.graph, runner.scenario, thread_id, checkpoints, size)
    return web.json_response(view.to_dict())


async def _wake(request: web.Request) -> web.Response:
    """A start or an approval: claim now instead of at the next poll."""
    runner = request.app.get(RUNNER_KEY)
    if runner is not None:
        runner.wake()
    return web.Response(status=204)


def _log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class LangGraphWorkerOptions:
    """What a LangGraph worker needs beyond every worker's arguments (workercli)."""

    variant: str = field(metadata={"choices": ("memory", "sqlite", "postgres")})
    durability: str | None = None  # None: LangGraph's own default
    sqlite_path: Path | None = None
    claims_path: Path | None = None
    schema: str | None = None

    def store(self) -> StoreSpec:
        """The saver and claim store these options name (the DSN from the environment)."""
        return StoreSpec(
            variant=self.variant,
            sqlite_path=self.sqlite_path,
            claims_path=self.claims_path,
            dsn=os.environ.get(DSN_ENV),
            schema=self.schema,
        )


def build_app(worker: WorkerArgs[LangGraphWorkerOptions]) -> web.Application:
    app = web.Application()
    add_common_routes(app)
    options = worker.options
    store = options.store()

    async def context(app: web.Application) -> AsyncIterator[None]:
        scenario = load_scenario(worker.scenario)
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
        async with aiohttp.ClientSession(connector=connector) as http:
            ctx = worker.agent_context(scenario, http)
            recorder = ctx.recorder
            async with open_saver(store, recorder) as saver, open_claims(store) as claims:
                runner = ThreadRunner(
                    scenario=scenario,
                    graph=compile_graph(scenario, saver),
                    saver=saver,
                    claims=claims,
                    ctx=ctx,
                    slot=worker.worker_id,
                    durability=cast(Durability, options.durability) if options.durability else None,
                    pin_waiting=options.variant == "memory",
                )
                app[RUNNER_KEY] = runner
                serving = asyncio.create_task(runner.serve())
                _log(
                    f"{runner.owner} serving {options.variant} "
                    f"durability={options.durability or 'default'}"
                )
                yield
                serving.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await serving
                with contextlib.suppress(Exception):
                    await claims.release_all(runner.owner)
                recorder.close()

    app.cleanup_ctx.append(context)
    app.router.add_post(WAKE_ROUTE, _wake)
    app.router.add_get(FINISHED_ROUTE, finished_handler(lambda: app[RUNNER_KEY].finished))
    if options.variant == "memory":
        app.router.add_get("/threads/{thread_id}", _thread)
    return app


def main() -> None:
    args = WorkerArgs.parse(
        LangGraphWorkerOptions, description="durabench LangGraph worker", needs_port=True
    )
    assert args.port is not None
    run_app(build_app(args), args.host, args.port)


if __name__ == "__main__":
    main()
