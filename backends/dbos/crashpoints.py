"""DBOS's own durability boundaries, and the hooks that mark them.

DBOS makes a step durable by writing one row to `operation_outputs` (its output, in
its own transaction) after the step's function returned; a workflow becomes this
executor's when a queue poll moves it from ENQUEUED to PENDING under the executor's
id. The points sit on exactly those edges, seen from the worker:

- `dbos.after_dequeue`: the run's workflow was dequeued by this executor (PENDING,
  its executor id), nothing performed: the restarted executor recovers it.
- `dbos.before_act_output`: the act step's function returned (the tool applied the
  effect, the ledger recorded it), DBOS has not sent the write of its output: on
  recovery the step runs again (DBOS steps are at-least-once), under the same key.
- `dbos.before_act_commit`: the act's output row is written inside its transaction,
  COMMIT not sent: Postgres rolls it back, the step runs again, same key.
- `dbos.after_act_output`: the act's output is committed, verify has not run: the
  recorded output is replayed, the tool is not called again (the shared
  `after_act_recorded`).
- `dbos.before_verify_commit`: verify's output row, the last record of the step, is
  written inside its transaction, COMMIT not sent: verify (pure) runs again, nothing
  is re-executed.

The write-side points are SQLAlchemy engine events (`before_cursor_execute`, `commit`,
which fires before the DBAPI commit), installed on every engine of the process and
only when the worker has crash points configured. A step's function notes itself
(`note_output`) just before it returns, so the hook knows which run and step the
output row belongs to.
"""

from __future__ import annotations

import threading
from typing import Any

from harness.failpoints import BackendCrashPoint
from harness.measure import Recorder

__all__ = [
    "AFTER_ACT_OUTPUT",
    "AFTER_DEQUEUE",
    "BEFORE_ACT_COMMIT",
    "BEFORE_ACT_OUTPUT",
    "BEFORE_VERIFY_COMMIT",
    "CRASH_POINTS",
    "install",
    "note_output",
]

AFTER_DEQUEUE = "dbos.after_dequeue"
BEFORE_ACT_OUTPUT = "dbos.before_act_output"
BEFORE_ACT_COMMIT = "dbos.before_act_commit"
AFTER_ACT_OUTPUT = "dbos.after_act_output"
BEFORE_VERIFY_COMMIT = "dbos.before_verify_commit"

CRASH_POINTS = (
    BackendCrashPoint(
        AFTER_DEQUEUE,
        "the workflow was dequeued by this executor (PENDING under its id), nothing "
        "performed: the restarted executor recovers it and runs it from the start",
        per_step=False,
    ),
    BackendCrashPoint(
        BEFORE_ACT_OUTPUT,
        "the act step returned (effect applied, in the ledger), DBOS has not sent the "
        "write of its output: recovery runs the step again (at-least-once), same key",
    ),
    BackendCrashPoint(
        BEFORE_ACT_COMMIT,
        "the act's output row is written inside its transaction, COMMIT not sent: rolled "
        "back, recovery runs the step again, same key",
    ),
    BackendCrashPoint(
        AFTER_ACT_OUTPUT,
        "the act's output is committed, verify has not run: recovery replays the recorded "
        "output, the tool is not called again",
    ),
    BackendCrashPoint(
        BEFORE_VERIFY_COMMIT,
        "verify's output row (the step's last record) is written inside its transaction, "
        "COMMIT not sent: verify (pure) runs again, nothing is re-executed",
    ),
)

PENDING_KEY = "durabench_pending_output"
_ACT_PHASE = "act"
_VERIFY_PHASE = "verify"

_lock = threading.Lock()
_notes: dict[str, tuple[str, str, int]] = {}  # workflow id -> (phase, run id, step)
_recorder: Recorder | None = None


def note_output(workflow_id: str, phase: str, run_id: str, step: int) -> None:
    """A step's function is about to return: its output row is the next one written for
    `workflow_id` (a workflow runs its steps one at a time). Free when no hook is installed."""
    if _recorder is None:
        return
    with _lock:
        _notes[workflow_id] = (phase, run_id, step)


def _statement_workflow(statement: str, parameters: Any) -> str | None:
    if not statement.lstrip().upper().startswith("INSERT") or "operation_outputs" not in statement:
        return None
    if isinstance(parameters, dict):
        value = parameters.get("workflow_uuid")
        return str(value) if value is not None else None
    return None


def _before_execute(
    conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
) -> None:
    workflow_id = _statement_workflow(statement, parameters)
    if workflow_id is None or _recorder is None:
        return
    with _lock:
        note = _notes.pop(workflow_id, None)
    if note is None:
        return
    phase, run_id, step = note
    if phase == _ACT_PHASE:
        _recorder.crash_point(BEFORE_ACT_OUTPUT, run_id, step)
    conn.info[PENDING_KEY] = note


def _before_commit(conn: Any) -> None:
    note = conn.info.pop(PENDING_KEY, None)
    if note is None or _recorder is None:
        return
    phase, run_id, step = note
    if phase == _ACT_PHASE:
        _recorder.crash_point(BEFORE_ACT_COMMIT, run_id, step)
    elif phase == _VERIFY_PHASE:
        _recorder.crash_point(BEFORE_VERIFY_COMMIT, run_id, step)


def _rollback(conn: Any) -> None:
    conn.info.pop(PENDING_KEY, None)


def install(recorder: Recorder) -> None:
    """Listen on every SQLAlchemy engine of this process (DBOS's among them)."""
    global _recorder
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    _recorder = recorder
    event.listen(Engine, "before_cursor_execute", _before_execute)
    event.listen(Engine, "commit", _before_commit)
    event.listen(Engine, "rollback", _rollback)
