"""The OpenAI Agents SDK agent run as a Temporal workflow, the way Temporal's integration
documents it: the agent is built and `Runner.run` awaited inside the workflow; the
plugin runs each model call as an activity; the tools are `activity_as_tool` activities.
Run hooks keep the conversation so far for the `state` query while the run is open.

Imported only by the worker, after `backends.framework.runtime.configure`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from agents import Agent, RunConfig, RunHooks, Runner
    from temporalio.openai_agents.workflow import activity_as_tool

    from backends.framework.messages import STATE_QUERY, FrameworkInput
    from backends.framework.runtime import current
    from backends.openai_agents.agent import RunDeps, chat_messages, tool_activities
    from harness.services.conversation import fold_conversation, task_prompt

__all__ = ["TOOL_ACTIVITIES", "WORKFLOW_NAME", "OpenAIAgentsWorkflow"]

WORKFLOW_NAME = "durabench-openai-agents"
INSTRUCTIONS = "You are a procurement agent. Call exactly one tool per step."
TOOL_ACTIVITIES = tool_activities(current())
_RUNTIME = current()
RETRY = RetryPolicy(initial_interval=timedelta(seconds=0.2), maximum_interval=timedelta(seconds=2))


class _Conversation(RunHooks[RunDeps]):
    """Collects the model's answers and the tool results as the run makes them."""

    def __init__(self, opening: list[dict[str, Any]]) -> None:
        self.messages = list(opening)

    async def on_llm_end(self, context: Any, agent: Any, response: Any) -> None:
        self.messages += chat_messages(response.output)

    async def on_tool_end(self, context: Any, agent: Any, tool: Any, result: Any) -> None:
        call_id = getattr(context, "tool_call_id", None)
        self.messages.append({"role": "tool", "tool_call_id": call_id, "content": str(result)})


@workflow.defn(name=WORKFLOW_NAME)
class OpenAIAgentsWorkflow:
    def __init__(self) -> None:
        self._spec: FrameworkInput | None = None
        self._hooks: _Conversation | None = None
        self._final: list[dict[str, Any]] | None = None
        self._output: str | None = None

    @workflow.run
    async def run(self, spec: FrameworkInput) -> dict[str, Any]:
        self._spec = spec
        prompt = task_prompt(spec.scenario_name, spec.steps, spec.run_id)
        self._hooks = _Conversation([{"role": "user", "content": prompt}])
        tools = [
            activity_as_tool(
                fn,
                start_to_close_timeout=timedelta(seconds=_RUNTIME.start_to_close_s),
                heartbeat_timeout=timedelta(seconds=_RUNTIME.heartbeat_s),
                retry_policy=RETRY,
            )
            for fn in TOOL_ACTIVITIES.values()
        ]
        agent = Agent[RunDeps](
            name="durabench_rav",
            instructions=INSTRUCTIONS,
            model=_RUNTIME.scenario.llm.model,
            tools=tools,
        )
        result = await Runner.run(
            agent,
            input=prompt,
            context=RunDeps(spec.run_id),
            max_turns=spec.steps * (spec.max_attempts + 1) + 5,
            hooks=self._hooks,
            run_config=RunConfig(tracing_disabled=True),
        )
        self._final = chat_messages(result.to_input_list())
        self._output = str(result.final_output)
        return self._state(finished=True)

    def _state(self, *, finished: bool) -> dict[str, Any]:
        assert self._spec is not None
        messages = (
            self._final
            if self._final is not None
            else (self._hooks.messages if self._hooks is not None else [])
        )
        if not messages:
            return {"run_id": self._spec.run_id, "status": "running", "steps": []}
        state = fold_conversation(
            self._spec.policy(), messages, finished=finished, output=self._output
        )
        return state.to_dict()

    @workflow.query(name=STATE_QUERY)
    def state(self) -> dict[str, Any]:
        return self._state(finished=False)
