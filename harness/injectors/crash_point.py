"""Crash points: a worker kills itself exactly at a durability boundary, once.

Not timed, so the nemesis never applies them: the workers learn them from their
environment when they start (`with_crash_points`), and each one that fired leaves a
marker file that says when, for which run and step, and in which process
(`crash_point_records`). See harness/failpoints.py for the boundaries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from harness.failpoints import ENV_DIR, ENV_POINTS, CrashPoint, format_points
from harness.faults import CrashPointFault, Fault
from harness.injectors.base import FaultRecord, Injector
from harness.platform.base import ComponentSpec

__all__ = ["CrashPointInjector", "crash_point_records", "with_crash_points"]

MARKER_DIR = "failpoints"  # inside the backend's work directory


class CrashPointInjector(Injector[CrashPointFault], kind="crash_point"):
    timed = False


def _points(faults: Sequence[Fault]) -> list[tuple[int, CrashPoint]]:
    return [
        (index, CrashPoint(f.point, f.run, f.step))
        for index, f in enumerate(faults)
        if isinstance(f, CrashPointFault)
    ]


def with_crash_points(spec: ComponentSpec, faults: Sequence[Fault], workdir: Path) -> ComponentSpec:
    """A worker's spec with the crash points in its environment (others unchanged)."""
    points = [p for _, p in _points(faults)]
    if spec.role != "worker" or not points:
        return spec
    env = {**spec.env, ENV_POINTS: format_points(points), ENV_DIR: str(workdir / MARKER_DIR)}
    return replace(spec, env=env)


def crash_point_records(
    faults: Sequence[Fault], backend: str, marker_dir: Path
) -> list[FaultRecord]:
    """One record per crash point: `ok` with where it fired, or `not_reached`."""
    records = []
    for index, point in _points(faults):
        record = FaultRecord(backend, index, 0, "crash_point", point.point)
        marker = marker_dir / f"{point.encode().replace('*', 'any')}.fired"
        if marker.exists():
            run_id, step, pid = marker.read_text().strip().split(":")
            record.actual_start = record.actual_end = marker.stat().st_mtime
            record.selected = [f"{run_id}:{step}:{pid}"]
            record.outcome = "ok"
        else:
            record.outcome = "not_reached"
            record.detail = "no worker reached this boundary (the run ended first, or the "
            record.detail += "backend has no such boundary)"
        records.append(record)
    return records
