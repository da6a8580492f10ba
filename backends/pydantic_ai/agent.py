"""The RAV workload as a Pydantic AI agent, made durable with the `TemporalDurability`
capability (Pydantic AI's Temporal integration; the older `TemporalAgent` wrapper is
deprecated in favour of it).

One tool per scenario tool, each the workload's tool body (`backends.framework.tool`):
an act with the stable key of the plan position the call states, then the verify check
*in Pydantic AI's idiom*: a verdict the step policy answers with `retry_act` or
`replan` raises `ModelRetry`, so the framework sends the retry prompt back to the model
(which re-plans, or repeats the decision for a retried act); commit and abort are
ordinary tool results. The model is Pydantic AI's OpenAI chat model pointed at the
simulated provider, through the measured transport. The agent is built at import, in
the worker process, from the runtime the worker configured (Temporal needs it at the
top level of the workflow module).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from openai import AsyncOpenAI
from pydantic_ai import Agent, FunctionToolset, ModelRetry, RunContext, Tool
from pydantic_ai.durable_exec.temporal import TemporalDurability
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
from temporalio.common import RetryPolicy
from temporalio.workflow import ActivityConfig

from backends.framework.runtime import WorkerRuntime, current
from backends.framework.tool import perform, verdict_text
from backends.framework.transport import measured_client

__all__ = ["AGENT_NAME", "TOOLSET_ID", "RunDeps", "build_agent", "chat_messages"]

AGENT_NAME = "durabench_rav"
TOOLSET_ID = "durabench_tools"
INSTRUCTIONS = "You are a procurement agent. Call exactly one tool per step."
RETRY_INITIAL_S = 0.2
RETRY_MAX_S = 2.0


@dataclass
class RunDeps:
    """What every tool call needs besides its arguments: the run it belongs to."""

    run_id: str


def _tool(name: str) -> Tool[RunDeps]:
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
        verdict = await perform(current().context, ctx.deps.run_id, name, arguments)
        if verdict.move in ("retry_act", "replan"):
            raise ModelRetry(verdict_text(verdict))
        return verdict_text(verdict)

    call.__name__ = name
    return Tool(call, name=name, takes_ctx=True, description=f"The {name} tool.")


def build_agent(runtime: WorkerRuntime) -> Agent[RunDeps, str]:
    scenario = runtime.scenario
    client = AsyncOpenAI(
        base_url=runtime.llm_url,
        api_key="durabench",
        http_client=measured_client(),
        max_retries=0,  # Temporal's activity retries are the retries (the integration's advice)
    )
    model = OpenAIChatModel(scenario.llm.model, provider=OpenAIProvider(openai_client=client))
    retry = RetryPolicy(
        initial_interval=timedelta(seconds=RETRY_INITIAL_S),
        maximum_interval=timedelta(seconds=RETRY_MAX_S),
    )
    config = ActivityConfig(
        start_to_close_timeout=timedelta(seconds=runtime.start_to_close_s),
        heartbeat_timeout=timedelta(seconds=runtime.heartbeat_s),
        retry_policy=retry,
    )

    toolset = FunctionToolset[RunDeps](
        [_tool(name) for name in scenario.tools],
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
        capabilities=[TemporalDurability(activity_config=config)],
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
