"""Crash points: kill a worker at an exact durability boundary, once.

Random kill times rarely land between "the tool effect was applied" and "the step
was committed"; a crash point lands there every time. Points sit on the phase
boundaries the Recorder already marks, so every backend gets them for free:

- `after_reason`: the LLM answered, nothing about it is committed yet
- `after_act`: the tool effect is applied in the ledger, the step is not committed
- `after_verify`: the verdict is known, the step is not committed
- `before_commit`: inside the commit, before the backend's durable write
- `after_commit`: the step is durable, the next reason has not started
- `after_act_recorded`: for backends that record the act's result durably before
  verify (event-sourced stores): right after that record, before verify; a backend
  marks it with `recorder.crash_point("after_act_recorded", run, step)`

Configuration is an environment variable read once per worker process:
`DURABENCH_FAILPOINTS="after_act:run-000002:3,after_commit:run-000005:0"`
(point:run:step; `*` matches any run or step) and `DURABENCH_FAILPOINT_DIR`,
where a marker file makes each point fire once even across worker restarts.
With the variable unset, `hit()` is one attribute check.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CRASH_POINTS", "ENV_DIR", "ENV_POINTS", "CrashPoint", "Failpoints", "format_points"]

CRASH_POINTS = (
    "after_reason",
    "after_act",
    "after_verify",
    "before_commit",
    "after_commit",
    "after_act_recorded",
)
ENV_POINTS = "DURABENCH_FAILPOINTS"
ENV_DIR = "DURABENCH_FAILPOINT_DIR"


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


def format_points(points: list[CrashPoint]) -> str:
    return ",".join(p.encode() for p in points)


def parse_points(text: str) -> list[CrashPoint]:
    points = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        point, run_id, step = item.split(":")
        if point not in CRASH_POINTS:
            raise ValueError(f"unknown crash point {point!r}; known: {', '.join(CRASH_POINTS)}")
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

    def _first_time(self, point: CrashPoint, run_id: str, step: int) -> bool:
        """Claim the marker atomically, so a point fires once across restarts."""
        if self.marker_dir is None:
            return True
        marker = self.marker_dir / f"{point.encode().replace('*', 'any')}.fired"
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
