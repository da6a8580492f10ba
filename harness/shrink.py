"""Shrinking: reduce an anomalous trial while the anomaly still reproduces (greedy
delta debugging, as QuickCheck and Jepsen shrink).

A candidate is one step simpler than the current case: one fault fewer, fewer runs,
steps, workers or concurrency, a crash point on an earlier run or step, a timed fault
earlier or shorter. The first candidate that still breaks one of the verdicts the
original broke becomes the current case, and the search starts over from it; it ends
when no candidate reproduces or `shrink_trials` candidates were run. The minimal case is
then re-run k times (its reproduction rate) and written as a scenario file with the
exact schedule (times, targets, runs and steps), not a seed: a changed default would
change what a seed means.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import yaml

from harness.explore import Case, TrialResult, run_case

if TYPE_CHECKING:
    from harness.explore import Exploration

__all__ = ["candidates", "shrink_and_explain"]

_DURATIONS = ("duration_s", "down_s", "restart_delay_s", "grace_s")


def _run_index(run: str) -> int | None:
    try:
        return int(run.removeprefix("run-"))
    except ValueError:
        return None


def _fits(case: Case) -> Case:
    """The case with its crash points moved inside its runs and steps."""
    faults = []
    for fault in case.faults:
        if fault["kind"] == "crash_point":
            fault = dict(fault)
            index = _run_index(str(fault.get("run", "*")))
            if index is not None and index >= case.runs:
                fault["run"] = f"run-{case.runs - 1:06d}"
            if fault.get("step") is not None and fault["step"] >= case.steps:
                fault["step"] = case.steps - 1
        faults.append(fault)
    return replace(case, faults=tuple(faults), concurrency=min(case.concurrency, case.runs))


def _simpler_faults(fault: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if fault["kind"] == "crash_point":
        index = _run_index(str(fault.get("run", "*")))
        if index:
            yield {**fault, "run": "run-000000"}
        if fault.get("step"):
            yield {**fault, "step": fault["step"] // 2}
        return
    at = fault.get("at_s")
    if isinstance(at, int | float) and at > 0:
        if round(at, 1) != at:
            yield {**fault, "at_s": round(at, 1)}
        elif at >= 0.2:
            yield {**fault, "at_s": round(at / 2, 1)}
    for name in _DURATIONS:
        value = fault.get(name)
        if isinstance(value, int | float) and value > 0.1:
            yield {**fault, name: round(max(0.1, value / 2), 2) if name == "duration_s" else 0.0}


def candidates(case: Case, without_faults_tried: bool = False) -> Iterator[Case]:
    """The cases one step simpler than `case`, the biggest simplifications first (the
    case without any fault once only: an anomaly that needs no fault shows at once)."""
    for i in range(len(case.faults)):
        if len(case.faults) > 1 or not without_faults_tried:
            yield replace(case, faults=case.faults[:i] + case.faults[i + 1 :])
    for size, floor in (("runs", 1), ("steps", 1), ("workers", 1), ("concurrency", 1)):
        value = getattr(case, size)
        for smaller in dict.fromkeys((max(floor, value // 2), value - 1)):
            if smaller < value:
                yield _fits(replace(case, **{size: smaller}))
    for i, fault in enumerate(case.faults):
        for simpler in _simpler_faults(fault):
            yield replace(case, faults=(*case.faults[:i], simpler, *case.faults[i + 1 :]))


def _reproduces(result: TrialResult, wanted: set[str]) -> bool:
    return bool(wanted & set(result.broken))


def shrink_and_explain(
    exploration: Exploration, found: TrialResult, number: int, began: float
) -> dict[str, Any]:
    """Shrink one finding, re-run the minimal case k times, write the reproducer and the
    explanation under findings/<number>/, and return its explore.json entry."""
    from harness.witness import explain

    assert exploration.directory is not None
    home = exploration.directory / "findings" / str(number)
    home.mkdir(parents=True, exist_ok=True)
    name = f"{exploration.scenario.name}-finding-{number}"
    wanted = set(found.broken)
    current, evidence = found.case, found
    accepted: list[dict[str, Any]] = []
    tried = 0
    without_faults_tried = False
    improved = True
    while improved and tried < exploration.shrink_trials:
        improved = False
        for candidate in candidates(current, without_faults_tried):
            if tried >= exploration.shrink_trials:
                break
            result = run_case(
                candidate,
                exploration.base,
                name,
                exploration.backend,
                home / "shrink" / f"{tried:03d}",
                exploration.platform_name,
            )
            tried += 1
            without_faults_tried |= not candidate.faults
            exploration.progress(
                f"  shrink {tried}: {candidate.describe()} -> "
                + ("reproduces" if _reproduces(result, wanted) else "gone")
            )
            if _reproduces(result, wanted):
                current, evidence, improved = candidate, result, True
                accepted.append({"case": candidate.describe(), "results": result.results})
                break
    reruns: list[TrialResult] = []
    for k in range(exploration.reruns):
        reruns.append(
            run_case(
                current,
                exploration.base,
                name,
                exploration.backend,
                home / "reruns" / f"{k}",
                exploration.platform_name,
            )
        )
    reproduced = sum(_reproduces(r, wanted) for r in reruns)
    witness = next((r for r in reruns if _reproduces(r, wanted)), evidence)
    reproducer = home / "reproducer.yaml"
    header = (
        f"# durabench explore finding {number}: breaks {', '.join(sorted(wanted))} on "
        f"{exploration.backend}\n"
        f"# shrunk from trial {found.case.describe()}\n"
        f"# reproduced {reproduced}/{exploration.reruns} re-runs; re-run with:\n"
        f"#   durabench run {reproducer} --backend {exploration.backend}\n"
    )
    reproducer.write_text(
        header + yaml.safe_dump(current.scenario_data(exploration.base, name), sort_keys=False)
    )
    text = explain(witness, exploration.backend, wanted, reproduced, exploration.reruns)
    (home / "explanation.txt").write_text(text)
    return {
        "finding": number,
        "found_at_s": round(time.monotonic() - began, 2),
        "broken": sorted(wanted),
        "original": found.to_json(),
        "minimal": {
            "faults": list(current.faults),
            **{s: getattr(current, s) for s in ("runs", "steps", "workers", "concurrency")},
        },
        "faults_count": len(current.faults),
        "shrink_trials": tried,
        "shrink_steps": len(accepted),
        "accepted": accepted,
        "reruns": exploration.reruns,
        "reproduced": reproduced,
        "reproduction_rate": round(reproduced / max(1, exploration.reruns), 3),
        "rerun_results": [r.results for r in reruns],
        "witness_results": witness.results,
        "reproducer": str(reproducer),
        "explanation": str(home / "explanation.txt"),
        "summary": text.split("\n", 1)[0],
    }
