"""The step policy, written once: what one RAV step does after each verify verdict
(retry the act, re-plan, commit, abort) and what the closed step records.

`plan_step` is the whole step as a plan that asks for phases and never performs
them (no I/O): it yields `Reason`, `Act` and `Verify` requests and is sent their
answers. The oracle answers with the pure workload functions (`run_step`), a
worker with the real phases of `harness.agent` (`run_step_async`), so what the
oracle predicts and what a worker does cannot drift apart. A backend whose idiom
cuts a step into separately persisted pieces (a graph's nodes, an event log) calls
`settle` for the one decision that follows a verify. Backends must NOT re-implement
either: a copy is where a retry or re-plan rule quietly diverges.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from harness.scenario import VerifyPolicy
from harness.state import RunState, RunStatus, StepRecord
from harness.workload import Decision, Move, final_answer, next_move

__all__ = [
    "Act",
    "AsyncStepPhases",
    "PhaseRequest",
    "Reason",
    "Settled",
    "StepOutcome",
    "StepPhases",
    "StepPlan",
    "Verify",
    "plan_step",
    "replay_recorded",
    "run_step",
    "run_step_async",
    "settle",
]


@dataclass(frozen=True)
class Reason:
    """Ask the LLM for a decision (attempt > 1 only after a re-plan)."""

    attempt: int


@dataclass(frozen=True)
class Act:
    """Execute the decided tool call."""

    attempt: int
    decision: Decision


@dataclass(frozen=True)
class Verify:
    """Check the tool output against the decision."""

    attempt: int
    decision: Decision
    output: dict[str, Any]


PhaseRequest = Reason | Act | Verify


@dataclass(frozen=True)
class StepOutcome:
    record: StepRecord
    move: Move  # "commit" or "abort"


@dataclass(frozen=True)
class Settled:
    """What follows one verify: the move, every verdict of the step so far, and the
    closed step's record when the move is commit or abort (None: attempt again)."""

    move: Move
    verdicts: tuple[bool, ...]
    record: StepRecord | None


def settle(
    policy: VerifyPolicy,
    step: int,
    attempt: int,
    decision: Decision,
    output: dict[str, Any],
    verdicts: tuple[bool, ...] | list[bool],
    verified: bool,
) -> Settled:
    """The decision after the verify of `attempt` (1-based), given the step's earlier
    verdicts; a commit or abort closes the step with the current decision and output."""
    every = (*verdicts, verified)
    move = next_move(policy, verified, attempt)
    if move in ("retry_act", "replan"):
        return Settled(move, every, None)
    record = StepRecord(
        index=step,
        tool=decision.tool,
        arguments=decision.arguments,
        thought=decision.thought,
        output=output,
        verdicts=every,
        attempts=attempt,
    )
    return Settled(move, every, record)


StepPlan = Generator[PhaseRequest, Any, StepOutcome]


def plan_step(policy: VerifyPolicy, step: int) -> StepPlan:
    """One step: reason, then act and verify until the policy commits or aborts."""
    decision: Decision = yield Reason(1)
    attempt = 1
    verdicts: tuple[bool, ...] = ()
    while True:
        output: dict[str, Any] = yield Act(attempt, decision)
        verified: bool = yield Verify(attempt, decision, output)
        settled = settle(policy, step, attempt, decision, output, verdicts, verified)
        if settled.record is not None:
            return StepOutcome(settled.record, settled.move)
        verdicts = settled.verdicts
        attempt += 1
        if settled.move == "replan":
            decision = yield Reason(attempt)


class StepPhases(Protocol):
    """Answers to a plan's requests, synchronously (the oracle's pure functions)."""

    def reason(self, attempt: int) -> Decision: ...

    def act(self, attempt: int, decision: Decision) -> dict[str, Any]: ...

    def verify(self, attempt: int, decision: Decision, output: dict[str, Any]) -> bool: ...


class AsyncStepPhases(Protocol):
    """Answers to a plan's requests from real services (a worker's phases)."""

    async def reason(self, attempt: int) -> Decision: ...

    async def act(self, attempt: int, decision: Decision) -> dict[str, Any]: ...

    async def verify(self, attempt: int, decision: Decision, output: dict[str, Any]) -> bool: ...


def _answer(request: PhaseRequest, phases: StepPhases | AsyncStepPhases) -> Any:
    """The phase call a request asks for: its answer, or an awaitable of it."""
    if isinstance(request, Reason):
        return phases.reason(request.attempt)
    if isinstance(request, Act):
        return phases.act(request.attempt, request.decision)
    return phases.verify(request.attempt, request.decision, request.output)


def run_step(plan: StepPlan, phases: StepPhases) -> StepOutcome:
    """Drive a plan to its outcome with synchronous answers."""
    answer: Any = None
    try:
        while True:
            answer = _answer(plan.send(answer), phases)
    except StopIteration as done:
        outcome: StepOutcome = done.value
        return outcome


async def run_step_async(plan: StepPlan, phases: AsyncStepPhases) -> StepOutcome:
    """Drive a plan to its outcome, awaiting each answer."""
    answer: Any = None
    try:
        while True:
            answer = await _answer(plan.send(answer), phases)
    except StopIteration as done:
        outcome: StepOutcome = done.value
        return outcome


class _NotRecorded(Exception):
    """The plan asked for an output the store has not recorded: the step is open."""


class _RecordedPhases:
    """Answers a step plan's requests with recorded outputs (StepPhases)."""

    def __init__(self, output: Callable[[str, int, int], Mapping[str, Any] | None], step: int,
                 names: tuple[str, str, str]) -> None:  # fmt: skip
        self.output, self.step, self.names = output, step, names

    def _get(self, phase: int, attempt: int) -> Mapping[str, Any]:
        found = self.output(self.names[phase], self.step, attempt)
        if found is None:
            raise _NotRecorded
        return found

    def reason(self, attempt: int) -> Decision:
        return Decision(**self._get(0, attempt)["decision"])

    def act(self, attempt: int, decision: Decision) -> dict[str, Any]:
        return dict(self._get(1, attempt)["output"])

    def verify(self, attempt: int, decision: Decision, output: dict[str, Any]) -> bool:
        return bool(self._get(2, attempt)["verified"])


def replay_recorded(
    spec: Mapping[str, Any],
    output: Callable[[str, int, int], Mapping[str, Any] | None],
    approval: Callable[[int], bool | None],
    still_running: bool,
    started: bool,
    names: tuple[str, str, str] = ("reason", "act", "verify"),
) -> RunState:
    """A run's state rebuilt from a durable engine's recorded step outputs: the step plan
        replayed over them (`output(name, step, attempt)`: reason's `decision`, act's
        `output`, verify's `verified`; None when not recorded) until it asks for one that is
        not (that step is open). `approval(step)` is the recorded verdict (None: waiting);
        `still_running` the engine's own status, which keeps a run whose every output is in
        running until the engine records its end; `started`, whether anything was recorded
    (a run with nothing is pending)."""
    run_id = str(spec["run_id"])
    policy = VerifyPolicy.model_validate(
        {"on_failure": spec["on_failure"], "max_attempts": spec["max_attempts"]}
    )
    steps: list[StepRecord] = []
    status: RunStatus = "running" if started else "pending"
    for step in range(int(spec["steps"])):
        try:
            outcome = run_step(plan_step(policy, step), _RecordedPhases(output, step, names))
        except _NotRecorded:
            break
        steps.append(outcome.record)
        if outcome.move == "abort":
            status = "aborted"
            break
        if spec.get("approval_after_step") == step:
            approved = approval(step)
            if approved is None:
                status = "waiting_approval"
                break
            if not approved:
                status = "expired"
                break
    else:
        status = "completed"
    if still_running and status in ("completed", "aborted", "expired"):
        status = "running"  # every output is in, the engine has not recorded the end
    answer = final_answer(run_id, [s.output for s in steps]) if status == "completed" else None
    return RunState(run_id, status, tuple(steps), answer)
