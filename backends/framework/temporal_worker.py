"""A framework's Temporal worker process: configure the process runtime, build the
framework's agent and workflow (`build`), connect with the framework's plugins, poll,
serve `GET /health`, and stop gracefully on SIGTERM (a SIGKILL is the server's to
notice, through heartbeat and workflow-task timeouts, as for the hand-written worker).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import aiohttp
from temporalio.worker import Worker

from backends.framework.runtime import WorkerRuntime, configure
from backends.framework.temporal import FrameworkWorkerOptions, connect_with_plugins
from backends.temporal.connection import connect_until_ready
from backends.temporal.worker import run_until_stopped
from backends.workercli import WorkerArgs
from harness.errors import DurabenchError
from harness.scenario import load_scenario

__all__ = ["WorkerParts", "main", "serve"]

CONNECT_WAIT_S = 60.0
GRACEFUL_SHUTDOWN_S = 2.0


@dataclass(frozen=True)
class WorkerParts:
    """What a framework registers: its workflows, client plugins (the data converter and
    the activities they add), and activities of its own."""

    workflows: Sequence[type]
    plugins: Sequence[Any] = ()
    activities: Sequence[Any] = field(default=())


Build = Callable[[WorkerRuntime, FrameworkWorkerOptions], WorkerParts]


async def serve(args: WorkerArgs[FrameworkWorkerOptions], build: Build) -> None:
    options = args.options
    scenario = load_scenario(args.scenario)
    runtime = configure(
        WorkerRuntime(
            scenario,
            args.llm_url,
            heartbeat_s=options.heartbeat_s,
            start_to_close_s=options.start_to_close_s,
        )
    )
    parts = build(runtime, options)
    base = await connect_until_ready(options.settings(), CONNECT_WAIT_S)
    client = connect_with_plugins(base, list(parts.plugins))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        runtime.ctx = args.agent_context(scenario, http)
        worker = Worker(
            client,
            task_queue=options.task_queue,
            workflows=list(parts.workflows),
            activities=list(parts.activities),
            sticky_queue_schedule_to_start_timeout=timedelta(seconds=options.sticky_timeout_s),
            graceful_shutdown_timeout=timedelta(seconds=GRACEFUL_SHUTDOWN_S),
            identity=f"{args.worker_id}@{os.getpid()}",
        )
        try:
            await run_until_stopped(worker, stop, args.host, args.port)
        finally:
            runtime.context.recorder.close()


def main(build: Build, description: str, argv: list[str] | None = None) -> None:
    args = WorkerArgs.parse(FrameworkWorkerOptions, argv, description=description, needs_port=True)
    try:
        asyncio.run(serve(args, build))
    except DurabenchError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)
