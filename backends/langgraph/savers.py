"""The checkpointers, and the one place the `commit` phase row is written.

Every variant uses LangGraph's own async saver unchanged (`InMemorySaver`,
`AsyncSqliteSaver`, `AsyncPostgresSaver`) with a thin subclass around `aput`: when
the checkpoint being saved is the first one whose `history` holds a step, the step
is committed, and the `commit` row is written *after that `aput` returned* (the
saver's own commit: SQLite COMMIT, Postgres autocommit, a dict insert for memory).
So each durability mode is measured for what it really does: `sync` waits for that
put before the next superstep, `async` overlaps it with the next one, `exit` puts
once when the invocation ends (one put then acknowledges every step it holds).
`row.bytes` is what the saver serialized for that put. With crash points configured,
the same wrapper marks LangGraph's own around `aput_writes` and `aput` (crashpoints.py).
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

from backends.langgraph.crashpoints import (
    AFTER_PUT,
    AFTER_PUT_WRITES,
    BEFORE_PUT,
    BEFORE_PUT_WRITES,
)
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
    _progress: dict[str, tuple[str, int]]  # thread -> (run id, step) of its latest put

    def acknowledge_into(self, recorder: Recorder) -> None:
        self._recorder = recorder
        self._acknowledged = {}
        self._progress = {}

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """The node's pending writes, between LangGraph's crash points around them."""
        recorder = self._recorder
        if recorder is None or recorder.failpoints is None:
            return await super().aput_writes(config, writes, task_id, task_path)
        thread_id = str(config["configurable"]["thread_id"])
        run_id, step = self._progress.get(thread_id, (_run_of(thread_id), 0))
        for channel, value in writes:  # the input names the run; a closed step, the next
            if channel == "run_id" and isinstance(value, str):
                run_id = value
                self._progress[thread_id] = (run_id, step)
            if channel == "step" and isinstance(value, int):
                self._advance(thread_id, run_id, value)  # before the await: calls overlap
        recorder.crash_point(BEFORE_PUT_WRITES, run_id, step)
        await super().aput_writes(config, writes, task_id, task_path)
        recorder.crash_point(AFTER_PUT_WRITES, run_id, step)

    def _advance(self, thread_id: str, run_id: str, step: int) -> None:
        """The thread's step in progress, as far as the saver has seen (never backwards:
        in `async` mode checkpoints reach the saver after later nodes' writes)."""
        seen = self._progress.get(thread_id, (run_id, 0))[1] if thread_id in self._progress else 0
        self._progress[thread_id] = (run_id, max(seen, step))

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
        if recorder is None or recorder.failpoints is None:
            return await self._acknowledged_put(config, checkpoint, metadata, new_versions)
        thread_id = str(config["configurable"]["thread_id"])
        values = checkpoint["channel_values"]
        history: Sequence[dict[str, Any]] = values.get("history") or ()
        run_id = str(values.get("run_id", thread_id))
        committing = len(history) > self._acknowledged.get(thread_id, 0)
        step = int(history[-1]["index"]) if committing else int(values.get("step", 0))
        self._advance(thread_id, run_id, int(values.get("step", step)))
        recorder.crash_point(BEFORE_PUT, run_id, step)
        if committing:  # the shared commit boundaries: this put is the step's commit
            recorder.crash_point("before_commit", run_id, step)
        stored = await self._acknowledged_put(config, checkpoint, metadata, new_versions)
        if committing:
            recorder.crash_point("after_commit", run_id, step)
        recorder.crash_point(AFTER_PUT, run_id, step)
        return stored

    async def _acknowledged_put(
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


def _run_of(thread_id: str) -> str:
    """The logical run id inside a thread id (`<bench id>-run-000001`), for a thread the
    saver has seen nothing of yet (a resumed one)."""
    at = thread_id.rfind("run-")
    return thread_id[at:] if at >= 0 else thread_id


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
