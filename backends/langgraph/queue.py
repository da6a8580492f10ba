"""The durable thread-claim table: LangGraph has no job queue, so the backend brings one.

One row per agent run (thread). `start` inserts it `pending`; a worker claims rows by
compare-and-set (owner, lease) and renews the lease while it runs them; the outcome
goes back into the row. A worker that dies leaves its rows `running` under its
owner: its restarted incarnation (same slot) takes them back at once, any other
worker once the lease ran out. A run waiting for approval is parked without owner
and becomes claimable again when approved or when its TTL deadline passed.

The same SQL runs on SQLite (one writer at a time, so a claim is atomic) and on
Postgres (`FOR UPDATE SKIP LOCKED`), behind two tiny adapters.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite

from backends.langgraph.store import SQLITE_TIMEOUT_S
from harness.errors import BackendError

__all__ = [
    "CLAIMABLE_STATUSES",
    "CLAIM_BATCH",
    "FINAL_STATUSES",
    "LEASE_S",
    "POLL_INTERVAL_S",
    "Claim",
    "ClaimQueue",
    "SqliteClaimQueue",
]

TABLE = "durabench_lg_claims"
FINAL_STATUSES = frozenset({"completed", "aborted", "expired", "failed"})
CLAIMABLE_STATUSES = ("pending", "running", "waiting_approval")
LOCKED_RETRIES = 12  # about 10 s of backoff in all
LOCKED_BACKOFF_S = 0.01
LOCKED_BACKOFF_CAP_S = 2.0
POLL_INTERVAL_S = 0.02  # a worker's claim poll when it found nothing to do
CLAIM_BATCH = 4  # rows per claim, so several workers share a burst of starts
LEASE_S = 10.0  # another worker may take a thread whose lease ran out

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    thread_id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    status TEXT NOT NULL,
    owner TEXT,
    slot TEXT,
    lease_until DOUBLE PRECISION,
    claims INTEGER NOT NULL DEFAULT 0,
    approved_at DOUBLE PRECISION,
    approval_requested_at DOUBLE PRECISION,
    approval_deadline DOUBLE PRECISION,
    error TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
)
"""
COLUMNS = (
    "thread_id, run_id, status, owner, slot, claims, approved_at, "
    "approval_requested_at, approval_deadline, error"
)


@dataclass(frozen=True)
class Claim:
    """One row of the claim table."""

    thread_id: str
    run_id: str
    status: str
    owner: str | None
    slot: str | None
    claims: int
    approved_at: float | None
    approval_requested_at: float | None
    approval_deadline: float | None
    error: str | None

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Claim:
        return cls(*row)


class ClaimQueue:
    """The claim-table operations; subclasses only say how to run one statement."""

    placeholder = "?"
    skip_locked = ""

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    def _sql(self, sql: str) -> str:
        return sql.replace("?", self.placeholder)

    async def _run(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return await self.execute(self._sql(sql), params)

    async def setup(self) -> None:
        await self._run(SCHEMA)
        await self._run(f"CREATE INDEX IF NOT EXISTS {TABLE}_status ON {TABLE} (status)")

    async def enqueue(self, thread_id: str, run_id: str) -> None:
        now = time.time()
        rows = await self._run(
            f"INSERT INTO {TABLE} (thread_id, run_id, status, created_at, updated_at)"
            " VALUES (?, ?, 'pending', ?, ?) ON CONFLICT (thread_id) DO NOTHING"
            " RETURNING thread_id",
            (thread_id, run_id, now, now),
        )
        if not rows:
            raise BackendError(f"langgraph: thread {thread_id} was already started")

    @staticmethod
    def _claimable(owner: str, slot: str, now: float, pin: bool) -> tuple[str, tuple[Any, ...]]:
        sql = (
            "(status = 'pending'"
            " OR (status = 'running' AND (lease_until < ? OR (slot = ? AND owner <> ?)))"
            " OR (status = 'waiting_approval'"
            " AND (approved_at IS NOT NULL OR approval_deadline < ?)"
            + (" AND slot = ?))" if pin else "))")
        )
        return sql, (now, slot, owner, now, *((slot,) if pin else ()))

    async def claim(
        self, owner: str, slot: str, limit: int, lease_s: float, pin_waiting: bool
    ) -> list[Claim]:
        """Claim up to `limit` runnable rows: pending, abandoned (lease over, or held by a
        dead incarnation of this slot), or parked and now approved or past the deadline.
        `pin_waiting` keeps a parked run on the slot that parked it (memory saver)."""
        now = time.time()
        where, params = self._claimable(owner, slot, now, pin_waiting)
        found = await self._run(f"SELECT 1 FROM {TABLE} WHERE {where} LIMIT 1", params)
        if not found:  # read-only poll: no write lock unless there is work
            return []
        rows = await self._run(
            f"UPDATE {TABLE} SET status = 'running', owner = ?, slot = ?, lease_until = ?,"
            " claims = claims + 1, updated_at = ?"
            f" WHERE thread_id IN (SELECT thread_id FROM {TABLE} WHERE {where}"
            f" ORDER BY created_at LIMIT ?{self.skip_locked})"
            f" RETURNING {COLUMNS}",
            (owner, slot, now + lease_s, now, *params, limit),
        )
        return [Claim.from_row(r) for r in rows]

    async def renew(self, owner: str, lease_s: float) -> None:
        await self._run(
            f"UPDATE {TABLE} SET lease_until = ? WHERE owner = ? AND status = 'running'",
            (time.time() + lease_s, owner),
        )

    async def release_all(self, owner: str) -> None:
        """A worker stopping cleanly hands its running threads back."""
        await self._run(
            f"UPDATE {TABLE} SET status = 'pending', owner = NULL, updated_at = ?"
            " WHERE owner = ? AND status = 'running'",
            (time.time(), owner),
        )

    async def park(self, thread_id: str, owner: str, requested_at: float, ttl_s: float) -> None:
        """The run waits for approval; the first park fixes the request time and deadline."""
        await self._run(
            f"UPDATE {TABLE} SET status = 'waiting_approval', owner = NULL, updated_at = ?,"
            " approval_requested_at = COALESCE(approval_requested_at, ?),"
            " approval_deadline = COALESCE(approval_deadline, ?)"
            " WHERE thread_id = ? AND owner = ?",
            (time.time(), requested_at, requested_at + ttl_s, thread_id, owner),
        )

    async def finish(self, thread_id: str, owner: str, status: str, error: str | None) -> None:
        await self._run(
            f"UPDATE {TABLE} SET status = ?, owner = NULL, error = ?, updated_at = ?"
            " WHERE thread_id = ? AND owner = ?",
            (status, error, time.time(), thread_id, owner),
        )

    async def approve(self, thread_id: str) -> None:
        await self._run(
            f"UPDATE {TABLE} SET approved_at = COALESCE(approved_at, ?) WHERE thread_id = ?",
            (time.time(), thread_id),
        )

    async def get(self, thread_id: str) -> Claim | None:
        rows = await self._run(f"SELECT {COLUMNS} FROM {TABLE} WHERE thread_id = ?", (thread_id,))
        return Claim.from_row(rows[0]) if rows else None

    async def expire_overdue(self, ttl_s: float) -> int:
        """Bring the deadline of runs parked longer than `ttl_s` forward to now, so a
        worker expires them; returns how many were overdue."""
        now = time.time()
        rows = await self._run(
            f"UPDATE {TABLE} SET approval_deadline = ? WHERE status = 'waiting_approval'"
            " AND approved_at IS NULL AND approval_requested_at + ? < ?"
            " AND approval_deadline > ? RETURNING thread_id",
            (now, ttl_s, now, now),
        )
        return len(rows)

    async def count(self, status: str) -> int:
        rows = await self._run(f"SELECT COUNT(*) FROM {TABLE} WHERE status = ?", (status,))
        return int(rows[0][0])


class SqliteClaimQueue(ClaimQueue):
    """The claim table in a SQLite file (the checkpoint file for `langgraph:sqlite`)."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db

    @classmethod
    async def open(cls, path: Path) -> SqliteClaimQueue:
        db = await aiosqlite.connect(path, timeout=SQLITE_TIMEOUT_S, isolation_level=None)
        await db.execute("PRAGMA journal_mode=WAL")
        return cls(db)

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """One autocommit statement. SQLite can answer SQLITE_BUSY at once, without its busy
        handler (a WAL snapshot conflict between the workers' and the harness's
        connections); the statement did not happen then, so it is retried, bounded."""
        for retry in range(LOCKED_RETRIES):
            try:
                async with self.db.execute(sql, params) as cursor:
                    return [tuple(r) for r in await cursor.fetchall()]
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or retry == LOCKED_RETRIES - 1:
                    raise
                await asyncio.sleep(min(LOCKED_BACKOFF_CAP_S, LOCKED_BACKOFF_S * 2**retry))
        raise AssertionError("unreachable")

    async def close(self) -> None:
        await self.db.close()
