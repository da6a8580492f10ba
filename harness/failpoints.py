"""Crash points: kill a worker at an exact durability boundary, once.

Random kill times rarely land between "the tool effect was applied" and "the step
was committed"; a crash point lands there every time. They exist at two depths.

The shared points sit on the phase boundaries the Recorder already marks, so every
backend reaches them for free (`SHARED_POINTS`): `after_reason`, `after_act` (the
tool effect is applied, the step is not committed), `after_verify`, `before_commit`,
`after_commit`, and `after_act_recorded`, which backends that record the act's
result durably before verify mark themselves (`recorder.crash_point(...)`).

Backend points are named durability boundaries inside one backend's own persistence
path (an activity's completion, a row's commit, a saver's write). Each backend
declares them (`BackendCrashPoint`, through `crash_points()`, see backends/base.py),
namespaced by the backend (`temporal.after_activity_effect`), and marks them in its
worker with the same call.

Configuration is an environment variable read once per worker process:
`DURABENCH_FAILPOINTS="after_act:run-000002:3,pgstore.after_act_event:*:0"`
(point:run:step; `*` matches any run or step) and `DURABENCH_FAILPOINT_DIR`,
where a marker file makes each point fire once even across worker restarts.
With the variable unset, `hit()` is one attribute check.
"""

from __future__ import annotations

import os
import re
import signal
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CRASH_POINTS",
    "ENV_DIR",
    "ENV_POINTS",
    "PHASE_POINTS",
    "SHARED_POINTS",
    "BackendCrashPoint",
    "CrashPoint",
    "Failpoints",
    "format_points",
    "is_backend_point",
    "marker_name",
    "parse_points",
]


@dataclass(frozen=True)
class BackendCrashPoint:
    """One named durability boundary: `name` (namespaced by the backend for its own
    points), what state the run is in when the worker dies there (`sentence`), and
    whether a run reaches it at every step (`per_step`) or once (a claim)."""

    name: str
    sentence: str
    per_step: bool = True


SHARED_POINTS: tuple[BackendCrashPoint, ...] = (
    BackendCrashPoint("after_reason", "the LLM answered; nothing about the step is committed"),
    BackendCrashPoint(
        "after_act", "the tool effect is applied in the ledger; the step is not committed"
    ),
    BackendCrashPoint("after_verify", "the verdict is known; the step is not committed"),
    BackendCrashPoint("before_commit", "inside the commit, before the backend's durable write"),
    BackendCrashPoint("after_commit", "the step is durable; the next reason has not started"),
    BackendCrashPoint(
        "after_act_recorded",
        "the act's result is recorded durably, verify has not run (only backends that "
        "record it before verify reach it)",
    ),
)
CRASH_POINTS = tuple(p.name for p in SHARED_POINTS)
PHASE_POINTS = CRASH_POINTS[:5]  # the ones every backend reaches through the Recorder
ENV_POINTS = "DURABENCH_FAILPOINTS"
ENV_DIR = "DURABENCH_FAILPOINT_DIR"
_BACKEND_POINT = re.compile(r"^[a-z][a-z0-9-]*\.[a-z][a-z0-9_]*$")


def is_backend_point(name: str) -> bool:
    """Whether `name` has the shape of a backend's own point (`backend.boundary`)."""
    return bool(_BACKEND_POINT.match(name))


@dataclass(frozen=True)
class CrashPoint:
    point: str
    run_id: str = "*"
    step: int | None = None  # None = any step

    def matches(self, point: str, run_id: str, step: int) -> bool:
        return (
            self.point == point
            and self.run_id in ("*", run_id)
            and (self.step is None or self.step == step)
        )

    def encode(self) -> str:
        return f"{self.point}:{self.run_id}:{'*' if self.step is None else self.step}"


def marker_name(point: CrashPoint) -> str:
    """The file that records that `point` fired (and keeps it from firing again)."""
    return f"{point.encode().replace('*', 'any')}.fired"


def format_points(points: list[CrashPoint]) -> str:
    return ",".join(p.encode() for p in points)


def parse_points(text: str) -> list[CrashPoint]:
    points = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        point, run_id, step = item.split(":")
        if point not in CRASH_POINTS and not is_backend_point(point):
            raise ValueError(
                f"unknown crash point {point!r}; shared points: {', '.join(CRASH_POINTS)}, "
                "or a backend's own (backend.boundary)"
            )
        points.append(CrashPoint(point, run_id, None if step == "*" else int(step)))
    return points


class Failpoints:
    """The crash points of one worker process."""

    def __init__(self, points: list[CrashPoint], marker_dir: Path | None) -> None:
        self.points = points
        self.marker_dir = marker_dir

    @classmethod
    def from_environment(cls) -> Failpoints | None:
        text = os.environ.get(ENV_POINTS, "")
        if not text:
            return None
        directory = Path(os.environ.get(ENV_DIR, ".")).resolve()
        directory.mkdir(parents=True, exist_ok=True)
        return cls(parse_points(text), directory)

    def armed(self, point: str) -> bool:
        """Whether any configured crash point has this name (a backend may take a slower
        path only then, e.g. an explicit transaction to die inside)."""
        return any(p.point == point for p in self.points)

    def _first_time(self, point: CrashPoint, run_id: str, step: int) -> bool:
        """Claim the marker atomically, so a point fires once across restarts."""
        if self.marker_dir is None:
            return True
        marker = self.marker_dir / marker_name(point)
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return False
        os.write(fd, f"{run_id}:{step}:{os.getpid()}\n".encode())
        os.fsync(fd)
        os.close(fd)
        return True

    def hit(self, point: str, run_id: str, step: int) -> None:
        """SIGKILL this process if a configured crash point matches (once)."""
        for candidate in self.points:
            if candidate.matches(point, run_id, step) and self._first_time(candidate, run_id, step):
                os.kill(os.getpid(), signal.SIGKILL)
