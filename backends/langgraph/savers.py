"""The checkpointers, and the one place the `commit` phase row is written.

Every variant uses LangGraph's own async saver unchanged (`InMemorySaver`,
`AsyncSqliteSaver`, `AsyncPostgresSaver`) with a thin subclass around `aput`: when
the checkpoint being saved is the first one whose `history` holds a step, the step
is committed, and the `commit` row is written *after that `aput` returned* (the
saver's own commit: SQLite COMMIT, Postgres autocommit, a dict insert for memory).
So each durability mode is measured for what it really does: `sync` waits for that
put before the next superstep, `async` overlaps it with the next one, `exit` puts
once when the invocation ends (one put then acknowledges every step it holds).
`row.bytes` is what the saver serialized for that put.
"""

from __future__ import annotations

import contextlib
import contextvars
import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import aiosqlite
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
)
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from harness.errors import BackendError
from harness.measure import PhaseRow, Recorder

__all__ = [
    "DSN_ENV",
    "DURABILITIES",
    "LANGGRAPH_DEFAULT_DURABILITY",
    "SAVERS",
    "SAVER_CLASSES",
    "CommitAcknowledger",
    "StoreSpec",
    "check_sqlite_writable",
    "footprint",
    "open_saver",
    "package_versions",
    "sqlite_synchronous",
]

DSN_ENV = "DURABENCH_LANGGRAPH_DSN"  # how workers get the Postgres DSN (not on argv)
SAVERS = ("memory", "sqlite", "postgres")
DURABILITIES = ("exit", "async", "sync")
# What `ainvoke(durability=None)` does, per the installed langgraph's docstring
# ("The durability mode for the graph execution, defaults to "async""); a test
# checks that docstring, so a changed default cannot go unnoticed.
LANGGRAPH_DEFAULT_DURABILITY = "async"
SAVER_CLASSES = {
    "memory": "InMemorySaver",
    "sqlite": "AsyncSqliteSaver",
    "postgres": "AsyncPostgresSaver",
}
SQLITE_TIMEOUT_S = 30.0  # busy timeout: several worker processes share one file
PACKAGES = (
    "langgraph",
    "langgraph-checkpoint",
    "langgraph-checkpoint-sqlite",
    "langgraph-checkpoint-postgres",
    "psycopg",
    "aiosqlite",
)

# Bytes serialized inside the `aput` running in this context (None: not counting).
_PUT_BYTES: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar(
    "durabench_put_bytes", default=None
)


class SizedSerializer(JsonPlusSerializer):
    """LangGraph's default serializer, also counting the bytes of the put in progress.
    (A subclass, so LangGraph's msgpack allowlist handling still applies.)"""

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        kind, data = super().dumps_typed(obj)
        counter = _PUT_BYTES.get()
        if counter is not None:
            counter[0] += len(data)
        return kind, data


class CommitAcknowledger(BaseCheckpointSaver[Any]):
    """Mixin over a saver's `aput`: writes the `commit` row of every step that the
    checkpoint being saved is the first to hold, once the saver acknowledged it."""

    _recorder: Recorder | None = None
    _acknowledged: dict[str, int]

    def acknowledge_into(self, recorder: Recorder) -> None:
        self._recorder = recorder
        self._acknowledged = {}

    def expect(self, thread_id: str, committed: int) -> None:
        """A thread is (re)started with `committed` steps already in its checkpoint."""
        self._acknowledged[thread_id] = committed

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        recorder = self._recorder
        thread_id = str(config["configurable"]["thread_id"])
        history: Sequence[dict[str, Any]] = checkpoint["channel_values"].get("history") or ()
        done = self._acknowledged.get(thread_id, 0) if recorder is not None else len(history)
        if recorder is None or len(history) <= done:
            return await super().aput(config, checkpoint, metadata, new_versions)
        counter = [0]
        token = _PUT_BYTES.set(counter)
        start = time.time()
        outcome: Any = "ok"
        error = None
        try:
            return await super().aput(config, checkpoint, metadata, new_versions)
        except BaseException as exc:
            outcome, error = "info", f"{type(exc).__name__}: {exc}"[:500]  # may have landed
            raise
        finally:
            _PUT_BYTES.reset(token)
            end = time.time()
            if outcome == "ok":
                self._acknowledged[thread_id] = len(history)
            run_id = str(checkpoint["channel_values"].get("run_id", thread_id))
            closing = history[-1]["index"]
            for record in history[done:]:
                last = record["index"] == closing
                row = PhaseRow(
                    recorder.backend,
                    run_id,
                    int(record["index"]),
                    int(record["attempts"]),
                    "commit",
                    recorder.worker,
                    start=start,
                    end=end,
                    outcome=outcome,
                    bytes=counter[0] if last else None,
                    error=error,
                    extra={} if last else {"acknowledged_with_step": closing},
                )
                recorder.write(row)


class RecordingMemorySaver(CommitAcknowledger, InMemorySaver):
    pass


class RecordingSqliteSaver(CommitAcknowledger, AsyncSqliteSaver):
    pass


@dataclass(frozen=True)
class StoreSpec:
    """Where one variant keeps checkpoints and the claim table. `dsn` carries the
    Postgres schema in `options`; it never goes on a command line."""

    variant: str
    sqlite_path: Path | None = None  # checkpoints (sqlite)
    claims_path: Path | None = None  # claim table (memory, sqlite)
    dsn: str | None = None  # checkpoints and claim table (postgres)
    schema: str | None = None


def check_sqlite_writable(path: Path, what: str) -> None:
    """One clear error when a SQLite file cannot be created or written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.closing(sqlite3.connect(path, timeout=SQLITE_TIMEOUT_S)) as db:
            db.execute("BEGIN IMMEDIATE")
            db.execute("ROLLBACK")
    except (OSError, sqlite3.Error) as exc:
        raise BackendError(
            f"{what}: cannot write the SQLite file {path} ({exc}); "
            "give a writable file with ?path=/some/dir/file.sqlite"
        ) from None


async def _connect_sqlite(path: Path) -> aiosqlite.Connection:
    return await aiosqlite.connect(path, timeout=SQLITE_TIMEOUT_S)


@contextlib.asynccontextmanager
async def open_saver(
    store: StoreSpec, recorder: Recorder | None = None
) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    """The variant's saver, set up; with a recorder it writes `commit` rows (workers),
    without one it only reads (the backend's `inspect`)."""
    serde = SizedSerializer()
    if store.variant == "memory":
        memory = RecordingMemorySaver(serde=serde)
        if recorder is not None:
            memory.acknowledge_into(recorder)
        yield memory
    elif store.variant == "sqlite":
        assert store.sqlite_path is not None
        conn = await _connect_sqlite(store.sqlite_path)
        try:
            sqlite_saver = RecordingSqliteSaver(conn, serde=serde)
            await sqlite_saver.setup()
            if recorder is not None:
                sqlite_saver.acknowledge_into(recorder)
            yield sqlite_saver
        finally:
            await conn.close()
    elif store.variant == "postgres":
        from backends.langgraph.pg import open_postgres_saver

        async with open_postgres_saver(store, serde, recorder) as pg_saver:
            yield pg_saver
    else:
        raise BackendError(f"unknown saver {store.variant!r}; savers: {', '.join(SAVERS)}")


def _memory_footprint(saver: InMemorySaver, thread_id: str) -> tuple[int, int]:
    count = size = 0
    for checkpoints in saver.storage.get(thread_id, {}).values():
        for (_, data), (_, meta), _parent in checkpoints.values():
            count += 1
            size += len(data) + len(meta)
    size += sum(len(blob[1]) for key, blob in saver.blobs.items() if key[0] == thread_id)
    for key, writes in saver.writes.items():
        if key[0] == thread_id:
            size += sum(len(w[2][1]) for w in writes.values())
    return count, size


async def footprint(saver: BaseCheckpointSaver[Any], thread_id: str) -> tuple[int, int]:
    """(checkpoints, bytes) the store holds for one thread, counted by the store itself:
    every checkpoint, channel blob and pending write of the thread."""
    if isinstance(saver, InMemorySaver):
        return _memory_footprint(saver, thread_id)
    if isinstance(saver, AsyncSqliteSaver):
        async with saver.lock:
            cursor = await saver.conn.execute(
                "SELECT (SELECT COUNT(*) FROM checkpoints WHERE thread_id = ?),"
                " (SELECT COALESCE(SUM(LENGTH(checkpoint) + LENGTH(metadata)), 0)"
                "  FROM checkpoints WHERE thread_id = ?)"
                " + (SELECT COALESCE(SUM(LENGTH(value)), 0) FROM writes WHERE thread_id = ?)",
                (thread_id, thread_id, thread_id),
            )
            row = await cursor.fetchone()
            await cursor.close()
        assert row is not None
        return int(row[0]), int(row[1])
    from backends.langgraph.pg import postgres_footprint

    return await postgres_footprint(saver, thread_id)


async def sqlite_synchronous(path: Path) -> str:
    """The `PRAGMA synchronous` the saver's connections run with (its default)."""
    async with aiosqlite.connect(path, timeout=SQLITE_TIMEOUT_S) as db:
        cursor = await db.execute("PRAGMA synchronous")
        row = await cursor.fetchone()
    names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
    return names.get(int(row[0]), str(row[0])) if row else "unknown"


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return versions
