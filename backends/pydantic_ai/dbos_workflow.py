"""The Pydantic AI agent run as a DBOS workflow, the way the integration's documentation
writes it: the agent carries the `DBOSDurability` capability (the deprecated `DBOSAgent`
wrapper's successor), and `agent.run()` is awaited inside our own `@DBOS.workflow`, so
each model request is a DBOS step (`durabench_rav__model.request`). Function tools are
not wrapped by the integration (they run in workflow code); the documentation's advice
for a tool that does I/O is a `@DBOS.step`, so the act and the verify check are one step
(`TOOL_STEP`) the tool awaits, recording the verdict; raising `ModelRetry` on it stays in
workflow code, where a recovered workflow raises it again from the recorded verdict.

A recovered workflow runs again from the start: every step with a recorded output
returns it, so the model is not asked again and the tool is not called again for what
is recorded; the step in flight when the worker died runs again (at-least-once), with the
arguments of the recorded model answer, so the same idempotency key.

Imported only by the worker (`register` builds the agent, before DBOS launches, from
the runtime the worker configured).
"""

from __future__ import annotations

from typing import Any

from dbos import DBOS
from pydantic_ai import Agent
from pydantic_ai.durable_exec.dbos import DBOSDurability, StepConfig

from backends.dbos import crashpoints
from backends.dbos.settings import RETRY_SETTINGS
from backends.framework.runtime import WorkerRuntime, current
from backends.framework.tool import perform
from backends.pydantic_ai.agent import RunDeps, build_agent, chat_messages
from backends.pydantic_ai.dbos_names import TOOL_STEP, WORKFLOW_NAME, verdict_of
from harness.errors import BackendError
from harness.scenario import VerifyPolicy
from harness.services.conversation import Verdict, fold_conversation, task_prompt

__all__ = ["agent_workflow", "register", "tool_step"]

_AGENT: list[Agent[RunDeps, str]] = []


@DBOS.step(name=TOOL_STEP, **RETRY_SETTINGS)
async def tool_step(
    run_id: str, tool: str, arguments: dict[str, Any], call_id: str
) -> dict[str, Any]:
    """One act and its verify: the recorded output is the verdict and the call it answers."""
    verdict = await perform(current().context, run_id, tool, arguments)
    crashpoints.note_output(DBOS.workflow_id or "", "act", run_id, verdict.step)
    return {"call_id": call_id, "tool": tool, **verdict.to_dict()}


async def _act_in_step(run_id: str, tool: str, arguments: dict[str, Any], call_id: str) -> Verdict:
    return verdict_of(await tool_step(run_id, tool, arguments, call_id))


def register(runtime: WorkerRuntime) -> None:
    """Build the agent (its capability registers the model steps with DBOS)."""
    config = StepConfig(**RETRY_SETTINGS)  # type: ignore[typeddict-item]
    capability = DBOSDurability[RunDeps](model_step_config=config)
    _AGENT[:] = [build_agent(runtime, capability, _act_in_step)]


def _agent() -> Agent[RunDeps, str]:
    if not _AGENT:
        raise BackendError("pydantic-ai:dbos: a workflow ran before the worker built the agent")
    return _AGENT[0]


@DBOS.workflow(name=WORKFLOW_NAME)
async def agent_workflow(spec: dict[str, Any]) -> dict[str, Any]:
    """One agent run; returns its final state (RunState as a dict)."""
    run_id = str(spec["run_id"])
    current().context.recorder.crash_point(crashpoints.AFTER_DEQUEUE, run_id, 0)
    prompt = task_prompt(str(spec["scenario_name"]), int(spec["steps"]), run_id)
    result = await _agent().run(prompt, deps=RunDeps(run_id))
    policy = VerifyPolicy.model_validate(
        {"on_failure": spec["on_failure"], "max_attempts": spec["max_attempts"]}
    )
    messages = chat_messages(result.all_messages())
    return fold_conversation(policy, messages, finished=True, output=result.output).to_dict()
