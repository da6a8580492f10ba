"""Checkers: pure verdicts on one agent run from the oracle, the persisted state and
the tool ledger.

Each check answers one question and returns valid true | false | unknown with a
small JSON-able detail (counts plus the first examples). A check that crashes
yields unknown, never a pass, and verdicts compose false > unknown > true.
Nothing here does I/O.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from harness.oracle import OracleRun
from harness.state import TERMINAL_STATUSES, LedgerEntry, PersistedRun, RunState, StepRecord

__all__ = [
    "VERDICTS",
    "FieldDiff",
    "RunEvidence",
    "Verdict",
    "check_run",
    "combine",
    "diff_states",
    "run_passed",
    "unknown_verdicts",
]

VERDICTS = (
    "complete",
    "state_match",
    "no_lost_step",
    "no_duplicate_step",
    "effects_exactly_once",
    "no_orphan_effect",
    "ledger_agrees",
    "decisions_agree",
    "no_nondeterminism",
)
MAX_EXAMPLES = 5  # examples per verdict detail: enough to debug, small enough to store
MAX_DIFFS = 20


@dataclass(frozen=True)
class Verdict:
    """One check's answer. `valid is None` means unknown (the check could not decide)."""

    name: str
    valid: bool | None
    detail: dict[str, Any]


@dataclass(frozen=True)
class FieldDiff:
    """One field where the persisted state differs from the oracle; `path` uses list
    positions, e.g. "steps[3].output.ref", or "steps[2]" for a missing/extra step."""

    path: str
    expected: Any
    actual: Any

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "expected": self.expected, "actual": self.actual}


@dataclass(frozen=True)
class RunEvidence:
    """Everything the checkers may look at for one run; the ledger holds this run only."""

    oracle: OracleRun
    persisted: PersistedRun
    ledger: tuple[LedgerEntry, ...]
    committed_steps: frozenset[int]  # step indices the worker acknowledged as committed
    finished_in_time: bool  # the runner saw a terminal state before the run's deadline
    # what the backend reported as non-determinism (a replay after a deploy that took
    # another path); empty when it reported none
    nondeterminism: tuple[str, ...] = ()


def combine(values: Iterable[bool | None]) -> bool | None:
    """Jepsen composition: any false is false, else any unknown is unknown, else true."""
    result: bool | None = True
    for value in values:
        if value is False:
            return False
        if value is None:
            result = None
    return result


def run_passed(verdicts: Mapping[str, Verdict]) -> bool:
    """True only if every verdict is valid; unknown is not a pass, nor is no verdict at all."""
    return bool(verdicts) and combine(v.valid for v in verdicts.values()) is True


def _diff_mapping(
    path: str, expected: Mapping[str, Any], actual: Mapping[str, Any]
) -> list[FieldDiff]:
    keys = sorted(set(expected) | set(actual))
    return [
        FieldDiff(f"{path}.{key}", expected.get(key), actual.get(key))
        for key in keys
        if expected.get(key) != actual.get(key)
    ]


def _diff_step(path: str, expected: StepRecord, actual: StepRecord) -> list[FieldDiff]:
    diffs: list[FieldDiff] = []
    for name in ("index", "tool", "thought", "attempts"):
        if getattr(expected, name) != getattr(actual, name):
            diffs.append(
                FieldDiff(f"{path}.{name}", getattr(expected, name), getattr(actual, name))
            )
    diffs += _diff_mapping(f"{path}.arguments", expected.arguments, actual.arguments)
    diffs += _diff_mapping(f"{path}.output", expected.output, actual.output)
    if tuple(expected.verdicts) != tuple(actual.verdicts):
        diffs.append(FieldDiff(f"{path}.verdicts", list(expected.verdicts), list(actual.verdicts)))
    return diffs


def diff_states(expected: RunState, actual: RunState | None) -> list[FieldDiff]:
    """Field-by-field differences, steps compared by position. The run id is not
    compared: backends namespace run ids, the oracle does not."""
    if actual is None:
        return [FieldDiff("", "<state>", None)]
    diffs: list[FieldDiff] = []
    if expected.status != actual.status:
        diffs.append(FieldDiff("status", expected.status, actual.status))
    if expected.final_answer != actual.final_answer:
        diffs.append(FieldDiff("final_answer", expected.final_answer, actual.final_answer))
    for i in range(max(len(expected.steps), len(actual.steps))):
        if i >= len(actual.steps):
            diffs.append(FieldDiff(f"steps[{i}]", expected.steps[i].to_dict(), None))
        elif i >= len(expected.steps):
            diffs.append(FieldDiff(f"steps[{i}]", None, actual.steps[i].to_dict()))
        else:
            diffs += _diff_step(f"steps[{i}]", expected.steps[i], actual.steps[i])
    return diffs


def _persisted_steps(evidence: RunEvidence) -> tuple[StepRecord, ...]:
    state = evidence.persisted.state
    return () if state is None else state.steps


def _applied(evidence: RunEvidence) -> list[LedgerEntry]:
    return [e for e in evidence.ledger if e.applied]


CheckResult = tuple[bool | None, dict[str, Any]]


def _check_complete(evidence: RunEvidence) -> CheckResult:
    """With a partial oracle (a real model's recorded decisions end early) a run that did
    not reach an end in time is still incomplete; one that did is unknown."""
    state = evidence.persisted.state
    expected = evidence.oracle.state.status
    actual = None if state is None else state.status
    ended = actual in TERMINAL_STATUSES and evidence.finished_in_time
    detail = {"expected": expected, "actual": actual, "finished_in_time": evidence.finished_in_time}
    if not evidence.oracle.known:
        return (None if ended else False), {**detail, "expected": "unknown (no recorded decision)"}
    return actual == expected and ended, detail


def _check_state_match(evidence: RunEvidence) -> CheckResult:
    """Field by field; with a partial oracle, over the steps it knows (a difference there
    is a mismatch, none is unknown)."""
    oracle, state = evidence.oracle, evidence.persisted.state
    if not oracle.known and state is not None:
        known = len(oracle.state.steps)
        diffs = [
            d
            for i, (want, got) in enumerate(zip(oracle.state.steps, state.steps, strict=False))
            for d in _diff_step(f"steps[{i}]", want, got)
        ]
        detail = {"differing": len(diffs), "diffs": [d.to_dict() for d in diffs[:MAX_DIFFS]]}
        return (False if diffs else None), {**detail, "known_steps": known}
    diffs = diff_states(oracle.state, state)
    return not diffs, {"differing": len(diffs), "diffs": [d.to_dict() for d in diffs[:MAX_DIFFS]]}


def _check_no_lost_step(evidence: RunEvidence) -> CheckResult:
    """Steps must be present up to what the evidence says was reached: the whole oracle
    history once terminal, otherwise every step the worker acknowledged as committed.
    Applied effects beyond that are orphans, not lost steps."""
    state = evidence.persisted.state
    if state is not None and state.status in TERMINAL_STATUSES and evidence.oracle.known:
        reached = len(evidence.oracle.state.steps)
    else:
        reached = max(evidence.committed_steps) + 1 if evidence.committed_steps else 0
    indices = [s.index for s in _persisted_steps(evidence)]
    present = set(indices)
    lost = [i for i in range(reached) if i not in present]
    out_of_order = any(b < a for a, b in pairwise(indices))
    detail = {"expected_length": reached, "lost": len(lost), "first_lost": lost[:MAX_EXAMPLES]}
    detail["out_of_order"] = out_of_order
    return not lost and not out_of_order, detail


def _check_no_duplicate_step(evidence: RunEvidence) -> CheckResult:
    counts = Counter(s.index for s in _persisted_steps(evidence))
    duplicated = sorted(i for i, n in counts.items() if n > 1)
    return not duplicated, {"duplicated": len(duplicated), "indices": duplicated[:MAX_EXAMPLES]}


def _reached_effects(evidence: RunEvidence) -> list[tuple[int, int]]:
    """The oracle's effects the run must have applied by now: all of them once it reached
    the oracle's end, else those of every step it committed (persisted or acknowledged)."""
    state = evidence.persisted.state
    reached_end = state is not None and state.status == evidence.oracle.state.status
    if reached_end and state is not None and state.status in TERMINAL_STATUSES:
        return list(evidence.oracle.effects)
    steps = {s.index for s in _persisted_steps(evidence)} | set(evidence.committed_steps)
    return [(s, a) for s, a in evidence.oracle.effects if s in steps]


def _check_effects_exactly_once(evidence: RunEvidence) -> CheckResult:
    """Exactly once is at most once and at least once. A logical effect is (step,
    attempt), not an idempotency key: a backend without a stable key applies the same
    effect under several keys, and that is a duplicate. A committed step whose effect was
    never applied is a missing effect. Executions the ledger absorbed (not applied) are
    fine and only counted."""
    applied = _applied(evidence)
    counts = Counter((e.step, e.attempt) for e in applied)
    duplicated = sorted([s, a, n] for (s, a), n in counts.items() if n > 1)
    worst = max(duplicated, key=lambda d: d[2], default=None)
    missing = sorted([s, a] for s, a in set(_reached_effects(evidence)) if (s, a) not in counts)
    detail = {
        "raw_executions": len(evidence.ledger),
        "applied": len(applied),
        "expected": len(evidence.oracle.effects),
        "deduplicated_retries": len(evidence.ledger) - len(applied),
        "duplicated_effects": len(duplicated),
        "duplicated": duplicated[:MAX_EXAMPLES],
        "worst": worst,
        "missing_effects": len(missing),
        "missing": missing[:MAX_EXAMPLES],
    }
    return not duplicated and not missing, detail


def _check_no_orphan_effect(evidence: RunEvidence) -> CheckResult:
    """An applied effect the history does not account for happened but was forgotten:
    its step is missing, or it belongs to an attempt later than the one persisted."""
    attempts: dict[int, int] = {}
    for step in _persisted_steps(evidence):
        attempts[step.index] = max(step.attempts, attempts.get(step.index, 0))
    orphans = [
        {"step": e.step, "attempt": e.attempt, "key": e.idempotency_key}
        for e in sorted(_applied(evidence), key=lambda e: e.seq)
        if e.step not in attempts or e.attempt > attempts[e.step]
    ]
    return not orphans, {"orphans": len(orphans), "examples": orphans[:MAX_EXAMPLES]}


def _check_ledger_agrees(evidence: RunEvidence) -> CheckResult:
    """The stored output of each step must be what the tool service actually answered
    for the accepted attempt. With several applied entries (a duplicate, reported by
    effects_exactly_once) the stored output must match one of them."""
    responses: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for entry in sorted(_applied(evidence), key=lambda e: e.seq):
        responses.setdefault((entry.step, entry.attempt), []).append(entry.response)
    mismatches: list[dict[str, Any]] = []
    for step in _persisted_steps(evidence):
        found = responses.get((step.index, step.attempts))
        if not found:
            reason, ledger = "no applied ledger entry", None
        elif step.output not in found:
            reason, ledger = "stored output differs from ledger response", found[0]
        else:
            continue
        mismatches.append(
            {"step": step.index, "reason": reason, "stored": step.output, "ledger": ledger}
        )
    return not mismatches, {"mismatches": len(mismatches), "examples": mismatches[:MAX_EXAMPLES]}


def _check_decisions_agree(evidence: RunEvidence) -> CheckResult:
    """The decision the history keeps for a step (tool and arguments) must be the one
    whose effect was applied. A backend that re-runs a reason call after a crash can get
    a different answer (a real model at temperature > 0 does); if it then keeps the new
    decision while the old effect stands, state and world disagree."""
    requests: dict[tuple[int, int], list[LedgerEntry]] = {}
    for entry in sorted(_applied(evidence), key=lambda e: e.seq):
        requests.setdefault((entry.step, entry.attempt), []).append(entry)
    disagreements: list[dict[str, Any]] = []
    for step in _persisted_steps(evidence):
        for entry in requests.get((step.index, step.attempts), []):
            applied = (entry.tool, entry.request.get("arguments"))
            if applied != (step.tool, step.arguments):
                disagreements.append(
                    {
                        "step": step.index,
                        "kept": {"tool": step.tool, "arguments": step.arguments},
                        "applied": {"tool": applied[0], "arguments": applied[1]},
                    }
                )
    return not disagreements, {
        "disagreements": len(disagreements),
        "examples": disagreements[:MAX_EXAMPLES],
    }


def _check_no_nondeterminism(evidence: RunEvidence) -> CheckResult:
    """A replay that took another path than the recorded history (workflow code changed
    by a deploy without a patch) is a failure even if the run later completed: the
    backend had to discard or terminate the work it was replaying."""
    found = list(evidence.nondeterminism)
    return not found, {"nondeterminism": len(found), "examples": found[:MAX_EXAMPLES]}


_CHECKS: dict[str, Callable[[RunEvidence], CheckResult]] = {
    "complete": _check_complete,
    "state_match": _check_state_match,
    "no_lost_step": _check_no_lost_step,
    "no_duplicate_step": _check_no_duplicate_step,
    "effects_exactly_once": _check_effects_exactly_once,
    "no_orphan_effect": _check_no_orphan_effect,
    "ledger_agrees": _check_ledger_agrees,
    "decisions_agree": _check_decisions_agree,
    "no_nondeterminism": _check_no_nondeterminism,
}


def check_run(evidence: RunEvidence) -> dict[str, Verdict]:
    """Every verdict in VERDICTS order. Each check runs on its own: one that crashes
    is unknown (with the error), never a pass, and does not stop the others."""
    verdicts: dict[str, Verdict] = {}
    for name in VERDICTS:
        try:
            valid, detail = _CHECKS[name](evidence)
        except Exception as exc:
            verdicts[name] = Verdict(name, None, {"error": repr(exc)})
        else:
            verdicts[name] = Verdict(name, valid, detail)
    return verdicts


def unknown_verdicts(error: str) -> dict[str, Verdict]:
    """Every verdict unknown, with the reason: the evidence could not be read (the
    backend's `inspect` raised, or returned a state that is not a run state)."""
    return {name: Verdict(name, None, {"error": error}) for name in VERDICTS}
