"""What each variant opens: its saver, its claim table, and how its store counts a thread.

The one place that dispatches on the variant, above `savers`, `queue` and `pg` (which
import none of this), so the modules' dependencies point one way. Postgres is
imported only when the variant is `postgres`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from backends.langgraph.queue import ClaimQueue, SqliteClaimQueue
from backends.langgraph.savers import (
    SAVERS,
    SizedSerializer,
    memory_footprint,
    memory_saver,
    open_sqlite_saver,
    sqlite_footprint,
)
from backends.langgraph.store import StoreSpec
from harness.errors import BackendError
from harness.measure import Recorder

__all__ = ["footprint", "open_claims", "open_saver"]


@contextlib.asynccontextmanager
async def open_saver(
    store: StoreSpec, recorder: Recorder | None = None
) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    """The variant's saver, set up; with a recorder it writes `commit` rows (workers),
    without one it only reads (the backend's `inspect`)."""
    serde = SizedSerializer()
    if store.variant == "memory":
        yield memory_saver(serde, recorder)
    elif store.variant == "sqlite":
        assert store.sqlite_path is not None
        async with open_sqlite_saver(store.sqlite_path, serde, recorder) as sqlite_saver:
            yield sqlite_saver
    elif store.variant == "postgres":
        from backends.langgraph.pg import open_postgres_saver

        async with open_postgres_saver(store, serde, recorder) as pg_saver:
            yield pg_saver
    else:
        raise BackendError(f"unknown saver {store.variant!r}; savers: {', '.join(SAVERS)}")


@contextlib.asynccontextmanager
async def open_claims(store: StoreSpec) -> AsyncIterator[ClaimQueue]:
    """The claim table in the variant's store, created if missing."""
    queue: ClaimQueue
    if store.variant == "postgres":
        from backends.langgraph.pg import PostgresClaimQueue

        queue = await PostgresClaimQueue.open(store)
    else:
        path = store.claims_path
        if path is None:
            raise BackendError(f"langgraph:{store.variant}: no SQLite file for the claim table")
        queue = await SqliteClaimQueue.open(path)
    try:
        await queue.setup()
        yield queue
    finally:
        await queue.close()


async def footprint(saver: BaseCheckpointSaver[Any], thread_id: str) -> tuple[int, int]:
    """(checkpoints, bytes) the store holds for one thread, counted by the store itself:
    every checkpoint, channel blob and pending write of the thread."""
    if isinstance(saver, InMemorySaver):
        return memory_footprint(saver, thread_id)
    if isinstance(saver, AsyncSqliteSaver):
        return await sqlite_footprint(saver, thread_id)
    from backends.langgraph.pg import postgres_footprint

    return await postgres_footprint(saver, thread_id)
