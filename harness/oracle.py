"""The oracle: the exact final state every agent run must reach, computed without
running anything. Same scenario and run id, same oracle, on every machine."""

from __future__ import annotations

from dataclasses import dataclass

from harness.scenario import Scenario
from harness.state import RunState, RunStatus, StepRecord
from harness.workload import (
    TRIAL_SEPARATOR,
    decide,
    final_answer,
    next_move,
    tool_output,
    verify_output,
)

__all__ = ["OracleRun", "expected_run", "run_ids"]


@dataclass(frozen=True)
class OracleRun:
    """The expected final state plus the work a perfect backend does to reach it."""

    state: RunState
    effects: tuple[tuple[int, int], ...]  # (step, attempt) of every tool execution
    llm_calls: int

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


def expected_run(scenario: Scenario, run_id: str) -> OracleRun:
    steps: list[StepRecord] = []
    effects: list[tuple[int, int]] = []
    llm_calls = 0
    status: RunStatus = "completed"
    for step in range(scenario.steps):
        decision = decide(scenario, run_id, step, 1)
        llm_calls += 1
        verdicts: list[bool] = []
        attempt = 1
        while True:
            output = tool_output(scenario, run_id, step, attempt, decision.tool, decision.arguments)
            effects.append((step, attempt))
            verified = verify_output(decision, output)
            verdicts.append(verified)
            move = next_move(scenario.verify, verified, attempt)
            if move in ("commit", "abort"):
                break
            attempt += 1
            if move == "replan":
                decision = decide(scenario, run_id, step, attempt)
                llm_calls += 1
        steps.append(
            StepRecord(
                index=step,
                tool=decision.tool,
                arguments=decision.arguments,
                thought=decision.thought,
                output=output,
                verdicts=tuple(verdicts),
                attempts=attempt,
            )
        )
        if move == "abort":
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
    )
