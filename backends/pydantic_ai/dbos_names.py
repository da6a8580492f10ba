"""What the `pydantic-ai:dbos` backend and its workers agree on: the workflow's and the
tool step's names in the system database (persisted data: never rename them with runs in
flight; the model step's name is the integration's, from the agent's name), and the
recorded tool step output read back as the verdict it carries."""

from __future__ import annotations

from typing import Any

from backends.pydantic_ai.agent import AGENT_NAME
from harness.services.conversation import Verdict

__all__ = ["MODEL_STEP_MARK", "TOOL_STEP", "WORKFLOW_NAME", "verdict_of"]

WORKFLOW_NAME = "durabench_pydantic_ai"
TOOL_STEP = f"{AGENT_NAME}.tool_call"
MODEL_STEP_MARK = "__model.request"  # in the integration's model step names


def verdict_of(recorded: dict[str, Any]) -> Verdict:
    """The verdict in a recorded tool step output."""
    return Verdict(
        int(recorded["step"]),
        int(recorded["attempt"]),
        bool(recorded["verified"]),
        recorded["move"],
        dict(recorded["output"]),
    )
