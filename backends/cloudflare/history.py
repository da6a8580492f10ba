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
from harness.state import RunState
from harness.steppolicy import replay_recorded

__all__ = ["Recorded", "state_from_outputs"]

PHASES = ("reason", "act", "verify")


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

    def get(self, phase: str, step: int, attempt: int) -> dict[str, Any] | None:
        return self.outputs.get((phase, step, attempt))


def state_from_outputs(spec: dict[str, Any], recorded: Recorded, status: str) -> RunState:
    """The run's state from its persisted outputs and the instance's status."""
    return replay_recorded(
        spec,
        recorded.get,
        recorded.approvals.get,
        still_running=status not in TERMINAL_STATUSES,
        started=bool(recorded.outputs),
    )
