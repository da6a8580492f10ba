"""A Temporal worker process for durabench: polls one task queue and runs the agent
workflow (one code version) and the phase activities.

It connects (waiting for a server that is still coming up), serves `GET /health`
once it polls, and shuts down gracefully on SIGTERM. On SIGKILL the server
notices through heartbeat and workflow-task timeouts and hands the work to
another worker (or to this one once the platform restarts it).

Run as `python -m backends.temporal.worker --address H:P --task-queue Q --port P
--scenario F ...` (`WorkerArgs`, `TemporalWorkerOptions`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from dataclasses import dataclass, field
from datetime import timedelta

import aiohttp
from aiohttp import web
from temporalio.worker import Worker

from backends.temporal.activities import AgentActivities
from backends.temporal.connection import ConnectSettings, connect_until_ready
from backends.temporal.crashpoints import CrashPointInterceptor, arm_workflow_points
from backends.temporal.versioning import WORKFLOW_VERSIONS
from backends.workercli import WorkerArgs
from harness.errors import DurabenchError
from harness.scenario import load_scenario

__all__ = ["TemporalWorkerOptions", "main", "run_until_stopped", "serve"]

CONNECT_WAIT_S = 60.0
GRACEFUL_SHUTDOWN_S = 2.0


@dataclass(frozen=True)
class TemporalWorkerOptions:
    """The Temporal worker's own command-line options (see `WorkerArgs`): where to
    connect (the API key only as the name of the variable holding it), what to poll."""

    address: str
    task_queue: str
    namespace: str = "default"
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_ca: str | None = None
    api_key_env: str | None = None
    workflow_version: str = field(default="v1", metadata={"choices": sorted(WORKFLOW_VERSIONS)})
    sticky_timeout_s: float = 10.0

    @classmethod
    def of(
        cls, settings: ConnectSettings, task_queue: str, version: str, sticky_timeout_s: float
    ) -> TemporalWorkerOptions:
        return cls(
            address=settings.address,
            task_queue=task_queue,
            namespace=settings.namespace,
            tls_cert=settings.tls_cert,
            tls_key=settings.tls_key,
            tls_ca=settings.tls_ca,
            api_key_env=settings.api_key_env,
            workflow_version=version,
            sticky_timeout_s=sticky_timeout_s,
        )

    def settings(self) -> ConnectSettings:
        return ConnectSettings(
            self.address, self.namespace, self.tls_cert, self.tls_key, self.tls_ca, self.api_key_env
        )


async def _health(_: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def serve(args: WorkerArgs[TemporalWorkerOptions]) -> None:
    """Poll until SIGTERM/SIGINT; return (or raise) when the worker stops."""
    options = args.options
    scenario = load_scenario(args.scenario)  # bad input fails before any waiting
    client = await connect_until_ready(options.settings(), CONNECT_WAIT_S)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        ctx = args.agent_context(scenario, http)
        crashing = [CrashPointInterceptor(ctx.recorder)] if ctx.recorder.failpoints else []
        if crashing:
            arm_workflow_points(ctx.recorder)
        worker = Worker(
            client,
            task_queue=options.task_queue,
            workflows=[WORKFLOW_VERSIONS[options.workflow_version]],
            activities=AgentActivities(ctx).all(),
            sticky_queue_schedule_to_start_timeout=timedelta(seconds=options.sticky_timeout_s),
            graceful_shutdown_timeout=timedelta(seconds=GRACEFUL_SHUTDOWN_S),
            identity=f"{args.worker_id}@{os.getpid()}",
            interceptors=crashing,
        )
        try:
            await run_until_stopped(worker, stop, args.host, args.port)
        finally:
            ctx.recorder.close()


async def run_until_stopped(
    worker: Worker, stop: asyncio.Event, host: str, port: int | None
) -> None:
    """Poll with `worker` and serve `GET /health` on host:port until `stop` is set, then
    shut down gracefully; a worker failure is re-raised (exit non-zero, get restarted)."""
    health = web.Application()
    health.router.add_get("/health", _health)
    runner = web.AppRunner(health, access_log=None)
    await runner.setup()
    running = asyncio.create_task(worker.run())
    try:
        await web.TCPSite(runner, host, port).start()
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not running.done():
            await worker.shutdown()
        await running
    finally:
        if not running.done():
            running.cancel()
            with contextlib.suppress(BaseException):
                await running
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    args = WorkerArgs.parse(
        TemporalWorkerOptions, argv, description="durabench Temporal worker", needs_port=True
    )
    try:
        asyncio.run(serve(args))
    except DurabenchError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
