"""pgstore's tables and every statement it runs against them.

`runs` is the work queue (one row per agent run: queue status, fencing token, lease,
next sequence number); `events` is the append-only log with a unique (run_id, seq);
`snapshots` caches a fold every K events. Each write is ONE statement (one
transaction, one round trip): the lease and token check, the sequence allocation,
the event insert and the notification commit or fail together.

Queue status: queued → leased → (waiting → queued)* → done. The fencing token is
incremented on every claim; an append carrying an older token, or made after the
lease ran out, inserts nothing (`Fenced`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.types.json import Jsonb

from backends.pgstore.fold import Event, Progress, fold
from harness.errors import DurabenchError

__all__ = [
    "Appended",
    "Claim",
    "Fenced",
    "append",
    "approve",
    "bytes_by_step",
    "claim",
    "count_expired",
    "ensure_tables",
    "expire_waiting",
    "heartbeat",
    "load",
    "read_events",
    "release_own",
    "run_status",
    "start_run",
    "write_snapshot",
]

DDL_LOCK = 0x64757261  # pg_advisory_xact_lock key: setup and workers create tables once

DDL = """
CREATE TABLE IF NOT EXISTS runs (
    run_id        text PRIMARY KEY,
    status        text NOT NULL DEFAULT 'queued',
    token         bigint NOT NULL DEFAULT 0,
    worker        text,
    lease_until   timestamptz,
    next_seq      integer NOT NULL DEFAULT 1,
    approved      boolean NOT NULL DEFAULT false,
    waiting_since timestamptz,
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    CHECK (status IN ('queued', 'leased', 'waiting', 'done'))
);
CREATE INDEX IF NOT EXISTS runs_claimable ON runs (created_at)
    WHERE status IN ('queued', 'leased');
CREATE INDEX IF NOT EXISTS runs_waiting ON runs (waiting_since) WHERE status = 'waiting';
CREATE TABLE IF NOT EXISTS events (
    run_id      text NOT NULL,
    seq         integer NOT NULL,
    type        text NOT NULL,
    step        integer,
    attempt     integer,
    token       bigint NOT NULL,
    payload     jsonb NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (run_id, seq)
);
CREATE TABLE IF NOT EXISTS snapshots (
    run_id text NOT NULL,
    seq    integer NOT NULL,
    state  jsonb NOT NULL,
    PRIMARY KEY (run_id, seq)
);
"""

START = """
WITH r AS (
    INSERT INTO runs (run_id) VALUES (%(run)s) ON CONFLICT DO NOTHING RETURNING run_id
), e AS (
    INSERT INTO events (run_id, seq, type, token, payload)
    SELECT run_id, 0, 'run_started', 0, %(payload)s FROM r RETURNING run_id
)
SELECT pg_notify(%(work)s, run_id) FROM e
"""

CLAIM = """
UPDATE runs r
SET status = 'leased', token = r.token + 1, worker = %(worker)s,
    lease_until = clock_timestamp() + %(lease)s * interval '1 second'
FROM (
    SELECT run_id, status, worker FROM runs
    WHERE status = 'queued' OR (status = 'leased' AND lease_until < clock_timestamp())
    ORDER BY created_at
    LIMIT %(n)s
    FOR UPDATE SKIP LOCKED
) c
WHERE r.run_id = c.run_id
RETURNING r.run_id, r.token, c.status AS previous_status, c.worker AS previous_worker
"""

# The fenced append: token and lease checked, seq allocated, events inserted, queue
# status moved and the done notification queued, all in one statement.
APPEND = """
WITH lease AS (
    UPDATE runs
    SET next_seq = next_seq + %(n)s,
        lease_until = clock_timestamp() + %(lease)s * interval '1 second',
        status = CASE WHEN %(done)s THEN 'done'
                      WHEN %(wait)s AND NOT approved THEN 'waiting'
                      ELSE status END,
        waiting_since = CASE WHEN %(wait)s AND NOT approved THEN clock_timestamp()
                             ELSE waiting_since END
    WHERE run_id = %(run)s AND token = %(token)s AND status = 'leased'
      AND lease_until > clock_timestamp()
    RETURNING run_id, next_seq - %(n)s AS first, status, approved
), ins AS (
    INSERT INTO events (run_id, seq, type, step, attempt, token, payload)
    SELECT lease.run_id, lease.first + e.i, e.type, e.step, e.attempt, %(token)s, e.payload
    FROM lease,
         jsonb_to_recordset(%(events)s)
            AS e(i integer, type text, step integer, attempt integer, payload jsonb)
    RETURNING pg_column_size(payload) AS size
), note AS (
    SELECT pg_notify(%(channel)s, %(run)s) FROM lease WHERE %(done)s
)
SELECT lease.first, lease.status, lease.approved,
       (SELECT coalesce(sum(size), 0) FROM ins)::bigint,
       (SELECT count(*) FROM note)
FROM lease
"""

# A restarted worker ends the leases its previous incarnation held (same worker id):
# they become claimable at once, and the old incarnation, were it alive, is fenced.
RELEASE_OWN = """
UPDATE runs SET lease_until = clock_timestamp()
WHERE status = 'leased' AND worker = %(worker)s
RETURNING run_id
"""

# Extends the leases still held and returns the runs whose lease is LOST: taken over
# (another token) or run out (still leased, not extended). Runs this worker parked or
# finished meanwhile are neither (the outer SELECT sees the rows before the UPDATE).
HEARTBEAT = """
WITH h AS (
    SELECT * FROM unnest(%(runs)s::text[], %(tokens)s::bigint[]) AS h(run_id, token)
), extended AS (
    UPDATE runs SET lease_until = clock_timestamp() + %(lease)s * interval '1 second'
    FROM h
    WHERE runs.run_id = h.run_id AND runs.token = h.token AND runs.status = 'leased'
      AND runs.lease_until > clock_timestamp()
    RETURNING runs.run_id
)
SELECT h.run_id FROM h JOIN runs r ON r.run_id = h.run_id
WHERE h.run_id NOT IN (SELECT run_id FROM extended)
  AND (r.token <> h.token OR r.status = 'leased')
"""

SNAPSHOT = """
INSERT INTO snapshots (run_id, seq, state)
SELECT run_id, %(seq)s, %(state)s FROM runs WHERE run_id = %(run)s AND token = %(token)s
ON CONFLICT DO NOTHING
"""

APPROVE = """
WITH r AS (
    UPDATE runs
    SET approved = true, next_seq = next_seq + 1,
        status = CASE WHEN status = 'waiting' THEN 'queued' ELSE status END
    WHERE run_id = %(run)s AND NOT approved AND status <> 'done'
    RETURNING run_id, next_seq - 1 AS seq, token
), e AS (
    INSERT INTO events (run_id, seq, type, token, payload)
    SELECT run_id, seq, 'approved', token, '{}'::jsonb FROM r RETURNING run_id
)
SELECT pg_notify(%(work)s, run_id) FROM e
"""

EXPIRE = """
WITH stale AS (
    SELECT run_id FROM runs
    WHERE status = 'waiting'
      AND waiting_since < clock_timestamp() - %(ttl)s * interval '1 second'
    FOR UPDATE SKIP LOCKED
), r AS (
    UPDATE runs SET status = 'done', token = runs.token + 1, next_seq = runs.next_seq + 1
    FROM stale WHERE runs.run_id = stale.run_id
    RETURNING runs.run_id, runs.next_seq - 1 AS seq, runs.token
), e AS (
    INSERT INTO events (run_id, seq, type, token, payload)
    SELECT run_id, seq, 'expired', token, %(payload)s FROM r RETURNING run_id
)
SELECT run_id, pg_notify(%(done)s, run_id) FROM e
"""

EVENTS = """
SELECT seq, type, step, attempt, payload, pg_column_size(payload)
FROM events WHERE run_id = %(run)s AND seq > %(after)s ORDER BY seq
"""


class Fenced(DurabenchError):
    """The append was refused: another worker holds the run now, or the lease ran out."""


@dataclass(frozen=True)
class Claim:
    run_id: str
    token: int
    takeover: bool  # the lease of another (or an earlier) worker had expired
    previous_worker: str | None


@dataclass(frozen=True)
class Appended:
    first_seq: int
    status: str  # queue status after the append: leased | waiting | done
    approved: bool
    bytes: int


async def ensure_tables(conn: AsyncConnection[Any], schema: str, ddl: str = DDL) -> None:
    """Create the run's schema and tables once, even with workers and setup racing
    (an advisory lock serialises them; every statement is IF NOT EXISTS)."""
    name = sql.Identifier(schema)
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (DDL_LOCK,))
        await conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(name))
        await conn.execute(sql.SQL("SET LOCAL search_path = {}").format(name))
        for statement in filter(str.strip, ddl.split(";")):
            await conn.execute(statement)


async def start_run(
    conn: AsyncConnection[Any], run_id: str, payload: dict[str, Any], work: str
) -> None:
    await conn.execute(START, {"run": run_id, "payload": Jsonb(payload), "work": work})


async def claim(conn: AsyncConnection[Any], worker: str, n: int, lease_s: float) -> list[Claim]:
    cursor = await conn.execute(CLAIM, {"worker": worker, "n": n, "lease": lease_s})
    return [
        Claim(str(run_id), int(token), previous == "leased", prev_worker)
        for run_id, token, previous, prev_worker in await cursor.fetchall()
    ]


async def append(
    conn: AsyncConnection[Any],
    run_id: str,
    token: int,
    events: list[Event],
    *,
    lease_s: float,
    done_channel: str,
    park: bool = False,
) -> Appended:
    """Append events under the lease, or raise Fenced. An `approval_requested` event (or
    `park`) parks the run as waiting unless it was approved already; a terminal event
    closes it."""
    done = any(e.type in ("run_completed", "run_aborted") for e in events)
    wait = park or any(e.type == "approval_requested" for e in events)
    rows = [{"i": i, **e.to_json()} for i, e in enumerate(events)]
    cursor = await conn.execute(
        APPEND,
        {
            "run": run_id,
            "token": token,
            "n": len(events),
            "lease": lease_s,
            "done": done,
            "wait": wait,
            "events": Jsonb(rows),
            "channel": done_channel,
        },
    )
    row = await cursor.fetchone()
    if row is None:
        raise Fenced(f"{run_id}: append with token {token} refused (lease taken over or expired)")
    first, status, approved, size, _ = row
    return Appended(int(first), str(status), bool(approved), int(size))


async def release_own(conn: AsyncConnection[Any], worker: str) -> list[str]:
    cursor = await conn.execute(RELEASE_OWN, {"worker": worker})
    return [str(r) for (r,) in await cursor.fetchall()]


async def heartbeat(conn: AsyncConnection[Any], leases: dict[str, int], lease_s: float) -> set[str]:
    """Extend the leases still held; returns the run ids whose lease was extended."""
    runs = list(leases)
    cursor = await conn.execute(
        HEARTBEAT, {"lease": lease_s, "runs": runs, "tokens": [leases[r] for r in runs]}
    )
    return {str(r) for (r,) in await cursor.fetchall()}


async def write_snapshot(
    conn: AsyncConnection[Any], run_id: str, token: int, progress: Progress
) -> None:
    await conn.execute(
        SNAPSHOT,
        {
            "run": run_id,
            "token": token,
            "seq": progress.last_seq,
            "state": Jsonb(progress.to_dict()),
        },
    )


async def read_events(
    conn: AsyncConnection[Any], run_id: str, after: int = -1
) -> list[tuple[int, Event, int]]:
    cursor = await conn.execute(EVENTS, {"run": run_id, "after": after})
    return [
        (int(seq), Event(kind, step, attempt, payload), int(size))
        for seq, kind, step, attempt, payload, size in await cursor.fetchall()
    ]


async def load(conn: AsyncConnection[Any], run_id: str, use_snapshot: bool = True) -> Progress:
    """Fold the run's log, starting from its latest snapshot when asked."""
    snapshot = None
    if use_snapshot:
        cursor = await conn.execute(
            "SELECT state FROM snapshots WHERE run_id = %s ORDER BY seq DESC LIMIT 1", (run_id,)
        )
        row = await cursor.fetchone()
        if row is not None:
            data = row[0] if isinstance(row[0], dict) else json.loads(row[0])
            snapshot = Progress.from_dict(data)
    after = snapshot.last_seq if snapshot is not None else -1
    return fold(run_id, await read_events(conn, run_id, after), snapshot)


async def approve(conn: AsyncConnection[Any], run_id: str, work: str) -> bool:
    """Append the approval event (once); a waiting run goes back to the queue."""
    cursor = await conn.execute(APPROVE, {"run": run_id, "work": work})
    return await cursor.fetchone() is not None


async def expire_waiting(conn: AsyncConnection[Any], ttl_s: float, done_channel: str) -> list[str]:
    """Close every run waiting for approval longer than the TTL (the zombie case)."""
    cursor = await conn.execute(
        EXPIRE, {"ttl": ttl_s, "payload": Jsonb({"ttl_s": ttl_s}), "done": done_channel}
    )
    return [str(run_id) for run_id, _ in await cursor.fetchall()]


async def count_expired(conn: AsyncConnection[Any]) -> int:
    cursor = await conn.execute("SELECT count(*) FROM events WHERE type = 'expired'")
    row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def run_status(conn: AsyncConnection[Any], run_id: str) -> str | None:
    cursor = await conn.execute("SELECT status FROM runs WHERE run_id = %s", (run_id,))
    row = await cursor.fetchone()
    return None if row is None else str(row[0])


async def bytes_by_step(conn: AsyncConnection[Any], run_id: str) -> dict[int, int]:
    """Persisted payload bytes per step (events with no step, e.g. run_started, excluded)."""
    cursor = await conn.execute(
        "SELECT step, sum(pg_column_size(payload)) FROM events "
        "WHERE run_id = %s AND step IS NOT NULL GROUP BY step ORDER BY step",
        (run_id,),
    )
    return {int(step): int(size) for step, size in await cursor.fetchall()}
