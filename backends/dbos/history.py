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
from harness.state import RunState
from harness.steppolicy import replay_recorded

__all__ = ["Recorded", "state_from_steps"]

RUNNING_STATUSES = frozenset({"PENDING", "ENQUEUED", "DELAYED"})


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

    def get(self, name: str, step: int, attempt: int) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self.outputs.get((name, step, attempt))
        return found


def state_from_steps(spec: dict[str, Any], recorded: Recorded, dbos_status: str) -> RunState:
    """The run's state from its recorded outputs and DBOS's workflow status."""
    return replay_recorded(
        spec,
        recorded.get,
        lambda step: recorded.approval,
        still_running=dbos_status in RUNNING_STATUSES,
        started=bool(recorded.outputs),
        names=(REASON, ACT, VERIFY),
    )
