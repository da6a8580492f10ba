"""`pydantic-ai:temporal`: a Pydantic AI agent made durable with its Temporal
integration (the `TemporalDurability` capability, `PydanticAIPlugin`), on the Temporal
server durabench runs (`backends.framework.temporal` has what it shares with the
Temporal backend).

An open run's state without a live worker is folded from the history: the input of the
last model-request activity holds the message history up to it (every tool result
before that request), and that activity's result, once recorded, the model's answer.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from backends.framework.temporal import FrameworkTemporalBackend
from harness.services.conversation import fold_conversation
from harness.state import RunState

__all__ = ["PydanticAITemporalBackend"]

MODEL_ACTIVITY_MARK = "__model_request"


def _payload_json(payloads: Any) -> list[Any]:
    values = []
    for payload in payloads.payloads:
        try:
            values.append(json.loads(payload.data))
        except ValueError:
            values.append(None)
    return values


class PydanticAITemporalBackend(FrameworkTemporalBackend):
    """Options as for `temporal` (`workers`, `heartbeat_s`, `task_timeout_s`, `sticky_s`)."""

    name = "pydantic-ai:temporal"
    worker_module = "backends.pydantic_ai.worker"
    workflow_name = "durabench-pydantic-ai"
    packages = ("pydantic-ai-slim", "pydantic-graph", "temporalio", "openai")
    stage = "stable (Pydantic AI's Temporal integration; TemporalAgent is deprecated)"

    def state_from_history(self, run_id: str, events: list[Any]) -> RunState | None:
        from pydantic_ai.messages import ModelMessagesTypeAdapter

        from backends.pydantic_ai.agent import chat_messages

        scheduled: dict[int, list[Any]] = {}
        last_input: list[Any] | None = None
        last_id = -1
        answer: Any = None
        for event in events:
            if event.HasField("activity_task_scheduled_event_attributes"):
                attrs = event.activity_task_scheduled_event_attributes
                if MODEL_ACTIVITY_MARK in attrs.activity_type.name:
                    scheduled[event.event_id] = _payload_json(attrs.input)
                    last_input, last_id, answer = scheduled[event.event_id], event.event_id, None
            elif event.HasField("activity_task_completed_event_attributes"):
                done = event.activity_task_completed_event_attributes
                if done.scheduled_event_id == last_id:
                    answer = (_payload_json(done.result) or [None])[0]
        if last_input is None:
            return RunState(run_id, "running")
        raw: list[Any] = next(
            (p["messages"] for p in last_input if isinstance(p, dict) and "messages" in p), []
        )
        messages = list(ModelMessagesTypeAdapter.validate_python(raw))
        if isinstance(answer, dict):
            # an answer this version does not read leaves the request alone
            with contextlib.suppress(ValueError):
                messages = list(ModelMessagesTypeAdapter.validate_python([*raw, answer]))
        policy = self.env.scenario.verify
        return fold_conversation(policy, chat_messages(messages), finished=False)
