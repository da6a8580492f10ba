"""The RAV workload as a Pydantic AI agent, the part every durable substrate shares
(`temporal_agent.py` and `dbos_workflow.py` attach their integration's capability).

One tool per scenario tool, each the workload's tool body (`backends.framework.tool`):
an act with the stable key of the plan position the call states, then the verify check
*in Pydantic AI's idiom*: a verdict the step policy answers with `retry_act` or
`replan` raises `ModelRetry`, so the framework sends the retry prompt back to the model
(which re-plans, or repeats the decision for a retried act); commit and abort are
ordinary tool results. Where the act and verify run is the substrate's: in the tool
itself (Temporal runs every tool call as an activity), or in a step the tool awaits
(DBOS runs function tools in workflow code, so the I/O is the integration's advice: a
`@DBOS.step`). The model is Pydantic AI's OpenAI chat model pointed at the simulated
provider, through the measured transport, with the SDK's own retries off (the
integrations' advice: the durable step or activity is the retry). The agent is built in
the worker process, from the runtime the worker configured.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx2
from openai import AsyncOpenAI
from pydantic_ai import Agent, FunctionToolset, ModelRetry, RunContext, Tool
from pydantic_ai.capabilities import AbstractCapability
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    RetryPromptPart,
    SystemPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

from backends.framework.runtime import WorkerRuntime, current
from backends.framework.tool import perform, verdict_text
from backends.framework.transport import measured_client
from harness.services.conversation import Verdict

__all__ = [
    "AGENT_NAME",
    "TOOLSET_ID",
    "Act",
    "RunDeps",
    "act_here",
    "build_agent",
    "chat_messages",
]

AGENT_NAME = "durabench_rav"
TOOLSET_ID = "durabench_tools"
INSTRUCTIONS = "You are a procurement agent. Call exactly one tool per step."


@dataclass
class RunDeps:
    """What every tool call needs besides its arguments: the run it belongs to."""

    run_id: str


# (run id, tool name, the call's arguments, its tool call id) -> the act's verdict
Act = Callable[[str, str, dict[str, Any], str], Awaitable[Verdict]]


async def act_here(run_id: str, tool: str, arguments: dict[str, Any], call_id: str) -> Verdict:
    """Act and verify in the tool call itself (where the substrate made it durable)."""
    return await perform(current().context, run_id, tool, arguments)


def _tool(name: str, act: Act) -> Tool[RunDeps]:
    async def call(
        ctx: RunContext[RunDeps],
        item: str,
        quantity: int,
        amount_cents: int,
        counterparty: str,
        step: int,
        attempt: int,
    ) -> str:
        arguments = {
            "item": item,
            "quantity": quantity,
            "amount_cents": amount_cents,
            "counterparty": counterparty,
            "step": step,
            "attempt": attempt,
        }
        verdict = await act(ctx.deps.run_id, name, arguments, ctx.tool_call_id or "")
        if verdict.move in ("retry_act", "replan"):
            raise ModelRetry(verdict_text(verdict))
        return verdict_text(verdict)

    call.__name__ = name
    return Tool(call, name=name, takes_ctx=True, description=f"The {name} tool.")


def build_agent(
    runtime: WorkerRuntime,
    capability: AbstractCapability[RunDeps],
    act: Act = act_here,
    http_client: httpx2.AsyncClient | None = None,
) -> Agent[RunDeps, str]:
    """The workload's agent, made durable by `capability`; tools act through `act`, model
    requests go through `http_client` (default: the measured transport; the raw floor,
    backends/pydantic_ai/floor.py, gives its own)."""
    scenario = runtime.scenario
    client = AsyncOpenAI(
        base_url=runtime.llm_url,
        api_key="durabench",
        http_client=http_client or measured_client(),
        max_retries=0,  # the durable step or activity retries (the integrations' advice)
    )
    model = OpenAIChatModel(scenario.llm.model, provider=OpenAIProvider(openai_client=client))
    toolset = FunctionToolset[RunDeps](
        [_tool(name, act) for name in scenario.tools],
        id=TOOLSET_ID,
        max_retries=scenario.verify.max_attempts,
    )
    return Agent(
        model,
        name=AGENT_NAME,
        instructions=INSTRUCTIONS,
        deps_type=RunDeps,
        output_type=str,
        toolsets=[toolset],
        capabilities=[capability],
    )


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        return "\n".join(str(c) for c in content if isinstance(c, str))
    return str(content)


def chat_messages(messages: Sequence[ModelMessage]) -> list[dict[str, Any]]:
    """Pydantic AI's message history in the OpenAI chat shape the workload reads."""
    chat: list[dict[str, Any]] = []
    for message in messages:
        if isinstance(message, ModelRequest):
            for part in message.parts:
                if isinstance(part, SystemPromptPart):
                    chat.append({"role": "system", "content": part.content})
                elif isinstance(part, UserPromptPart):
                    chat.append({"role": "user", "content": _text(part.content)})
                elif isinstance(part, ToolReturnPart):
                    chat.append(
                        {
                            "role": "tool",
                            "tool_call_id": part.tool_call_id,
                            "content": part.model_response_str(),
                        }
                    )
                elif isinstance(part, RetryPromptPart):
                    role = "tool" if part.tool_name else "user"
                    chat.append(
                        {
                            "role": role,
                            "tool_call_id": part.tool_call_id,
                            "content": part.model_response(),
                        }
                    )
        elif isinstance(message, ModelResponse):
            text = "".join(p.content for p in message.parts if isinstance(p, TextPart))
            calls = [
                {
                    "id": p.tool_call_id,
                    "type": "function",
                    "function": {"name": p.tool_name, "arguments": p.args_as_json_str()},
                }
                for p in message.parts
                if isinstance(p, ToolCallPart)
            ]
            chat.append({"role": "assistant", "content": text, "tool_calls": calls})
    return chat
