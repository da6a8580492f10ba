"""The raw floor's agent and workflow (backends/openai_agents/floor.py drives them), as
Temporal's integration documents it: the agent built and `Runner.run` awaited inside
the workflow, the plugin running each model call as an activity, the adapter's tool
activities (`tool_activities`: the same names, arguments and verdict text) made agent
tools with `activity_as_tool`, with the adapter's timeouts and retries. The tools act
and verify plainly (`backends.framework.floor`); no run hooks, no query.

Imported only by the floor, after `backends.framework.runtime.configure`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from agents import Agent, RunConfig, Runner
    from temporalio.openai_agents.workflow import activity_as_tool

    from backends.framework.floor import act_plainly
    from backends.framework.runtime import current
    from backends.openai_agents.agent import RunDeps, tool_activities
    from backends.openai_agents.workflow import INSTRUCTIONS, RETRY
    from harness.services.conversation import task_prompt

__all__ = ["TOOL_ACTIVITIES", "WORKFLOW", "FloorInput", "OpenAIAgentsFloorWorkflow"]

WORKFLOW = "durabench-floor-openai-agents"
TOOL_ACTIVITIES = tool_activities(current(), act_plainly)
_RUNTIME = current()


@dataclass(frozen=True)
class FloorInput:
    run_id: str
    scenario_name: str
    steps: int
    max_attempts: int


@workflow.defn(name=WORKFLOW)
class OpenAIAgentsFloorWorkflow:
    @workflow.run
    async def run(self, spec: FloorInput) -> str:
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
            input=task_prompt(spec.scenario_name, spec.steps, spec.run_id),
            context=RunDeps(spec.run_id),
            max_turns=spec.steps * (spec.max_attempts + 1) + 5,
            run_config=RunConfig(tracing_disabled=True),
        )
        return str(result.final_output)
