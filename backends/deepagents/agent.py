"""The RAV workload as a Deep Agents agent (`deepagents.create_deep_agent`): LangChain's
OpenAI chat model on the chat-completions API, pointed at the simulated provider through
the measured transport, one LangChain tool per scenario tool, and the LangGraph
checkpointer the worker opened.

The verify check in LangChain's idiom: a verdict the step policy answers with
`retry_act` or `replan` raises `ToolException`, which the tool turns into an error
`ToolMessage` the model reads (and so re-plans, or repeats its decision for a retried
act); commit and abort are ordinary tool results. The run id comes from the run's config
(`configurable.run_id`), never from the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.messages import BaseMessage, convert_to_openai_messages
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import StructuredTool, ToolException
from langgraph.checkpoint.base import BaseCheckpointSaver
from pydantic import BaseModel

from backends.framework.runtime import WorkerRuntime, current
from backends.framework.tool import perform, verdict_text

__all__ = ["INSTRUCTIONS", "build_agent", "chat_messages"]

INSTRUCTIONS = "You are a procurement agent. Call exactly one tool per step."


class ToolArguments(BaseModel):
    item: str
    quantity: int
    amount_cents: int
    counterparty: str
    step: int
    attempt: int


def _tool(name: str) -> StructuredTool:
    async def call(
        item: str,
        quantity: int,
        amount_cents: int,
        counterparty: str,
        step: int,
        attempt: int,
        config: RunnableConfig,
    ) -> str:
        arguments = {
            "item": item,
            "quantity": quantity,
            "amount_cents": amount_cents,
            "counterparty": counterparty,
            "step": step,
            "attempt": attempt,
        }
        run_id = str(config["configurable"]["run_id"])
        verdict = await perform(current().context, run_id, name, arguments)
        if verdict.move in ("retry_act", "replan"):
            raise ToolException(verdict_text(verdict))
        return verdict_text(verdict)

    return StructuredTool.from_function(
        coroutine=call,
        name=name,
        description=f"The {name} tool.",
        args_schema=ToolArguments,
        handle_tool_error=True,
    )


def build_agent(runtime: WorkerRuntime, checkpointer: BaseCheckpointSaver[Any]) -> Any:
    from deepagents import create_deep_agent
    from langchain_openai import ChatOpenAI

    from backends.framework.transport import measured_client

    model = ChatOpenAI(
        model=runtime.scenario.llm.model,
        base_url=runtime.llm_url,
        api_key="durabench",
        use_responses_api=False,
        http_async_client=measured_client(),
        max_retries=8,  # a rate-limited or failing provider is retried by the client
    )
    return create_deep_agent(
        model=model,
        tools=[_tool(name) for name in runtime.scenario.tools],
        system_prompt=INSTRUCTIONS,
        checkpointer=checkpointer,
    )


def chat_messages(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """LangChain messages in the OpenAI chat shape the workload reads."""
    converted = convert_to_openai_messages(list(messages))
    return converted if isinstance(converted, list) else [converted]
