"""Reading a run back from what DBOS recorded: the workflow's status and its steps'
outputs (`operation_outputs`, through `DBOSClient.list_workflow_steps`).

The recorded outputs are the run's history. Each reason, act and verify output names
its step and attempt; the committed steps are what the step policy
(`harness.steppolicy.plan_step`) makes of them, replayed over the recorded outputs
until one it asks for is not recorded (that step is still open). So the state is
rebuilt from recorded facts only, never from the workflow's memory; the workflow's
own return value, once it has one, is compared against it (`extra.output_agrees`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from backends.dbos.settings import ACT, APPROVAL, REASON, VERIFY
from harness.scenario import VerifyPolicy
from harness.state import RunState, RunStatus, StepRecord
from harness.steppolicy import StepOutcome, plan_step, run_step
from harness.workload import Decision, final_answer

__all__ = ["Recorded", "state_from_steps"]

RUNNING_STATUSES = frozenset({"PENDING", "ENQUEUED", "DELAYED"})


class _NotRecorded(Exception):
    """The step policy asked for an output DBOS has not recorded: the step is open."""


class Recorded:
    """The recorded outputs of one workflow, by (step name, step, attempt)."""

    def __init__(self, steps: Sequence[Any]) -> None:
        self.outputs: dict[tuple[str, int, int], Any] = {}
        self.approval: bool | None = None
        self.errors: list[str] = []
        for info in steps:
            name, output, error = info["function_name"], info["output"], info["error"]
            if error is not None:
                self.errors.append(f"{name}: {error}"[:500])
                continue
            if name in (REASON, ACT, VERIFY) and isinstance(output, dict):
                self.outputs[(name, int(output["step"]), int(output["attempt"]))] = output
            elif name == APPROVAL:
                self.approval = bool(output)

    def get(self, name: str, step: int, attempt: int) -> dict[str, Any]:
        found: dict[str, Any] | None = self.outputs.get((name, step, attempt))
        if found is None:
            raise _NotRecorded
        return found


class _RecordedPhases:
    """Answers a step plan's requests with the recorded outputs (StepPhases)."""

    def __init__(self, recorded: Recorded, step: int) -> None:
        self.recorded, self.step = recorded, step

    def reason(self, attempt: int) -> Decision:
        return Decision(**self.recorded.get(REASON, self.step, attempt)["decision"])

    def act(self, attempt: int, decision: Decision) -> dict[str, Any]:
        output: dict[str, Any] = self.recorded.get(ACT, self.step, attempt)["output"]
        return output

    def verify(self, attempt: int, decision: Decision, output: dict[str, Any]) -> bool:
        return bool(self.recorded.get(VERIFY, self.step, attempt)["verified"])


def state_from_steps(spec: dict[str, Any], recorded: Recorded, dbos_status: str) -> RunState:
    """The run's state from its recorded outputs and DBOS's workflow status."""
    run_id = str(spec["run_id"])
    policy = VerifyPolicy.model_validate(
        {"on_failure": spec["on_failure"], "max_attempts": spec["max_attempts"]}
    )
    steps: list[StepRecord] = []
    status: RunStatus = "running" if recorded.outputs else "pending"
    for step in range(int(spec["steps"])):
        try:
            outcome: StepOutcome = run_step(
                plan_step(policy, step), _RecordedPhases(recorded, step)
            )
        except _NotRecorded:
            break
        steps.append(outcome.record)
        if outcome.move == "abort":
            status = "aborted"
            break
        if spec.get("approval_after_step") == step:
            if recorded.approval is None:
                status = "waiting_approval"
                break
            if not recorded.approval:
                status = "expired"
                break
    else:
        status = "completed"
    if dbos_status in RUNNING_STATUSES and status in ("completed", "aborted", "expired"):
        status = "running"  # every output is in, the workflow has not recorded its end
    answer = final_answer(run_id, [s.output for s in steps]) if status == "completed" else None
    return RunState(run_id, status, tuple(steps), answer)
