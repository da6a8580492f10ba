"""`pgstore`: an event-sourced agent state store on Postgres, done right.

Every phase result is an event appended under a lease with a fencing token; state
is the fold of the log; work comes from a queue claimed with FOR UPDATE SKIP
LOCKED; act carries a stable idempotency key; approval waits are a state that a
TTL policy closes. See `worker.py` for the loop and `store.py` for the SQL.

Options (`pgstore?lease_s=1&workers=2`): `lease_s` (default 10), `workers`
(default: the scenario's), `slots` (runs in flight per worker, 64),
`snapshot_every` (events between snapshots, 0 = never; 256). Besides the generic
crash points, the worker marks `after_act_recorded` (the act event is committed,
verify has not run) for `crash_point` faults.
"""

from __future__ import annotations

from typing import Annotated, Any

from psycopg import AsyncConnection
from pydantic import Field

from backends.base import Guarantees, RunSpec
from backends.options import BackendOptions, Count, Seconds, Workers
from backends.pgstore import store
from backends.pgstore.backend_base import PostgresStoreBackend, positive_float, positive_int
from backends.pgstore.fold import CorruptLog, fold
from backends.pgstore.worker import PgStoreOptions
from harness.state import PersistedRun

__all__ = ["PgStoreBackend", "PgStoreBackendOptions"]


class PgStoreBackendOptions(BackendOptions):
    """`pgstore?workers=N&lease_s=S&slots=N&snapshot_every=N` (see the module docstring)."""

    workers: Workers | None = None
    lease_s: Seconds = 10.0
    slots: Count = 64
    snapshot_every: Annotated[int, Field(ge=0, le=10**9)] = 256


class PgStoreBackend(PostgresStoreBackend):
    name = "pgstore"
    guarantees = Guarantees(durable=True, stable_act_keys=True)
    worker_module = "backends.pgstore.worker"
    Options = PgStoreBackendOptions

    def __init__(
        self,
        workers: int | str | None = None,
        lease_s: float | str = 10.0,
        slots: int | str = 64,
        snapshot_every: int | str = 256,
    ) -> None:
        super().__init__(workers, slots)
        self.lease_s = positive_float("lease_s", lease_s)
        self.snapshot_every = positive_int("snapshot_every", snapshot_every, minimum=0)

    def worker_options(self) -> PgStoreOptions:
        return PgStoreOptions(
            schema=self.schema,
            slots=self.slots,
            lease_s=self.lease_s,
            snapshot_every=self.snapshot_every,
        )

    async def ensure_tables(self, conn: AsyncConnection[Any], schema: str) -> None:
        await store.ensure_tables(conn, schema)

    async def is_done(self, conn: AsyncConnection[Any], run_id: str) -> bool:
        return await store.run_status(conn, run_id) == "done"

    async def start(self, run: RunSpec) -> None:
        async with self.pool.connection() as conn:
            await store.start_run(
                conn, run.run_id, {"deadline_s": run.deadline_s}, self.channels[0]
            )

    async def approve(self, run_id: str) -> None:
        async with self.pool.connection() as conn:
            await store.approve(conn, run_id, self.channels[0])

    async def inspect(self, run_id: str) -> PersistedRun:
        """Fold the whole log (not the snapshots: they are a cache of the same fold)."""
        async with self.pool.connection() as conn:
            rows = await store.read_events(conn, run_id)
            cursor = await conn.execute(
                "SELECT coalesce(sum(pg_column_size(state)), 0), count(*) FROM snapshots "
                "WHERE run_id = %s",
                (run_id,),
            )
            snapshot_row = await cursor.fetchone()
        snapshot_bytes, snapshots = (
            (int(snapshot_row[0]), int(snapshot_row[1])) if snapshot_row else (0, 0)
        )
        event_bytes = sum(size for _, _, size in rows)
        extra: dict[str, Any] = {
            "events": len(rows),
            "event_bytes": event_bytes,
            "snapshots": snapshots,
            "snapshot_bytes": snapshot_bytes,
        }
        if not rows:
            return PersistedRun(run_id, None, bytes_persisted=0, history_length=0, extra=extra)
        try:
            progress = fold(run_id, rows)
        except (CorruptLog, KeyError, TypeError, ValueError) as exc:
            extra["error"] = f"{type(exc).__name__}: {exc}"
            return PersistedRun(run_id, None, event_bytes + snapshot_bytes, len(rows), extra)
        return PersistedRun(
            run_id,
            progress.state(),
            bytes_persisted=event_bytes + snapshot_bytes,
            history_length=len(rows),
            extra=extra,
        )

    async def bytes_by_step(self, run_id: str) -> dict[int, int]:
        """Persisted event payload bytes per step (the state-bloat figure per step)."""
        async with self.pool.connection() as conn:
            return await store.bytes_by_step(conn, run_id)

    async def cleanup_stale(self, ttl_s: float) -> int:
        """Close runs waiting for approval longer than `ttl_s` (the workers' reaper does the
        same continuously with the scenario's TTL) and return how many runs the TTL policy
        has closed in this run's schema, counted from the persisted `expired` events."""
        async with self.pool.connection() as conn:
            await store.expire_waiting(conn, ttl_s, self.channels[1])
            return await store.count_expired(conn)

    def describe(self) -> dict[str, Any]:
        return {
            **self.describe_store(),
            "design": "event-sourced: append-only events, fold, lease + fencing token",
            "lease_s": self.lease_s,
            "slots": self.slots,
            "snapshot_every": self.snapshot_every,
            "idempotency": "stable key per (run, step, attempt)",
            "commits_per_step": "reason, act, verify+step_committed (3 when verify passes)",
        }
