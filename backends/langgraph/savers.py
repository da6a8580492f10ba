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
import time
from collections.abc import AsyncIterator, Sequence
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

from backends.langgraph.store import SQLITE_TIMEOUT_S
from harness.measure import PhaseRow, Recorder

__all__ = [
    "DURABILITIES",
    "LANGGRAPH_DEFAULT_DURABILITY",
    "SAVERS",
    "SAVER_CLASSES",
    "CommitAcknowledger",
    "RecordingMemorySaver",
    "RecordingSqliteSaver",
    "SizedSerializer",
    "memory_footprint",
    "memory_saver",
    "open_sqlite_saver",
    "package_versions",
    "sqlite_footprint",
]

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


@contextlib.asynccontextmanager
async def open_sqlite_saver(
    path: Path, serde: SizedSerializer, recorder: Recorder | None
) -> AsyncIterator[RecordingSqliteSaver]:
    """`AsyncSqliteSaver` on its own connection to `path`, set up."""
    conn = await aiosqlite.connect(path, timeout=SQLITE_TIMEOUT_S)
    try:
        saver = RecordingSqliteSaver(conn, serde=serde)
        await saver.setup()
        if recorder is not None:
            saver.acknowledge_into(recorder)
        yield saver
    finally:
        await conn.close()


def memory_saver(serde: SizedSerializer, recorder: Recorder | None) -> RecordingMemorySaver:
    memory = RecordingMemorySaver(serde=serde)
    if recorder is not None:
        memory.acknowledge_into(recorder)
    return memory


def memory_footprint(saver: InMemorySaver, thread_id: str) -> tuple[int, int]:
    """(checkpoints, bytes) the in-process saver holds for one thread."""
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


async def sqlite_footprint(saver: AsyncSqliteSaver, thread_id: str) -> tuple[int, int]:
    """(checkpoints, bytes) the SQLite file holds for one thread: every checkpoint and
    pending write of it."""
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


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return versions
