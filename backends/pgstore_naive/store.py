"""pgstore-naive's one table and its statements: the store most teams write first.

One row per agent run holds the whole `RunState` as JSONB, overwritten after each
step. Work is handed out by a status column (queued → running → done, with
waiting for approvals); a heartbeat column lets another worker pick up a run whose
worker stopped beating. There is no event log, no fencing token and no
idempotency key: that is the design being measured, written competently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from backends.pgstore.store import ensure_tables as _ensure_tables
from harness.state import RunState

__all__ = [
    "Claimed",
    "Saved",
    "approve",
    "claim",
    "count_expired",
    "ensure_tables",
    "expire_waiting",
    "heartbeat",
    "read_run",
    "release_own",
    "run_status",
    "save",
    "start_run",
]

DDL = """
CREATE TABLE IF NOT EXISTS agent_runs (
    run_id        text PRIMARY KEY,
    status        text NOT NULL DEFAULT 'queued',
    worker        text,
    heartbeat_at  timestamptz,
    approved      boolean NOT NULL DEFAULT false,
    waiting_since timestamptz,
    state         jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    CHECK (status IN ('queued', 'running', 'waiting', 'done'))
);
CREATE INDEX IF NOT EXISTS agent_runs_claimable ON agent_runs (created_at)
    WHERE status IN ('queued', 'running');
CREATE INDEX IF NOT EXISTS agent_runs_waiting ON agent_runs (waiting_since)
    WHERE status = 'waiting'
"""

START = """
WITH r AS (
    INSERT INTO agent_runs (run_id, state) VALUES (%(run)s, %(state)s)
    ON CONFLICT DO NOTHING RETURNING run_id
)
SELECT pg_notify(%(work)s, run_id) FROM r
"""

CLAIM = """
UPDATE agent_runs a
SET status = 'running', worker = %(worker)s, heartbeat_at = clock_timestamp()
FROM (
    SELECT run_id, status, worker FROM agent_runs
    WHERE status = 'queued'
       OR (status = 'running'
           AND heartbeat_at < clock_timestamp() - %(stale)s * interval '1 second')
    ORDER BY created_at
    LIMIT %(n)s
    FOR UPDATE SKIP LOCKED
) c
WHERE a.run_id = c.run_id
RETURNING a.run_id, a.state, a.approved, c.status AS previous_status, c.worker AS previous_worker
"""

RELEASE_OWN = """
UPDATE agent_runs SET status = 'queued'
WHERE status = 'running' AND worker = %(worker)s
RETURNING run_id
"""

# After each step: the whole state, in place. A run reaching its approval wait parks
# as waiting unless the approval came first; a terminal state closes the run.
SAVE = """
WITH s AS (
    UPDATE agent_runs
    SET state = CASE WHEN %(wait)s AND approved
                     THEN jsonb_set(%(state)s, '{status}', '"running"') ELSE %(state)s END,
        updated_at = clock_timestamp(),
        heartbeat_at = clock_timestamp(),
        status = CASE WHEN %(done)s THEN 'done'
                      WHEN %(wait)s AND NOT approved THEN 'waiting'
                      ELSE status END,
        waiting_since = CASE WHEN %(wait)s AND NOT approved THEN clock_timestamp()
                             ELSE waiting_since END
    WHERE run_id = %(run)s
    RETURNING run_id, status, approved, pg_column_size(state) AS size
), note AS (
    SELECT pg_notify(%(channel)s, %(run)s) FROM s WHERE %(done)s
)
SELECT s.status, s.approved, s.size, (SELECT count(*) FROM note) FROM s
"""

HEARTBEAT = """
UPDATE agent_runs SET heartbeat_at = clock_timestamp()
WHERE run_id = ANY(%(runs)s) AND status = 'running'
"""

APPROVE = """
WITH r AS (
    UPDATE agent_runs
    SET approved = true,
        status = CASE WHEN status = 'waiting' THEN 'queued' ELSE status END
    WHERE run_id = %(run)s AND NOT approved AND status <> 'done'
    RETURNING run_id
)
SELECT pg_notify(%(work)s, run_id) FROM r
"""

EXPIRE = """
WITH stale AS (
    SELECT run_id FROM agent_runs
    WHERE status = 'waiting'
      AND waiting_since < clock_timestamp() - %(ttl)s * interval '1 second'
    FOR UPDATE SKIP LOCKED
), r AS (
    UPDATE agent_runs
    SET status = 'done', state = jsonb_set(state, '{status}', '"expired"'),
        updated_at = clock_timestamp()
    FROM stale WHERE agent_runs.run_id = stale.run_id
    RETURNING agent_runs.run_id
)
SELECT run_id, pg_notify(%(done)s, run_id) FROM r
"""


@dataclass(frozen=True)
class Claimed:
    run_id: str
    state: RunState
    approved: bool
    takeover: bool
    previous_worker: str | None


@dataclass(frozen=True)
class Saved:
    status: str
    approved: bool
    bytes: int


async def ensure_tables(conn: AsyncConnection[Any], schema: str) -> None:
    await _ensure_tables(conn, schema, DDL)


async def start_run(conn: AsyncConnection[Any], run_id: str, work: str) -> None:
    state = RunState(run_id, "pending").to_dict()
    await conn.execute(START, {"run": run_id, "state": Jsonb(state), "work": work})


async def claim(conn: AsyncConnection[Any], worker: str, n: int, stale_s: float) -> list[Claimed]:
    cursor = await conn.execute(CLAIM, {"worker": worker, "n": n, "stale": stale_s})
    return [
        Claimed(str(run_id), RunState.from_dict(state), bool(approved), prev == "running", prev_w)
        for run_id, state, approved, prev, prev_w in await cursor.fetchall()
    ]


async def release_own(conn: AsyncConnection[Any], worker: str) -> list[str]:
    """On worker start: runs this worker id held before it restarted go back to the queue."""
    cursor = await conn.execute(RELEASE_OWN, {"worker": worker})
    return [str(r) for (r,) in await cursor.fetchall()]


async def save(
    conn: AsyncConnection[Any], state: RunState, *, wait: bool, done_channel: str
) -> Saved:
    done = state.status in ("completed", "aborted")
    cursor = await conn.execute(
        SAVE,
        {
            "run": state.run_id,
            "state": Jsonb(state.to_dict()),
            "wait": wait,
            "done": done,
            "channel": done_channel,
        },
    )
    row = await cursor.fetchone()
    if row is None:
        return Saved("missing", False, 0)
    status, approved, size, _ = row
    return Saved(str(status), bool(approved), int(size))


async def heartbeat(conn: AsyncConnection[Any], runs: list[str]) -> None:
    await conn.execute(HEARTBEAT, {"runs": runs})


async def approve(conn: AsyncConnection[Any], run_id: str, work: str) -> None:
    await conn.execute(APPROVE, {"run": run_id, "work": work})


async def expire_waiting(conn: AsyncConnection[Any], ttl_s: float, done_channel: str) -> list[str]:
    cursor = await conn.execute(EXPIRE, {"ttl": ttl_s, "done": done_channel})
    return [str(run_id) for run_id, _ in await cursor.fetchall()]


async def count_expired(conn: AsyncConnection[Any]) -> int:
    cursor = await conn.execute(
        "SELECT count(*) FROM agent_runs WHERE state->>'status' = 'expired'"
    )
    row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def read_run(conn: AsyncConnection[Any], run_id: str) -> tuple[RunState, int] | None:
    cursor = await conn.execute(
        "SELECT state, pg_column_size(state) FROM agent_runs WHERE run_id = %s", (run_id,)
    )
    row = await cursor.fetchone()
    if row is None:
        return None
    return RunState.from_dict(row[0]), int(row[1])


async def run_status(conn: AsyncConnection[Any], run_id: str) -> str | None:
    cursor = await conn.execute("SELECT status FROM agent_runs WHERE run_id = %s", (run_id,))
    row = await cursor.fetchone()
    return None if row is None else str(row[0])
