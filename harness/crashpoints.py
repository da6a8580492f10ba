"""Which crash points a backend has, and the crash-point faults of a scenario made
concrete for it.

A scenario is validated without knowing the backend; here, once it is known (before
anything starts), every backend point a scenario names must be one the backend
declares, and the enumerating forms (`point: all | own`, `step: all`) become one
crash point per (point, step) pair. Each pair gets a run of its own (in run-id
order) unless the fault names a run, so every verdict of a run shows what the
backend does at exactly one boundary; the expanded list is what the workers receive
and what the manifest records (the exact schedule, not a rule to re-derive).

`crash_pairs` is the same enumeration for a caller that draws from it (explore).
"""

from __future__ import annotations

from collections.abc import Sequence

from backends.base import Backend, crash_points_of
from harness.errors import DurabenchError
from harness.failpoints import PHASE_POINTS, SHARED_POINTS, BackendCrashPoint
from harness.faults import CrashPointFault, Fault
from harness.oracle import run_ids
from harness.scenario import Scenario

__all__ = ["check_crash_points", "crash_pairs", "expand_crash_points", "points_of"]


def points_of(backend: Backend, which: str = "all") -> list[BackendCrashPoint]:
    """`all`: the shared phase boundaries every backend reaches, then the backend's own;
    `own`: only its own."""
    own = crash_points_of(backend)
    if which == "own":
        return own
    shared = [p for p in SHARED_POINTS if p.name in PHASE_POINTS]
    return shared + own


def crash_pairs(
    points: Sequence[BackendCrashPoint], steps: int, step: int | None = None, each_step: bool = True
) -> list[tuple[str, int | None]]:
    """Every (point, step) pair: `each_step` gives each step of a per-step point (a point
    a run reaches once, such as a claim, once with any step); otherwise `step` (None: any)."""
    pairs: list[tuple[str, int | None]] = []
    for point in points:
        if not each_step:
            pairs.append((point.name, step if point.per_step else None))
        elif point.per_step:
            pairs.extend((point.name, s) for s in range(steps))
        else:
            pairs.append((point.name, None))
    return pairs


def check_crash_points(faults: Sequence[Fault], backend: Backend) -> None:
    """Refuse a backend point the backend does not declare, naming the ones it has."""
    declared = {p.name for p in crash_points_of(backend)}
    for index, fault in enumerate(faults):
        if not isinstance(fault, CrashPointFault):
            continue
        if "." in fault.point and fault.point not in declared:
            known = ", ".join(sorted(declared)) or "none"
            raise DurabenchError(
                f"faults.{index}.point: {fault.point!r} is not a crash point of this "
                f"backend; its own points: {known} (`durabench crashpoints --backend NAME`)"
            )


def expand_crash_points(scenario: Scenario, backend: Backend, trials: int = 1) -> Scenario:
    """The scenario with its crash points checked against `backend` and every
    enumerating crash-point fault expanded (the same scenario when nothing expands)."""
    check_crash_points(scenario.faults, backend)
    if not any(isinstance(f, CrashPointFault) and f.enumerates for f in scenario.faults):
        return scenario
    pinned = {f.run for f in scenario.faults if isinstance(f, CrashPointFault) and f.run != "*"}
    free = iter([r for r in run_ids(scenario, trials=trials) if r not in pinned])
    faults: list[Fault] = []
    for index, fault in enumerate(scenario.faults):
        if not isinstance(fault, CrashPointFault) or not fault.enumerates:
            faults.append(fault)
            continue
        which = fault.point if fault.point in ("all", "own") else None
        points = points_of(backend, which) if which else _named(fault.point, backend)
        pairs = crash_pairs(points, scenario.steps, fault.step, fault.each_step)
        for point, step in pairs:
            run = fault.run if fault.run != "*" else next(free, "")
            if not run:
                raise DurabenchError(
                    f"faults.{index}: {len(pairs)} crash points, one run each, but only "
                    f"{scenario.runs * trials - len(pinned)} runs are free; raise `runs` or "
                    "name a `run` for all of them"
                )
            faults.append(CrashPointFault(kind="crash_point", point=point, run=run, step=step))
    return scenario.model_copy(update={"faults": tuple(faults)})


def _named(point: str, backend: Backend) -> list[BackendCrashPoint]:
    """One named point (with `step: all`), as the backend or the shared list describes it."""
    for candidate in (*SHARED_POINTS, *crash_points_of(backend)):
        if candidate.name == point:
            return [candidate]
    raise DurabenchError(f"{point!r} is not a crash point of this backend")
