"""The raw floor's agent and workflow (backends/pydantic_ai/floor.py drives them): the
adapter's agent (`build_temporal_agent`: the same model, tools, instructions, toolset,
retries and activity settings) with `TemporalDurability`, awaited once per run with
`agent.run` in a `PydanticAIWorkflow`, as the integration's documentation writes it.
Its tools act and verify plainly, its model client only notes its requests
(`backends.framework.floor`).

Imported only by the floor, after `backends.framework.runtime.configure` (the agent is
built at import, as Temporal needs it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic_ai.durable_exec.temporal import PydanticAIWorkflow
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from backends.framework.floor import act_plainly, noting_client
    from backends.framework.runtime import current
    from backends.pydantic_ai.agent import RunDeps
    from backends.pydantic_ai.temporal_agent import build_temporal_agent
    from harness.services.conversation import Verdict, task_prompt

__all__ = ["AGENT", "WORKFLOW", "FloorInput", "PydanticAIFloorWorkflow"]

WORKFLOW = "durabench-floor-pydantic-ai"


async def _act(run_id: str, tool: str, arguments: dict[str, Any], call_id: str) -> Verdict:
    return await act_plainly(run_id, tool, arguments)


AGENT = build_temporal_agent(current(), _act, noting_client())


@dataclass(frozen=True)
class FloorInput:
    run_id: str
    scenario_name: str
    steps: int


@workflow.defn(name=WORKFLOW)
class PydanticAIFloorWorkflow(PydanticAIWorkflow):
    __pydantic_ai_agents__ = (AGENT,)

    @workflow.run
    async def run(self, spec: FloorInput) -> str:
        prompt = task_prompt(spec.scenario_name, spec.steps, spec.run_id)
        result = await AGENT.run(prompt, deps=RunDeps(spec.run_id))
        return result.output
