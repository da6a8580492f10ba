"""The one measurement funnel: every phase of every step attempt becomes one row.

Workers append rows as JSON lines to a file of their own and flush each line, so
what was measured survives the worker being killed (only the row in flight is
lost). The runner turns the files into `steps.parquet`.

Outcomes follow Jepsen: `ok` (it happened), `fail` (it certainly did not), `info`
(indeterminate: a timeout or a lost connection, so it may have happened). Phases with
side effects (act) also get an `invoke` row when they start; an invoke with no
completion is indeterminate too.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from harness.failpoints import Failpoints

__all__ = ["INVOKED_PHASES", "PHASES", "Outcome", "PhaseRow", "Recorder", "read_rows"]

PHASES = ("reason", "act", "verify", "commit", "approval")
INVOKED_PHASES = frozenset({"act"})  # phases with side effects: recorded at invoke too
Outcome = Literal["invoke", "ok", "fail", "info"]


@dataclass
class PhaseRow:
    """One phase of one step attempt; mutable while the phase runs."""

    backend: str
    run_id: str
    step: int
    attempt: int
    phase: str
    worker: str
    start: float
    end: float = 0.0
    outcome: Outcome = "ok"
    service_ms: float = 0.0
    retries: int = 0
    bytes: int | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Recorder:
    """Appends phase rows to `<dir>/<worker>-<pid>.jsonl`, one flushed line each."""

    def __init__(self, directory: Path, backend: str, worker: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.backend = backend
        self.worker = worker
        self.path = directory / f"{worker}-{os.getpid()}.jsonl"
        self._file: IO[str] = self.path.open("a", encoding="utf-8")
        self.failpoints = Failpoints.from_environment()

    @contextmanager
    def phase(
        self, run_id: str, step: int, attempt: int, phase: str, *, ended: float | None = None
    ) -> Iterator[PhaseRow]:
        """Time the block; an exception marks the row `info` (it may have happened).
        Phase boundaries are also where configured crash points fire. `ended` is for a
        row written after the fact whose end the backend's store knows (when a commit
        became durable), not the moment the row is written."""
        row = PhaseRow(self.backend, run_id, step, attempt, phase, self.worker, time.time())
        if phase in INVOKED_PHASES:
            # Jepsen-style: the invocation is on record before the side effect can happen,
            # so a worker killed mid-call leaves an invoke with no completion ("may have happened")
            self.write(PhaseRow(**{**row.__dict__, "end": row.start, "outcome": "invoke"}))
        if self.failpoints is not None and phase == "commit":
            self.failpoints.hit("before_commit", run_id, step)
        try:
            yield row
        except BaseException as exc:
            if row.outcome == "ok":
                row.outcome = "info"
            row.error = row.error or f"{type(exc).__name__}: {exc}"[:500]
            raise
        finally:
            row.end = time.time() if ended is None else ended
            self.write(row)
        if self.failpoints is not None and row.outcome == "ok":
            self.failpoints.hit(f"after_{phase}", run_id, step)

    def crash_point(self, point: str, run_id: str, step: int) -> None:
        """A backend-specific durability boundary (see harness.failpoints); free when off."""
        if self.failpoints is not None:
            self.failpoints.hit(point, run_id, step)

    def write(self, row: PhaseRow) -> None:
        data = row.__dict__.copy()
        if not data["extra"]:
            del data["extra"]
        self._file.write(json.dumps(data, separators=(",", ":")) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def read_rows(directory: Path) -> list[dict[str, Any]]:
    """Every row from every worker file; a torn last line (killed mid-write) is skipped."""
    rows: list[dict[str, Any]] = []
    for path in sorted(directory.glob("*.jsonl")):
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
    return rows
