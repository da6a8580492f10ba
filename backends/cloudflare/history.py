"""Reading a run back from what the Workflows runtime persisted: the instance's status
and its steps' outputs.

Every `step.do` of the agent Workflow returns an output that names its phase, step and
attempt (src/agent.js), and the runtime persists it before the Workflow goes on. The
committed steps are what the step policy (`harness.steppolicy.plan_step`) makes of
those outputs, replayed until one it asks for is not persisted (that step is open). So
the state is rebuilt from persisted facts only, never from the Workflow's memory; its
return value, once it has one, is compared against it (`extra.output_agrees`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from backends.cloudflare.settings import TERMINAL_STATUSES
from harness.scenario import VerifyPolicy
from harness.state import RunState, RunStatus, StepRecord
from harness.steppolicy import StepOutcome, plan_step, run_step
from harness.workload import Decision, final_answer

__all__ = ["Recorded", "state_from_outputs"]

PHASES = ("reason", "act", "verify")


class _NotRecorded(Exception):
    """The step policy asked for an output the runtime has not persisted: the step is open."""


class Recorded:
    """The persisted step outputs of one instance, by (phase, step, attempt)."""

    def __init__(self, outputs: Iterable[Any]) -> None:
        self.outputs: dict[tuple[str, int, int], dict[str, Any]] = {}
        self.approvals: dict[int, bool] = {}
        self.count = 0
        for output in outputs:
            if not isinstance(output, dict) or "phase" not in output:
                continue  # an event's payload (the approval, a wake-up)
            self.count += 1
            phase, step = str(output["phase"]), int(output["step"])
            if phase == "approval":
                self.approvals[step] = bool(output["approved"])
            elif phase in PHASES:
                self.outputs[(phase, step, int(output["attempt"]))] = output

    def get(self, phase: str, step: int, attempt: int) -> dict[str, Any]:
        found = self.outputs.get((phase, step, attempt))
        if found is None:
            raise _NotRecorded
        return found


class _RecordedPhases:
    """Answers a step plan's requests with the persisted outputs (StepPhases)."""

    def __init__(self, recorded: Recorded, step: int) -> None:
        self.recorded, self.step = recorded, step

    def reason(self, attempt: int) -> Decision:
        return Decision(**self.recorded.get("reason", self.step, attempt)["decision"])

    def act(self, attempt: int, decision: Decision) -> dict[str, Any]:
        output: dict[str, Any] = self.recorded.get("act", self.step, attempt)["output"]
        return output

    def verify(self, attempt: int, decision: Decision, output: dict[str, Any]) -> bool:
        return bool(self.recorded.get("verify", self.step, attempt)["verified"])


def state_from_outputs(spec: dict[str, Any], recorded: Recorded, status: str) -> RunState:
    """The run's state from its persisted outputs and the instance's status."""
    run_id = str(spec["run_id"])
    policy = VerifyPolicy.model_validate(
        {"on_failure": spec["on_failure"], "max_attempts": spec["max_attempts"]}
    )
    steps: list[StepRecord] = []
    state: RunStatus = "running" if recorded.outputs else "pending"
    for step in range(int(spec["steps"])):
        try:
            outcome: StepOutcome = run_step(
                plan_step(policy, step), _RecordedPhases(recorded, step)
            )
        except _NotRecorded:
            break
        steps.append(outcome.record)
        if outcome.move == "abort":
            state = "aborted"
            break
        if spec.get("approval_after_step") == step:
            approved = recorded.approvals.get(step)
            if approved is None:
                state = "waiting_approval"
                break
            if not approved:
                state = "expired"
                break
    else:
        state = "completed"
    if status not in TERMINAL_STATUSES and state in ("completed", "aborted", "expired"):
        state = "running"  # every output is in, the instance has not recorded its end
    answer = final_answer(run_id, [s.output for s in steps]) if state == "completed" else None
    return RunState(run_id, state, tuple(steps), answer)
