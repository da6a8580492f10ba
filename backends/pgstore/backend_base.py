"""The backend side both Postgres state stores share: the store component and the
worker processes, connecting, the per-run schema, waiting for runs, teardown.

Subclasses say which worker module to run, which tables to create, and how to
start, approve, inspect and expire runs in their own tables.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from backends.base import BackendEnv, RunSpec
from backends.pgstore.runtime import DSN_ENV, DoneWaiter, StoreWorkerOptions, channels, open_pool
from backends.workercli import WorkerArgs
from harness.errors import BackendError
from harness.platform.base import ComponentSpec
from harness.postgres import (
    backend_dsn,
    check_connection,
    mask_dsn,
    postgres_components,
    schema_for,
    wait_ready_async,
    with_search_path,
    worker_dsn,
)
from harness.state import PersistedRun

__all__ = ["PostgresStoreBackend", "positive_float", "positive_int"]

BACKEND_POOL_SIZE = 16


def positive_float(name: str, value: str | float) -> float:
    try:
        number = float(value)
    except ValueError:
        raise BackendError(f"option {name}={value!r}: expected a number") from None
    if not number > 0 or number == float("inf"):
        raise BackendError(f"option {name}={value!r}: must be > 0")
    return number


def positive_int(name: str, value: str | int, minimum: int = 1) -> int:
    try:
        number = int(value)
    except ValueError:
        raise BackendError(f"option {name}={value!r}: expected an integer") from None
    if number < minimum:
        raise BackendError(f"option {name}={value!r}: must be >= {minimum}")
    return number


class PostgresStoreBackend(ABC):
    """Common plumbing; `name`, `worker_module` and the abstract methods differ."""

    name = "postgres-store"
    worker_module = ""

    def __init__(self, workers: int | str | None, slots: int | str) -> None:
        self._workers_override = positive_int("workers", workers) if workers is not None else None
        self.slots = positive_int("slots", slots)
        self._env: BackendEnv | None = None
        self._pool: AsyncConnectionPool[AsyncConnection[Any]] | None = None
        self._waiter: DoneWaiter | None = None
        self.worker_count = 0

    # -- what subclasses provide ------------------------------------------------------

    @abstractmethod
    def worker_options(self) -> StoreWorkerOptions:
        """The worker's command-line options (schema, slots, lease, snapshots, ...)."""

    @abstractmethod
    async def ensure_tables(self, conn: AsyncConnection[Any], schema: str) -> None: ...

    @abstractmethod
    async def is_done(self, conn: AsyncConnection[Any], run_id: str) -> bool: ...

    @abstractmethod
    async def start(self, run: RunSpec) -> None: ...

    @abstractmethod
    async def approve(self, run_id: str) -> None: ...

    @abstractmethod
    async def inspect(self, run_id: str) -> PersistedRun: ...

    @abstractmethod
    async def cleanup_stale(self, ttl_s: float) -> int: ...

    @abstractmethod
    def describe(self) -> dict[str, Any]: ...

    # -- names --------------------------------------------------------------------------

    @property
    def env(self) -> BackendEnv:
        if self._env is None:
            raise BackendError(f"{self.name}: components() must be called first")
        return self._env

    @property
    def schema(self) -> str:
        # the work dir name is unique per backend spec in a run ("pgstore_lease_s_1")
        return schema_for(self.env, self.env.workdir.name)

    @property
    def channels(self) -> tuple[str, str]:
        return channels(self.schema)

    @property
    def dsn(self) -> str:
        return with_search_path(backend_dsn(self.env), self.schema)

    @property
    def pool(self) -> AsyncConnectionPool[AsyncConnection[Any]]:
        if self._pool is None:
            raise BackendError(f"{self.name} backend used before setup()")
        return self._pool

    # -- lifecycle ----------------------------------------------------------------------

    def components(self, env: BackendEnv) -> list[ComponentSpec]:
        self._env = env
        if env.external.pg_dsn:
            check_connection(env.external.pg_dsn)  # bad --pg-dsn: one clear error, now
        specs = postgres_components(env)
        self.worker_count = self._workers_override or env.scenario.workers
        for index in range(self.worker_count):
            specs.append(
                ComponentSpec(
                    name=f"{self.name}-worker-{index}",
                    role="worker",
                    argv=WorkerArgs.for_env(
                        env, self.name, f"worker-{index}", self.worker_options()
                    ).command(self.worker_module),
                    env={DSN_ENV: worker_dsn(env, self.dsn)},
                    restart=True,
                )
            )
        return specs

    async def setup(self, env: BackendEnv) -> None:
        self._env = env
        server = backend_dsn(env)
        if env.external.pg_dsn:
            await asyncio.to_thread(check_connection, server)
        else:
            await wait_ready_async(server)
        self._pool = await open_pool(self.dsn, BACKEND_POOL_SIZE)
        async with self._pool.connection() as conn:
            await self.ensure_tables(conn, self.schema)
        self._waiter = DoneWaiter(self.dsn, self.channels[1])
        self._waiter.start()

    async def wait(self, run_id: str, timeout_s: float) -> bool:
        if self._waiter is None:
            raise BackendError(f"{self.name} backend used before setup()")

        async def done() -> bool:
            async with self.pool.connection() as conn:
                return await self.is_done(conn, run_id)

        return await self._waiter.wait(run_id, timeout_s, done)

    async def teardown(self) -> None:
        if self._waiter is not None:
            await self._waiter.close()
            self._waiter = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    def describe_store(self) -> dict[str, Any]:
        env = self.env
        where = (
            f"external {mask_dsn(env.external.pg_dsn)}"
            if env.external.pg_dsn
            else "embedded (fsync=on, synchronous_commit=on)"
        )
        return {"store": where, "schema": self.schema, "workers": self.worker_count}
