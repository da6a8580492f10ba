"""A DBOS worker process for durabench: one DBOS executor that runs agent workflows
dequeued from the run's queue.

It launches DBOS inside its own event loop (so the async workflows and steps run on
it, with the worker's one HTTP session), with the system database in the run's schema
and its worker slot as the executor id. Launching is also DBOS's recovery: an
executor that starts recovers the PENDING workflows recorded under its id (the ones a
killed predecessor held) by putting them back on their queue, where any executor
dequeues them (docs.dbos.dev, "Workflow Recovery": "When an application with an
executor ID restarts, it only recovers pending workflows assigned to that executor
ID"). The supervisor restarts a killed worker with the same slot, so nothing else
recovers anything. It serves `GET /health` once DBOS runs, and on SIGTERM stops
DBOS (its in-flight workflows stay PENDING for the next start).

Run as `python -m backends.dbos.worker --schema S --port P --scenario F ...`
(`WorkerArgs`, `DbosWorkerOptions`), the system database DSN in `$DURABENCH_WORKER_DSN`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from backends.workercli import WorkerArgs
from harness.agent import AgentContext
from harness.errors import DurabenchError
from harness.scenario import load_scenario

__all__ = ["Bind", "DbosWorkerOptions", "bind_workflow", "dbos_config", "main", "serve"]

log = logging.getLogger("durabench.dbos.worker")

SHUTDOWN_WAIT_S = 0  # on SIGTERM, leave in-flight workflows PENDING (recovered on restart)


@dataclass(frozen=True)
class DbosWorkerOptions:
    """The DBOS worker's own command-line options (see `WorkerArgs`)."""

    schema: str  # the run's DBOS system schema
    slots: int = 64  # the queue's worker_concurrency: workflows in flight per executor
    poll_s: float = 0.1  # the queue's polling interval


def dbos_config(url: str, schema: str, executor_id: str) -> dict[str, object]:
    """The DBOSConfig every durabench DBOS process uses (workers and the floor)."""
    from backends.dbos.settings import APP_VERSION, APPLICATION

    return {
        "name": APPLICATION,
        "system_database_url": url,
        "dbos_system_schema": schema,
        "executor_id": executor_id,
        "application_version": APP_VERSION,
        "log_level": "WARNING",
    }


async def _health(_: web.Request) -> web.Response:
    return web.json_response({"ok": True})


def bind_workflow(args: WorkerArgs[DbosWorkerOptions], ctx: AgentContext) -> None:
    """Register the hand-written workflow and give its steps this process's context."""
    from backends.dbos import crashpoints, workflow

    workflow.bind(ctx)
    if ctx.recorder.failpoints is not None:
        crashpoints.install(ctx.recorder)


Bind = Callable[[WorkerArgs[DbosWorkerOptions], AgentContext], None]


async def serve(args: WorkerArgs[DbosWorkerOptions], url: str, bind: Bind = bind_workflow) -> None:
    """Run DBOS until SIGTERM/SIGINT; `bind` registers the workflows (before DBOS launches)."""
    from dbos import DBOS, DBOSConfig

    from backends.dbos.settings import QUEUE

    options = args.options
    scenario = load_scenario(args.scenario)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        ctx = args.agent_context(scenario, http)
        bind(args, ctx)
        config: DBOSConfig = dbos_config(url, options.schema, args.worker_id)  # type: ignore[assignment]
        DBOS(config=config)
        DBOS.launch()  # in this loop's thread: DBOS runs the dequeued workflows on this loop
        try:
            await DBOS.register_queue_async(
                QUEUE,
                worker_concurrency=options.slots,
                polling_interval_sec=options.poll_s,
                on_conflict="always_update",
            )
            health = web.Application()
            health.router.add_get("/health", _health)
            runner = web.AppRunner(health, access_log=None)
            await runner.setup()
            try:
                await web.TCPSite(runner, args.host, args.port).start()
                log.info("worker %s (executor %s) ready", os.getpid(), args.worker_id)
                await stop.wait()
            finally:
                await runner.cleanup()
        finally:
            await asyncio.to_thread(DBOS.destroy, workflow_completion_timeout_sec=SHUTDOWN_WAIT_S)
            ctx.recorder.close()


def main(
    argv: list[str] | None = None,
    bind: Bind = bind_workflow,
    description: str = "durabench DBOS worker",
) -> None:
    from backends.dbos.settings import DSN_ENV, sqlalchemy_url

    args = WorkerArgs.parse(DbosWorkerOptions, argv, description=description, needs_port=True)
    dsn = os.environ.get(DSN_ENV)
    if not dsn:
        print(f"error: ${DSN_ENV} (the DBOS system database) is required", file=sys.stderr)
        raise SystemExit(2)
    url = sqlalchemy_url(dsn)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        asyncio.run(serve(args, url, bind))
    except DurabenchError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
