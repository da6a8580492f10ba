"""Postgres for `langgraph:postgres`: the embedded or configured server (harness.postgres),
one schema per run, `AsyncPostgresSaver` and the claim table in that schema.

It builds on `savers` (the commit acknowledgement) and `queue` (the claim SQL) and is
imported lazily (by `variants` and the backend), so psycopg loads only for this variant."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.serde.base import SerializerProtocol
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from backends.base import BackendEnv
from backends.langgraph.queue import ClaimQueue
from backends.langgraph.savers import CommitAcknowledger
from backends.langgraph.store import StoreSpec
from harness.errors import BackendError
from harness.measure import Recorder
from harness.platform.local import ComponentSpec
from harness.postgres import (
    backend_dsn,
    check_connection,
    create_schema,
    postgres_components,
    schema_for,
    wait_ready_async,
    with_search_path,
)

__all__ = [
    "PostgresClaimQueue",
    "RecordingPostgresSaver",
    "open_postgres_saver",
    "postgres_footprint",
    "postgres_store",
]

STORE_COMPONENT = "store"
# What LangGraph's docs prescribe for its Postgres saver's connections.
SAVER_CONNECTION_KWARGS: dict[str, Any] = {
    "autocommit": True,
    "prepare_threshold": 0,
    "row_factory": dict_row,
}


class RecordingPostgresSaver(CommitAcknowledger, AsyncPostgresSaver):
    pass


def postgres_store(env: BackendEnv, backend_name: str) -> tuple[StoreSpec, list[ComponentSpec]]:
    """The embedded server component ([] with --pg-dsn, whose server must answer now: one
    clear error instead of workers dying) and this backend's schema."""
    specs = postgres_components(env, name=STORE_COMPONENT)
    dsn = backend_dsn(env, STORE_COMPONENT)
    if env.external.pg_dsn:
        check_connection(dsn)
    schema = schema_for(env, backend_name)
    return StoreSpec("postgres", dsn=with_search_path(dsn, schema), schema=schema), specs


async def _prepare(store: StoreSpec) -> str:
    if store.dsn is None or store.schema is None:
        raise BackendError("langgraph:postgres: no DSN (set DURABENCH_LANGGRAPH_DSN)")
    await wait_ready_async(store.dsn)
    await asyncio.to_thread(create_schema, store.dsn, store.schema)
    return store.dsn


async def _pool(dsn: str, kwargs: dict[str, Any]) -> AsyncConnectionPool[Any]:
    """One pooled connection, replaced when it breaks (a server restart). The saver runs
    its operations one at a time behind its own lock, so more would sit idle. No
    `check` callback: it would add a round trip to every saver operation."""
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        dsn,
        min_size=1,
        max_size=1,
        kwargs=kwargs,
        open=False,
    )
    await pool.open(wait=True)
    return pool


@contextlib.asynccontextmanager
async def open_postgres_saver(
    store: StoreSpec, serde: SerializerProtocol, recorder: Recorder | None
) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    dsn = await _prepare(store)
    pool = await _pool(dsn, SAVER_CONNECTION_KWARGS)
    try:
        saver = RecordingPostgresSaver(pool, serde=serde)
        await saver.setup()
        if recorder is not None:
            saver.acknowledge_into(recorder)
        yield saver
    finally:
        await pool.close()


FOOTPRINT_SQL = """
SELECT (SELECT COUNT(*) FROM checkpoints WHERE thread_id = %(t)s) AS checkpoints,
       (SELECT COALESCE(SUM(pg_column_size(checkpoint) + pg_column_size(metadata)), 0)
          FROM checkpoints WHERE thread_id = %(t)s)
     + (SELECT COALESCE(SUM(pg_column_size(blob)), 0)
          FROM checkpoint_blobs WHERE thread_id = %(t)s)
     + (SELECT COALESCE(SUM(pg_column_size(blob)), 0)
          FROM checkpoint_writes WHERE thread_id = %(t)s) AS bytes
"""


async def postgres_footprint(saver: BaseCheckpointSaver[Any], thread_id: str) -> tuple[int, int]:
    """(checkpoints, bytes as stored, i.e. after TOAST compression) for one thread."""
    if not isinstance(saver, AsyncPostgresSaver) or not isinstance(saver.conn, AsyncConnectionPool):
        raise BackendError(f"no Postgres saver to count thread {thread_id} with")
    async with saver.conn.connection() as conn:
        cursor = await conn.execute(FOOTPRINT_SQL, {"t": thread_id})
        row = await cursor.fetchone()
    assert row is not None
    return int(row["checkpoints"]), int(row["bytes"])


class PostgresClaimQueue(ClaimQueue):
    """The claim table in the run's schema, next to LangGraph's checkpoint tables."""

    placeholder = "%s"
    skip_locked = " FOR UPDATE SKIP LOCKED"

    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self.pool = pool

    @classmethod
    async def open(cls, store: StoreSpec) -> PostgresClaimQueue:
        dsn = await _prepare(store)
        return cls(await _pool(dsn, {"autocommit": True}))

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        conn: AsyncConnection[Any]
        async with self.pool.connection() as conn:
            cursor = await conn.execute(sql, params)
            if cursor.description is None:
                return []
            return [tuple(r) for r in await cursor.fetchall()]

    async def close(self) -> None:
        await self.pool.close()
