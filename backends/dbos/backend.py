"""`dbos`: the RAV agent on DBOS Transact, its system database on Postgres.

The harness side is a `DBOSClient`: `start` enqueues one workflow per run on the run's
DBOS queue (worker processes share it, `worker_concurrency` = `slots` each), `approve`
sends the message the workflow's `recv` waits for, `wait` polls the workflows' status
(one query for every run waited on), and `inspect` reads the workflow status and the
recorded step outputs back from the system database (never a worker's memory). A killed
worker's workflows are recovered by DBOS itself when the supervisor restarts it under
the same executor id (see worker.py).

With no `--pg-dsn`, durabench starts an embedded Postgres for it (as for pgstore); either
way the system database lives in a schema of its own per run and backend
(`db_<run-id>_dbos`, DBOS's `dbos_system_schema`).

Options (`dbos?workers=2&slots=64&poll_s=0.1`): `workers` (default: the scenario's),
`slots` (workflows in flight per worker), `poll_s` (the queue's polling interval; DBOS's
default is 1 s, which adds up to a second to every run's start).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import logging
import time
from typing import Any

import psycopg
from psycopg import AsyncConnection, sql
from psycopg_pool import AsyncConnectionPool

from backends.base import BackendEnv, Guarantees, RunSpec
from backends.dbos.crashpoints import CRASH_POINTS
from backends.dbos.history import RUNNING_STATUSES, Recorded, state_from_steps
from backends.dbos.settings import (
    APP_VERSION,
    APPLICATION,
    APPROVE_TOPIC,
    DSN_ENV,
    QUEUE,
    RETRY_SETTINGS,
    WORKFLOW,
    spec_of,
    sqlalchemy_url,
)
from backends.dbos.worker import DbosWorkerOptions
from backends.options import BackendOptions, Count, Seconds, Workers
from backends.pgstore.runtime import open_pool
from backends.workercli import WorkerArgs
from harness.errors import BackendError
from harness.failpoints import BackendCrashPoint
from harness.platform.base import ComponentSpec, free_port
from harness.postgres import (
    backend_dsn,
    check_connection,
    mask_dsn,
    postgres_components,
    schema_for,
    wait_ready_async,
    worker_dsn,
)
from harness.state import PersistedRun, RunState

__all__ = ["DbosBackend", "DbosBackendOptions"]

log = logging.getLogger("durabench.dbos")

WAIT_POLL_S = 0.05  # how often `wait` reads the status of the runs it waits on
WORKER_READY_TIMEOUT_S = 120.0  # the first worker runs DBOS's migrations
POOL_SIZE = 4
SIZE_ATTEMPTS = 5  # the size query is retried past connections a store restart closed


class DbosBackendOptions(BackendOptions):
    """`dbos?workers=N&slots=N&poll_s=S` (see the module docstring)."""

    workers: Workers | None = None
    slots: Count = 64
    poll_s: Seconds = 0.1


class _StatusPoller:
    """One task reading the DBOS status of every run someone waits on, every WAIT_POLL_S."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.waiting: dict[str, asyncio.Event] = {}
        self.task: asyncio.Task[None] | None = None

    async def wait(self, workflow_id: str, timeout_s: float) -> bool:
        event = self.waiting.setdefault(workflow_id, asyncio.Event())
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._poll())
        try:
            await asyncio.wait_for(event.wait(), timeout_s)
            return True
        except TimeoutError:
            return False
        finally:
            self.waiting.pop(workflow_id, None)

    async def _poll(self) -> None:
        while self.waiting:
            ids = list(self.waiting)
            try:
                rows = await self.client.list_workflows_async(
                    workflow_ids=ids, load_input=False, load_output=False
                )
            except Exception as exc:  # the store restarting: keep waiting
                log.warning("dbos: reading workflow status failed: %s", exc)
                rows = []
            for row in rows:
                if row.status not in RUNNING_STATUSES and row.workflow_id in self.waiting:
                    self.waiting[row.workflow_id].set()
            await asyncio.sleep(WAIT_POLL_S)

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None


class DbosBackend:
    """DBOS Transact: one workflow per agent run, reason/act/verify as steps."""

    Options = DbosBackendOptions

    name = "dbos"
    guarantees = Guarantees(durable=True, stable_act_keys=True)
    worker_module = "backends.dbos.worker"  # what a worker process runs (`python -m`)
    workflow_name = WORKFLOW  # the workflow `start` enqueues

    def __init__(self, workers: int | None = None, slots: int = 64, poll_s: float = 0.1) -> None:
        self._workers_override = workers
        self.slots = slots
        self.poll_s = poll_s
        self._env: BackendEnv | None = None
        self._client: Any = None
        self._pool: AsyncConnectionPool[AsyncConnection[Any]] | None = None
        self._poller: _StatusPoller | None = None
        self.worker_count = 0

    # -- names --------------------------------------------------------------------------

    @property
    def env(self) -> BackendEnv:
        if self._env is None:
            raise BackendError("dbos: components() must be called first")
        return self._env

    @property
    def schema(self) -> str:
        return schema_for(self.env, self.env.workdir.name)

    @property
    def client(self) -> Any:
        if self._client is None:
            raise BackendError("dbos backend used before setup()")
        return self._client

    @property
    def prefix(self) -> str:
        return f"durabench-{self.env.bench_id}"

    def workflow_id(self, run_id: str) -> str:
        return f"{self.prefix}-{run_id}"

    def spec(self, run_id: str) -> dict[str, Any]:
        return spec_of(self.env.scenario, run_id)

    # -- lifecycle ----------------------------------------------------------------------

    def crash_points(self) -> list[BackendCrashPoint]:
        """HasCrashPoints: DBOS's own durability boundaries (crashpoints.py)."""
        return list(CRASH_POINTS)

    def components(self, env: BackendEnv) -> list[ComponentSpec]:
        self._env = env
        if env.external.pg_dsn:
            check_connection(env.external.pg_dsn)  # bad --pg-dsn: one clear error, now
        specs = postgres_components(env)
        self.worker_count = self._workers_override or env.scenario.workers
        dsn = worker_dsn(env, backend_dsn(env))
        options = DbosWorkerOptions(schema=self.schema, slots=self.slots, poll_s=self.poll_s)
        for index in range(self.worker_count):
            port = free_port()
            args = WorkerArgs.for_env(env, self.name, f"worker-{index}", options, port)
            specs.append(
                ComponentSpec(
                    name=f"{self.name}-worker-{index}",
                    role="worker",
                    argv=args.command(self.worker_module),
                    port=port,
                    health_url=f"http://127.0.0.1:{port}/health",
                    env={DSN_ENV: dsn},
                    restart=True,
                    ready_timeout_s=WORKER_READY_TIMEOUT_S,
                )
            )
        return specs

    async def setup(self, env: BackendEnv) -> None:
        from dbos import DBOSClient

        self._env = env
        server = backend_dsn(env)
        if env.external.pg_dsn:
            await asyncio.to_thread(check_connection, server)
        else:
            await wait_ready_async(server)
        self._client = await asyncio.to_thread(
            lambda: DBOSClient(
                system_database_url=sqlalchemy_url(server),
                dbos_system_schema=self.schema,
                application_name=APPLICATION,
            )
        )
        self._pool = await open_pool(server, POOL_SIZE)
        self._poller = _StatusPoller(self._client)

    async def start(self, run: RunSpec) -> None:
        options: dict[str, Any] = {
            "workflow_name": self.workflow_name,
            "queue_name": QUEUE,
            "workflow_id": self.workflow_id(run.run_id),
            "app_version": APP_VERSION,
            "application_name": APPLICATION,
        }
        await self.client.enqueue_async(options, self.spec(run.run_id))

    async def wait(self, run_id: str, timeout_s: float) -> bool:
        if self._poller is None:
            raise BackendError("dbos backend used before setup()")
        return await self._poller.wait(self.workflow_id(run_id), timeout_s)

    async def approve(self, run_id: str) -> None:
        """Send the approval message (an idempotency key makes a resend harmless)."""
        from dbos import error

        workflow_id = self.workflow_id(run_id)
        with contextlib.suppress(error.DBOSNonExistentWorkflowError):
            await self.client.send_async(
                workflow_id, True, APPROVE_TOPIC, idempotency_key=f"{workflow_id}-approve"
            )

    async def _sizes(self, workflow_id: str) -> tuple[int, int]:
        """(recorded steps, bytes of their serialized outputs) in operation_outputs."""
        if self._pool is None:
            raise BackendError("dbos backend used before setup()")
        query = sql.SQL(
            "SELECT count(*), coalesce(sum(octet_length(output)), 0) "
            "FROM {}.operation_outputs WHERE workflow_uuid = %s"
        ).format(sql.Identifier(self.schema))
        for attempt in range(SIZE_ATTEMPTS):
            try:
                async with self._pool.connection() as conn:
                    cursor = await conn.execute(query, (workflow_id,))
                    row = await cursor.fetchone()
                return (int(row[0]), int(row[1])) if row else (0, 0)
            except psycopg.OperationalError:  # a connection from before a store restart
                if attempt + 1 == SIZE_ATTEMPTS:
                    raise
                await asyncio.sleep(0.2)
        return (0, 0)

    async def inspect(self, run_id: str) -> PersistedRun:
        workflow_id = self.workflow_id(run_id)
        statuses = await self.client.list_workflows_async(
            workflow_ids=[workflow_id], load_input=False, load_output=True
        )
        if not statuses:
            return PersistedRun(run_id, None, 0, 0, extra={"error": "no such workflow"})
        status = statuses[0]
        steps = await self.client.list_workflow_steps_async(workflow_id)
        state, errors = self.state_from_steps(run_id, steps, str(status.status))
        length, size = await self._sizes(workflow_id)
        extra: dict[str, Any] = {
            "dbos_status": str(status.status),
            "executor_id": status.executor_id,
            "recorded_steps": len(steps),
        }
        if status.error is not None:
            extra["reason"] = str(status.error)[:500]
        if errors:
            extra["step_errors"] = errors[:10]
        if isinstance(status.output, dict):
            extra["output_agrees"] = status.output == state.to_dict()
        return PersistedRun(run_id, state, size, length, extra)

    def state_from_steps(
        self, run_id: str, steps: list[Any], dbos_status: str
    ) -> tuple[RunState, list[str]]:
        """The run's state from its recorded steps, and the errors they recorded."""
        recorded = Recorded(steps)
        return state_from_steps(self.spec(run_id), recorded, dbos_status), recorded.errors

    async def _open_runs(self) -> list[Any]:
        return list(
            await self.client.list_workflows_async(
                workflow_id_prefix=f"{self.prefix}-",
                status=sorted(RUNNING_STATUSES),
                load_input=False,
                load_output=False,
            )
        )

    async def cleanup_stale(self, ttl_s: float) -> int:
        """Cancel this run's workflows still open after the wait and older than the TTL."""
        cleaned = 0
        now_ms = time.time() * 1000
        for status in await self._open_runs():
            if status.created_at is not None and now_ms - status.created_at >= ttl_s * 1000:
                await self.client.cancel_workflow_async(status.workflow_id)
                cleaned += 1
        return cleaned

    async def teardown(self) -> None:
        if self._poller is not None:
            await self._poller.close()
            self._poller = None
        if self._client is not None:
            try:
                for status in await self._open_runs():
                    await self.client.cancel_workflow_async(status.workflow_id)
            except Exception as exc:  # the store is gone: nothing left to cancel on it
                log.warning("dbos teardown: %s", exc)
            await asyncio.to_thread(self._client.destroy)
            self._client = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    def describe(self) -> dict[str, Any]:
        env = self._env
        store = None
        if env is not None:
            store = (
                f"external {mask_dsn(env.external.pg_dsn)}"
                if env.external.pg_dsn
                else "embedded (fsync=on, synchronous_commit=on)"
            )
        return {
            "dbos": importlib.metadata.version("dbos"),
            "store": store,
            "system_schema": self.schema if env is not None else None,
            "workers": self.worker_count,
            "queue": QUEUE,
            "worker_concurrency": self.slots,
            "queue_polling_interval_s": self.poll_s,
            "application_version": APP_VERSION,
            "step_retries": dict(RETRY_SETTINGS),
            "phases": "reason, act, verify: DBOS steps; commit: the verify output recorded; "
            "approval: DBOS.recv with the TTL as timeout",
            "recovery": "DBOS's own: a restarted executor (same executor id) re-enqueues the "
            "PENDING workflows recorded under its id",
            "idempotency": "stable key per (run, step, attempt)",
        }
