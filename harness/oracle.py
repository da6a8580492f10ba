"""The oracle: the exact final state every agent run must reach, computed without
running anything. Same scenario and run id, same oracle, on every machine.

For a real model (`llm.base_url` set) the reason phase's answers are read from the
decisions the recording gateway recorded (harness/recorded.py) instead of computed;
tool outputs and verify verdicts are still the workload's pure functions. Where the
model was never asked (a run lost before it got there) the oracle stops: it is
`known` only up to there. Where the first answer is no valid tool call, the run is
`invalid`: a fact about the model, not about the backend."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from harness.recorded import InvalidDecision
from harness.scenario import Scenario
from harness.state import RunState, RunStatus, StepRecord
from harness.steppolicy import plan_step, run_step
from harness.workload import (
    TRIAL_SEPARATOR,
    Decision,
    decide,
    final_answer,
    tool_output,
    verify_output,
)

__all__ = ["Decisions", "OracleRun", "expected_run", "run_ids"]


class Decisions(Protocol):
    """Where the oracle reads a real model's decisions (harness/recorded.py)."""

    def decision(
        self, run_id: str, step: int, attempt: int
    ) -> Decision | InvalidDecision | None: ...


class _Unpredictable(Exception):
    """The recorded decisions end here (None) or are not a tool call (the reason)."""

    def __init__(self, invalid: InvalidDecision | None) -> None:
        self.invalid = invalid


@dataclass(frozen=True)
class OracleRun:
    """The expected final state plus the work a perfect backend does to reach it."""

    state: RunState
    effects: tuple[tuple[int, int], ...]  # (step, attempt) of every tool execution
    llm_calls: int
    asked: tuple[tuple[int, int], ...] = ()  # (step, attempt) of every reason call
    known: bool = True  # False: the recorded decisions end before the run's end
    invalid: InvalidDecision | None = None  # the first answer that is no valid tool call

    @property
    def tool_calls(self) -> int:
        return len(self.effects)


def run_ids(scenario: Scenario, first: int = 0, trials: int = 1) -> list[str]:
    """The logical run ids of a scenario; backends namespace them, the workload does not.
    Trial k > 0 of task `run-000001` is `run-000001~tk`: the same task, another run."""
    tasks = [f"run-{i:06d}" for i in range(first, first + scenario.runs)]
    return [
        task if trial == 0 else f"{task}{TRIAL_SEPARATOR}t{trial}"
        for trial in range(trials)
        for task in tasks
    ]


@dataclass
class _PurePhases:
    """The phases of one step as the workload's pure functions answer them, counting
    the LLM calls and tool executions a perfect backend makes."""

    scenario: Scenario
    run_id: str
    step: int
    effects: list[tuple[int, int]]
    asked: list[tuple[int, int]]
    decisions: Decisions | None = None
    llm_calls: int = 0

    def reason(self, attempt: int) -> Decision:
        self.llm_calls += 1
        self.asked.append((self.step, attempt))
        if self.decisions is None:
            return decide(self.scenario, self.run_id, self.step, attempt)
        found = self.decisions.decision(self.run_id, self.step, attempt)
        if not isinstance(found, Decision):
            raise _Unpredictable(found)
        return found

    def act(self, attempt: int, decision: Decision) -> dict[str, Any]:
        self.effects.append((self.step, attempt))
        return tool_output(
            self.scenario, self.run_id, self.step, attempt, decision.tool, decision.arguments
        )

    def verify(self, attempt: int, decision: Decision, output: dict[str, Any]) -> bool:
        return verify_output(decision, output)


def expected_run(scenario: Scenario, run_id: str, decisions: Decisions | None = None) -> OracleRun:
    """The run's expected end; with `decisions`, the reason phase's answers are the
    recorded ones (a real model's) and the oracle may be partial (`known`, `invalid`)."""
    steps: list[StepRecord] = []
    effects: list[tuple[int, int]] = []
    asked: list[tuple[int, int]] = []
    llm_calls = 0
    status: RunStatus = "completed"
    for step in range(scenario.steps):
        phases = _PurePhases(scenario, run_id, step, effects, asked, decisions)
        try:
            outcome = run_step(plan_step(scenario.verify, step), phases)
        except _Unpredictable as stop:
            state = RunState(run_id=run_id, status="running", steps=tuple(steps))
            return OracleRun(
                state, tuple(effects), llm_calls, tuple(asked), known=False, invalid=stop.invalid
            )
        llm_calls += phases.llm_calls
        steps.append(outcome.record)
        if outcome.move == "abort":
            status = "aborted"
            break
        approval = scenario.approval
        if approval is not None and approval.after_step == step and approval.delay_s is None:
            status = "expired"
            break
    answer = final_answer(run_id, [s.output for s in steps]) if status == "completed" else None
    return OracleRun(
        state=RunState(run_id=run_id, status=status, steps=tuple(steps), final_answer=answer),
        effects=tuple(effects),
        llm_calls=llm_calls,
        asked=tuple(asked),
    )
