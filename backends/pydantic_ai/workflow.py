"""The Pydantic AI agent run as a Temporal workflow, the way the integration's
documentation writes it: a `PydanticAIWorkflow` listing the agent in
`__pydantic_ai_agents__`, whose run method awaits the agent (here `agent.iter`, so the
conversation so far is the `state` query's answer while the run is open). Model requests
and tool calls are the integration's activities; this workflow adds none of its own.

Imported only by the worker, after `backends.framework.runtime.configure` (the agent is
built at import); the agent module is passed through the sandbox, so every workflow run
shares the worker's one agent.
"""

from __future__ import annotations

from typing import Any

from pydantic_ai.durable_exec.temporal import PydanticAIWorkflow
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from backends.framework.messages import STATE_QUERY, FrameworkInput
    from backends.framework.runtime import current
    from backends.pydantic_ai.agent import RunDeps, chat_messages
    from backends.pydantic_ai.temporal_agent import build_temporal_agent
    from harness.services.conversation import fold_conversation, task_prompt

__all__ = ["AGENT", "WORKFLOW_NAME", "PydanticAIAgentWorkflow"]

WORKFLOW_NAME = "durabench-pydantic-ai"
AGENT = build_temporal_agent(current())


@workflow.defn(name=WORKFLOW_NAME)
class PydanticAIAgentWorkflow(PydanticAIWorkflow):
    __pydantic_ai_agents__ = (AGENT,)

    def __init__(self) -> None:
        self._spec: FrameworkInput | None = None
        self._messages: list[dict[str, Any]] = []
        self._output: str | None = None

    @workflow.run
    async def run(self, spec: FrameworkInput) -> dict[str, Any]:
        self._spec = spec
        prompt = task_prompt(spec.scenario_name, spec.steps, spec.run_id)
        async with AGENT.iter(prompt, deps=RunDeps(spec.run_id)) as run:
            async for _node in run:
                self._messages = chat_messages(run.all_messages())
        assert run.result is not None
        self._messages = chat_messages(run.result.all_messages())
        self._output = run.result.output
        return self._state(finished=True)

    def _state(self, *, finished: bool) -> dict[str, Any]:
        assert self._spec is not None
        if not self._messages:
            return {"run_id": self._spec.run_id, "status": "running", "steps": []}
        state = fold_conversation(
            self._spec.policy(), self._messages, finished=finished, output=self._output
        )
        return state.to_dict()

    @workflow.query(name=STATE_QUERY)
    def state(self) -> dict[str, Any]:
        return self._state(finished=False)
