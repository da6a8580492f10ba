"""The schedule: faults and their timing in, a concrete timeline out (Jepsen's generator).

Pure and seeded: the same faults and seed give the same timeline on every machine, and
nothing here touches a process, a link or a clock. A timed fault becomes one or more
occurrences (`at_s`: one, `every_s`/`times`: a cycle, `random`: start times drawn from
the seed); `after_steps` waits for a count of committed steps; crash points are not
timed (a worker fires them where it reaches them). Which components an occurrence hits
is drawn from the seed too (`select_targets`), once the names of the running ones are
known.

Everything is frozen data, so other features build on it without running anything:
`recurring` turns a fault into a cycle (more occurrences, more exposed runs), and
`draw_schedule` draws random start times for a set of candidate faults (search).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from harness.faults import CrashPointFault, Fault, Fixed, Percent, Selection, TimedFault
from harness.scenario import Scenario
from harness.workload import seeded_rng

__all__ = [
    "Planned",
    "Timeline",
    "Untimed",
    "draw_schedule",
    "plan",
    "plan_faults",
    "recurring",
    "select_targets",
]

T = TypeVar("T", bound=TimedFault)
_TIMINGS = ("at_s", "after_steps", "every_s", "random")


@dataclass(frozen=True)
class Planned:
    """One occurrence of a fault: when it should start (an offset or a step count)."""

    index: int  # position in the scenario's fault list
    occurrence: int
    fault: TimedFault
    at_s: float | None
    after_steps: int | None

    def due(self, elapsed_s: float, committed_steps: int) -> bool:
        """Whether this occurrence should start now."""
        if self.at_s is not None:
            return elapsed_s >= self.at_s
        return self.after_steps is not None and committed_steps >= self.after_steps

    @property
    def key(self) -> str:
        """What names this occurrence in state files and logs: `index.occurrence`."""
        return f"{self.index}.{self.occurrence}"


@dataclass(frozen=True)
class Untimed:
    """A fault without a time (a crash point): it fires where a worker reaches it."""

    index: int
    fault: CrashPointFault


@dataclass(frozen=True)
class Timeline:
    """The concrete schedule of one fault list under one seed."""

    seed: int
    planned: tuple[Planned, ...]
    untimed: tuple[Untimed, ...] = ()

    def in_time_order(self) -> tuple[Planned, ...]:
        """Offsets first (earliest first), then step counts (fewest first)."""
        return tuple(
            sorted(
                self.planned,
                key=lambda p: (
                    p.at_s is None,
                    p.at_s if p.at_s is not None else p.after_steps or 0,
                    p.index,
                    p.occurrence,
                ),
            )
        )


def _occurrences(index: int, fault: TimedFault, seed: int) -> list[Planned]:
    if fault.at_s is not None:
        return [Planned(index, 0, fault, fault.at_s, None)]
    if fault.after_steps is not None:
        return [Planned(index, 0, fault, None, fault.after_steps)]
    if fault.every_s is not None:
        every = fault.every_s
        return [Planned(index, k, fault, every * (k + 1), None) for k in range(fault.times)]
    assert fault.random is not None  # the model allows exactly one timing
    rng = seeded_rng(seed, "fault-times", index)
    times = sorted(rng.uniform(0, fault.random.within_s) for _ in range(fault.random.count))
    return [Planned(index, k, fault, t, None) for k, t in enumerate(times)]


def plan(faults: Sequence[Fault], seed: int) -> Timeline:
    """Every occurrence of every fault, in list order (occurrences in time order)."""
    planned: list[Planned] = []
    untimed: list[Untimed] = []
    for index, fault in enumerate(faults):
        if isinstance(fault, CrashPointFault):
            untimed.append(Untimed(index, fault))
        else:
            planned.extend(_occurrences(index, fault, seed))
    return Timeline(seed, tuple(planned), tuple(untimed))


def plan_faults(scenario: Scenario) -> list[Planned]:
    """The timed occurrences of a scenario's faults (crash points are not timed)."""
    return list(plan(scenario.faults, scenario.seed).planned)


def _retimed(fault: T, **timing: Any) -> T:
    """A copy of `fault` with exactly the given timing (validated like a scenario's)."""
    data = {**fault.model_dump(exclude=set(_TIMINGS) | {"times"}), **timing}
    return type(fault).model_validate(data)


def recurring(fault: T, every_s: float, times: int) -> T:
    """The same fault as a cycle: `times` occurrences, one every `every_s` seconds."""
    return _retimed(fault, every_s=every_s, times=times)


def draw_schedule(
    candidates: Sequence[TimedFault], seed: int, within_s: float
) -> tuple[TimedFault, ...]:
    """Each candidate at a start time drawn uniformly in [0, within_s) from the seed: a
    random schedule that `plan` turns into a timeline like any scenario's."""
    rng = seeded_rng(seed, "draw-schedule")
    return tuple(_retimed(f, at_s=round(rng.uniform(0, within_s), 3)) for f in candidates)


def select_targets(
    selection: Selection, names: Sequence[str], seed: int, planned: Planned
) -> list[str]:
    """Which of the running components (by name) this occurrence acts on, from the seed."""
    if not names:
        return []
    ordered = sorted(names)
    rng = seeded_rng(seed, "fault-select", planned.index, planned.occurrence)
    if selection == "all":
        return ordered
    if selection == "one":
        return [rng.choice(ordered)]
    if isinstance(selection, Fixed):
        return rng.sample(ordered, min(selection.fixed, len(ordered)))
    assert isinstance(selection, Percent)
    return rng.sample(ordered, max(1, math.ceil(len(ordered) * selection.percent / 100)))
