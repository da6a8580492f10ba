"""`openai-agents:temporal`: an OpenAI Agents SDK agent through Temporal's integration
for it (`temporalio.openai_agents`, the `temporalio-openai-agents` package), on the
Temporal server durabench runs (`backends.framework.temporal` has what it shares with
the Temporal backend).

An open run's state without a live worker is folded from the history: the input of the
last model activity holds every item of the conversation before it.
"""

from __future__ import annotations

import json
from typing import Any

from backends.framework.temporal import FrameworkTemporalBackend
from harness.services.conversation import fold_conversation
from harness.state import RunState

__all__ = ["OpenAIAgentsTemporalBackend"]

MODEL_ACTIVITY = "invoke_model_activity"


class OpenAIAgentsTemporalBackend(FrameworkTemporalBackend):
    """Options as for `temporal` (`workers`, `heartbeat_s`, `task_timeout_s`, `sticky_s`)."""

    name = "openai-agents:temporal"
    worker_module = "backends.openai_agents.worker"
    workflow_name = "durabench-openai-agents"
    packages = ("openai-agents", "temporalio-openai-agents", "temporalio", "openai")
    stage = "stable (temporalio-openai-agents: Production/Stable; its streaming is experimental)"

    def state_from_history(self, run_id: str, events: list[Any]) -> RunState | None:
        from backends.openai_agents.agent import chat_messages

        items: list[Any] | None = None
        for event in events:
            if not event.HasField("activity_task_scheduled_event_attributes"):
                continue
            attrs = event.activity_task_scheduled_event_attributes
            if not attrs.activity_type.name.startswith(MODEL_ACTIVITY):
                continue
            for payload in attrs.input.payloads:
                try:
                    data = json.loads(payload.data)
                except ValueError:
                    continue
                if isinstance(data, dict) and isinstance(data.get("input"), list):
                    items = data["input"]
        if items is None:
            return RunState(run_id, "running")
        return fold_conversation(self.env.scenario.verify, chat_messages(items), finished=False)
