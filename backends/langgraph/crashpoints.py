"""LangGraph's own durability boundaries: around each write of its checkpointer.

LangGraph persists two things per superstep: a finished node's pending writes
(`aput_writes`, the `checkpoint_writes` rows that spare a successful node a re-run)
and the superstep's checkpoint (`aput`). The durability mode decides when: `sync`
waits for the checkpoint before the next superstep, `async` overlaps it with the next
superstep, `exit` writes no pending writes and one checkpoint when the invocation
ends. The points sit on both sides of both writes, in the saver wrapper every
variant uses (`savers.CommitAcknowledger`), so each saver and each mode reaches them
where its own persistence path goes:

- `langgraph.before_put_writes` / `langgraph.after_put_writes`: a node finished; its
  pending writes not yet stored / stored, the superstep's checkpoint not written.
- `langgraph.before_put` / `langgraph.after_put`: the superstep's checkpoint not yet
  stored / stored and acknowledged (the `commit` row of a step it is first to hold).

A point's step is the step the checkpoint (or the node's task) works on: for a
checkpoint, the step it is first to hold, else the step in progress; for pending
writes, the step in progress as far as the saver has seen (the closing verify's own
writes advance it), since with `async` a node's writes can reach the saver before the
checkpoint they belong to.
"""

from __future__ import annotations

from harness.failpoints import BackendCrashPoint

__all__ = [
    "AFTER_PUT",
    "AFTER_PUT_WRITES",
    "BEFORE_PUT",
    "BEFORE_PUT_WRITES",
    "crash_points_for",
]

BEFORE_PUT_WRITES = "langgraph.before_put_writes"
AFTER_PUT_WRITES = "langgraph.after_put_writes"
BEFORE_PUT = "langgraph.before_put"
AFTER_PUT = "langgraph.after_put"

_WHERE = {
    "memory": "in the worker's memory (InMemorySaver: gone with the process)",
    "sqlite": "in the SQLite file (AsyncSqliteSaver, committed)",
    "postgres": "in Postgres (AsyncPostgresSaver, committed)",
}


def crash_points_for(saver: str, durability: str) -> list[BackendCrashPoint]:
    """The points a variant reaches: `exit` stores no pending writes and one checkpoint
    per invocation; `sync` and `async` both writes at every superstep."""
    where = _WHERE[saver]
    if durability == "exit":
        return [
            BackendCrashPoint(
                BEFORE_PUT,
                "the invocation is ending (done, interrupted or failed) and its only "
                "checkpoint is not stored: every node it ran runs again",
                per_step=False,
            ),
            BackendCrashPoint(
                AFTER_PUT,
                f"the invocation's only checkpoint is stored {where}",
                per_step=False,
            ),
        ]
    overlap = (
        "the next superstep may already run (async)"
        if durability == "async"
        else "the next superstep waits for it (sync)"
    )
    return [
        BackendCrashPoint(
            BEFORE_PUT_WRITES,
            "a node finished, its pending writes are not stored: the node runs again",
        ),
        BackendCrashPoint(
            AFTER_PUT_WRITES,
            f"a node's pending writes are stored {where}, the superstep's checkpoint is "
            "not: on resume they are applied and the node is not re-run",
        ),
        BackendCrashPoint(
            BEFORE_PUT,
            f"the superstep's checkpoint is handed to the saver, not stored; {overlap}",
        ),
        BackendCrashPoint(
            AFTER_PUT,
            f"the superstep's checkpoint is stored {where} and acknowledged",
        ),
    ]
