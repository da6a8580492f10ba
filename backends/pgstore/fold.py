"""The pgstore state machine as pure functions: fold events into progress, and say
what comes next.

The event log is the truth. A worker folds it (from a snapshot when there is one),
asks `next_action` what to do, performs that one phase, appends its result as an
event, folds the new event in, and asks again. A restarted worker does exactly the
same from the log, so it continues at the first missing phase and reuses recorded
LLM answers and tool results instead of calling again. Nothing here does I/O.

Event types (`step`/`attempt` set where they apply):
    run_started · reason {decision} · act {key, output} · verify {verified}
    step_committed {attempts} · approval_requested · approved
    run_completed {final_answer} · run_aborted · expired {ttl_s}
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from harness.errors import DurabenchError
from harness.scenario import Scenario
from harness.state import TERMINAL_STATUSES, RunState, RunStatus, StepRecord
from harness.workload import Decision, Move, final_answer, next_move

__all__ = [
    "INTERNAL",
    "Action",
    "CorruptLog",
    "Event",
    "Progress",
    "apply_event",
    "fold",
    "internal_events",
    "next_action",
]

# Actions that need no LLM or tool call: their events are appended together with the
# event that made them due, in one transaction.
INTERNAL = frozenset({"close_step", "abort_run", "request_approval", "finish"})


class CorruptLog(DurabenchError):
    """The event log contradicts itself (an event for a step that is not current)."""


@dataclass(frozen=True)
class Event:
    """One event as appended (seq is assigned by the store)."""

    type: str
    step: int | None = None
    attempt: int | None = None
    payload: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "step": self.step,
            "attempt": self.attempt,
            "payload": self.payload,
        }


@dataclass(frozen=True)
class Action:
    """What the worker must do next. kind: reason | act | verify | close_step |
    abort_run | request_approval | finish | wait | done."""

    kind: str
    step: int = 0
    attempt: int = 0
    decision: Decision | None = None
    output: dict[str, Any] | None = None
    move: Move | None = None


@dataclass
class StepProgress:
    """The phases recorded so far for the step in flight, by attempt."""

    decisions: dict[int, Decision] = field(default_factory=dict)
    outputs: dict[int, dict[str, Any]] = field(default_factory=dict)
    verdicts: dict[int, bool] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "decisions": {str(a): d.__dict__ for a, d in self.decisions.items()},
            "outputs": {str(a): o for a, o in self.outputs.items()},
            "verdicts": {str(a): v for a, v in self.verdicts.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepProgress:
        return cls(
            decisions={int(a): Decision(**d) for a, d in data["decisions"].items()},
            outputs={int(a): dict(o) for a, o in data["outputs"].items()},
            verdicts={int(a): bool(v) for a, v in data["verdicts"].items()},
        )


@dataclass
class Progress:
    """The fold of a run's events: committed history, the step in flight, the outcome."""

    run_id: str
    steps: list[StepRecord] = field(default_factory=list)
    current: StepProgress = field(default_factory=StepProgress)
    status: RunStatus = "pending"
    approval_requested: bool = False
    approved: bool = False
    answer: str | None = None
    last_seq: int = -1
    step_bytes: dict[int, int] = field(default_factory=dict)

    def copy(self) -> Progress:
        """A copy to draft on (step records are frozen, so shallow copies suffice)."""
        current = StepProgress(
            dict(self.current.decisions), dict(self.current.outputs), dict(self.current.verdicts)
        )
        return replace(
            self, steps=list(self.steps), current=current, step_bytes=dict(self.step_bytes)
        )

    def state(self) -> RunState:
        return RunState(self.run_id, self.status, tuple(self.steps), self.answer)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    def to_dict(self) -> dict[str, Any]:
        """For snapshots: enough to continue folding from `last_seq`."""
        return {
            "run_id": self.run_id,
            "steps": [s.to_dict() for s in self.steps],
            "current": self.current.to_dict(),
            "status": self.status,
            "approval_requested": self.approval_requested,
            "approved": self.approved,
            "answer": self.answer,
            "last_seq": self.last_seq,
            "step_bytes": {str(k): v for k, v in self.step_bytes.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Progress:
        return cls(
            run_id=str(data["run_id"]),
            steps=[StepRecord.from_dict(s) for s in data["steps"]],
            current=StepProgress.from_dict(data["current"]),
            status=data["status"],
            approval_requested=bool(data["approval_requested"]),
            approved=bool(data["approved"]),
            answer=data["answer"],
            last_seq=int(data["last_seq"]),
            step_bytes={int(k): int(v) for k, v in data["step_bytes"].items()},
        )


def _expect_current(progress: Progress, event: Event) -> int:
    step = len(progress.steps)
    if event.step != step or event.attempt is None:
        raise CorruptLog(
            f"{progress.run_id}: {event.type} event for step {event.step} attempt "
            f"{event.attempt}, but step {step} is in flight"
        )
    return event.attempt


def _close(progress: Progress, attempts: int) -> None:
    current = progress.current
    decision_attempt = max(a for a in current.decisions if a <= attempts)
    decision = current.decisions[decision_attempt]
    progress.steps.append(
        StepRecord(
            index=len(progress.steps),
            tool=decision.tool,
            arguments=decision.arguments,
            thought=decision.thought,
            output=current.outputs[attempts],
            verdicts=tuple(current.verdicts[a] for a in range(1, attempts + 1)),
            attempts=attempts,
        )
    )
    progress.current = StepProgress()


def apply_event(progress: Progress, event: Event, seq: int, size: int = 0) -> None:
    """Fold one event into the progress (in place)."""
    kind, payload = event.type, event.payload
    if event.step is not None:
        progress.step_bytes[event.step] = progress.step_bytes.get(event.step, 0) + size
    progress.last_seq = seq
    if progress.status == "pending" and kind != "run_started":
        progress.status = "running"
    if kind == "run_started":
        return
    if kind == "reason":
        attempt = _expect_current(progress, event)
        progress.current.decisions[attempt] = Decision(**payload["decision"])
    elif kind == "act":
        attempt = _expect_current(progress, event)
        progress.current.outputs[attempt] = dict(payload["output"])
    elif kind == "verify":
        attempt = _expect_current(progress, event)
        progress.current.verdicts[attempt] = bool(payload["verified"])
    elif kind == "step_committed":
        _expect_current(progress, event)
        _close(progress, int(payload["attempts"]))
    elif kind == "approval_requested":
        progress.approval_requested = True
        if not progress.approved:
            progress.status = "waiting_approval"
    elif kind == "approved":
        progress.approved = True
        if progress.status == "waiting_approval":
            progress.status = "running"
    elif kind == "run_completed":
        progress.status = "completed"
        progress.answer = str(payload["final_answer"])
    elif kind == "run_aborted":
        progress.status = "aborted"
    elif kind == "expired":
        progress.status = "expired"
    else:
        raise CorruptLog(f"{progress.run_id}: unknown event type {kind!r} at seq {seq}")


def fold(
    run_id: str,
    rows: list[tuple[int, Event, int]],
    snapshot: Progress | None = None,
) -> Progress:
    """Fold (seq, event, size) rows in seq order, starting from a snapshot if given."""
    progress = snapshot if snapshot is not None else Progress(run_id)
    for seq, event, size in rows:
        if seq <= progress.last_seq:
            continue
        apply_event(progress, event, seq, size)
    return progress


def _in_step(scenario: Scenario, progress: Progress) -> Action:
    step = len(progress.steps)
    current = progress.current
    attempt = 1
    decision = current.decisions.get(1)
    while True:
        if decision is None:
            return Action("reason", step, attempt)
        output = current.outputs.get(attempt)
        if output is None:
            return Action("act", step, attempt, decision)
        verified = current.verdicts.get(attempt)
        if verified is None:
            return Action("verify", step, attempt, decision, output)
        move = next_move(scenario.verify, verified, attempt)
        if move in ("commit", "abort"):
            return Action("close_step", step, attempt, decision, output, move)
        attempt += 1
        if move == "replan":
            decision = current.decisions.get(attempt)


def next_action(scenario: Scenario, progress: Progress) -> Action:
    """The one thing to do next for this run, from its folded progress alone."""
    if progress.terminal:
        return Action("done")
    steps = progress.steps
    if steps and steps[-1].verdicts[-1] is False:
        return Action("abort_run", len(steps) - 1)
    approval = scenario.approval
    if approval is not None and len(steps) > approval.after_step:
        if not progress.approval_requested:
            return Action("request_approval", approval.after_step)
        if not progress.approved:
            return Action("wait", approval.after_step)
    if len(steps) >= scenario.steps:
        return Action("finish", len(steps) - 1)
    return _in_step(scenario, progress)


def internal_events(scenario: Scenario, progress: Progress) -> list[Event]:
    """The events that follow without any call (close the step, abort, ask for approval,
    finish), folded into `progress` as they are drafted; append them in one batch."""
    drafted: list[Event] = []
    while True:
        action = next_action(scenario, progress)
        if action.kind not in INTERNAL:
            return drafted
        if action.kind == "close_step":
            event = Event(
                "step_committed", action.step, action.attempt, {"attempts": action.attempt}
            )
        elif action.kind == "abort_run":
            event = Event("run_aborted")
        elif action.kind == "request_approval":
            event = Event("approval_requested", action.step)
        else:
            outputs = [s.output for s in progress.steps]
            event = Event(
                "run_completed", payload={"final_answer": final_answer(progress.run_id, outputs)}
            )
        apply_event(progress, event, progress.last_seq + 1)
        drafted.append(event)
