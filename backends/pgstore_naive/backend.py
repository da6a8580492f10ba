"""`pgstore-naive`: one JSONB row per agent run, updated in place after each step.

What it lacks, on purpose and as most first versions do: an event log, fencing,
and idempotency keys (act gets a fresh key per call). It exists so the numbers
show what the event-sourced `pgstore` buys. It is written competently: atomic
claims with SKIP LOCKED, heartbeats, pick-up of runs from dead workers, an
approval TTL reaper, no planted bugs.

Options (`pgstore-naive?stale_s=1&workers=2`): `stale_s` (heartbeat age after
which another worker picks a run up; default 10), `workers`, `slots` (64).
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection

from backends.base import Guarantees, RunSpec
from backends.options import BackendOptions, Count, Seconds, Workers
from backends.pgstore.backend_base import PostgresStoreBackend, positive_float
from backends.pgstore_naive import store
from backends.pgstore_naive.worker import NaiveOptions
from harness.state import PersistedRun

__all__ = ["NaivePgStoreBackend", "NaivePgStoreBackendOptions"]


class NaivePgStoreBackendOptions(BackendOptions):
    """`pgstore-naive?workers=N&stale_s=S&slots=N` (see the module docstring)."""

    workers: Workers | None = None
    stale_s: Seconds = 10.0
    slots: Count = 64


class NaivePgStoreBackend(PostgresStoreBackend):
    name = "pgstore-naive"
    guarantees = Guarantees(durable=True)  # a fresh key per act call: no stable act keys
    Options = NaivePgStoreBackendOptions
    worker_module = "backends.pgstore_naive.worker"

    def __init__(
        self,
        workers: int | str | None = None,
        stale_s: float | str = 10.0,
        slots: int | str = 64,
    ) -> None:
        super().__init__(workers, slots)
        self.stale_s = positive_float("stale_s", stale_s)

    def worker_options(self) -> NaiveOptions:
        return NaiveOptions(schema=self.schema, slots=self.slots, stale_s=self.stale_s)

    async def ensure_tables(self, conn: AsyncConnection[Any], schema: str) -> None:
        await store.ensure_tables(conn, schema)

    async def is_done(self, conn: AsyncConnection[Any], run_id: str) -> bool:
        return await store.run_status(conn, run_id) == "done"

    async def start(self, run: RunSpec) -> None:
        async with self.pool.connection() as conn:
            await store.start_run(conn, run.run_id, self.channels[0])

    async def approve(self, run_id: str) -> None:
        async with self.pool.connection() as conn:
            await store.approve(conn, run_id, self.channels[0])

    async def inspect(self, run_id: str) -> PersistedRun:
        async with self.pool.connection() as conn:
            found = await store.read_run(conn, run_id)
        if found is None:
            return PersistedRun(run_id, None, bytes_persisted=0, history_length=0)
        state, size = found
        return PersistedRun(run_id, state, bytes_persisted=size, history_length=len(state.steps))

    async def cleanup_stale(self, ttl_s: float) -> int:
        """Close runs waiting for approval longer than `ttl_s`; returns how many runs the
        TTL policy has closed in this run's schema (the workers' reaper included)."""
        async with self.pool.connection() as conn:
            await store.expire_waiting(conn, ttl_s, self.channels[1])
            return await store.count_expired(conn)

    def describe(self) -> dict[str, Any]:
        return {
            **self.describe_store(),
            "design": "one JSONB row per run, updated in place; status column; heartbeats",
            "stale_s": self.stale_s,
            "slots": self.slots,
            "idempotency": "none (fresh key per act call)",
            "fencing": "none",
            "commits_per_step": 1,
        }
