"""A Temporal worker process for durabench: polls one task queue and runs the agent
workflow (one code version) and the phase activities.

It connects (waiting for a server that is still coming up), serves `GET /health`
once it polls, and shuts down gracefully on SIGTERM. On SIGKILL the server
notices through heartbeat and workflow-task timeouts and hands the work to
another worker (or to this one once the platform restarts it).

Run as `python -m backends.temporal.worker --address H:P --task-queue Q --port P
--scenario F --llm-url U --tools-url U --measurements DIR --worker-id ID`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from datetime import timedelta
from pathlib import Path

import aiohttp
from aiohttp import web
from temporalio.worker import Worker

from backends.temporal.activities import AgentActivities
from backends.temporal.connection import ConnectSettings, connect_until_ready
from backends.temporal.versioning import WORKFLOW_VERSIONS
from harness.agent import AgentContext, api_key
from harness.errors import DurabenchError
from harness.measure import Recorder
from harness.scenario import load_scenario

__all__ = ["main", "serve"]

CONNECT_WAIT_S = 60.0
GRACEFUL_SHUTDOWN_S = 2.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="durabench Temporal worker")
    parser.add_argument("--address", required=True)
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--tls-ca")
    parser.add_argument("--api-key-env")
    parser.add_argument("--task-queue", required=True)
    parser.add_argument("--workflow-version", default="v1", choices=sorted(WORKFLOW_VERSIONS))
    parser.add_argument("--sticky-timeout-s", type=float, default=10.0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True, help="health endpoint")
    parser.add_argument("--scenario", required=True)
    parser.add_argument("--llm-url", required=True)
    parser.add_argument("--tools-url", required=True)
    parser.add_argument("--measurements", required=True)
    parser.add_argument("--worker-id", required=True)
    parser.add_argument("--backend-name", default="temporal")
    return parser.parse_args(argv)


async def _health(_: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def serve(args: argparse.Namespace) -> None:
    """Poll until SIGTERM/SIGINT; return (or raise) when the worker stops."""
    settings = ConnectSettings(
        args.address, args.namespace, args.tls_cert, args.tls_key, args.tls_ca, args.api_key_env
    )
    scenario = load_scenario(args.scenario)  # bad input fails before any waiting
    client = await connect_until_ready(settings, CONNECT_WAIT_S)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
    recorder = Recorder(Path(args.measurements), args.backend_name, args.worker_id)
    async with aiohttp.ClientSession(connector=connector) as http:
        ctx = AgentContext(
            scenario=scenario,
            http=http,
            llm_url=args.llm_url,
            tools_url=args.tools_url,
            recorder=recorder,
            api_key=api_key(scenario),
        )
        worker = Worker(
            client,
            task_queue=args.task_queue,
            workflows=[WORKFLOW_VERSIONS[args.workflow_version]],
            activities=AgentActivities(ctx).all(),
            sticky_queue_schedule_to_start_timeout=timedelta(seconds=args.sticky_timeout_s),
            graceful_shutdown_timeout=timedelta(seconds=GRACEFUL_SHUTDOWN_S),
            identity=f"{args.worker_id}@{os.getpid()}",
        )
        health = web.Application()
        health.router.add_get("/health", _health)
        runner = web.AppRunner(health, access_log=None)
        await runner.setup()
        running = asyncio.create_task(worker.run())
        try:
            await web.TCPSite(runner, args.host, args.port).start()
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not running.done():
                await worker.shutdown()
            await running  # re-raises a worker failure: exit non-zero, get restarted
        finally:
            if not running.done():
                running.cancel()
                with contextlib.suppress(BaseException):
                    await running
            await runner.cleanup()
            recorder.close()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        asyncio.run(serve(args))
    except DurabenchError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
