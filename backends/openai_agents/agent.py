"""The RAV workload's pieces for the OpenAI Agents SDK on Temporal
(`temporalio.openai_agents`, Temporal's integration): one Temporal activity per scenario
tool, made an agent tool with `activity_as_tool` as the integration's documentation says
for tools with I/O; the model provider the plugin's model activity uses (the SDK's
`OpenAIProvider` on the chat-completions API, pointed at the simulated provider through
the measured transport); and the conversion of the SDK's items to the chat shape the
workload reads.

The verify check is the tool's own: the activity returns the verdict as the tool output
the model reads (the Agents SDK has no retry exception for tools; a tool error would be
retried by Temporal as an activity failure, re-running the act), so a rejected act leads
the model to re-plan, or to repeat its decision for a retried act, as the scenario says.
Built in the worker process after `backends.framework.runtime.configure`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx2
from agents import RunContextWrapper
from openai import AsyncOpenAI
from temporalio import activity

from backends.framework.runtime import WorkerRuntime, current
from backends.framework.tool import perform, verdict_text
from backends.framework.transport import measured_client
from harness.services.conversation import Verdict

__all__ = ["Act", "RunDeps", "act_here", "chat_messages", "model_provider", "tool_activities"]

ACTIVITY_PREFIX = "durabench_tool_"


@dataclass
class RunDeps:
    """The run context every tool call gets a copy of: the run it belongs to."""

    run_id: str


# (run id, tool name, the call's arguments) -> the act's verdict
Act = Callable[[str, str, dict[str, Any]], Awaitable[Verdict]]


async def act_here(run_id: str, tool: str, arguments: dict[str, Any]) -> Verdict:
    """Act and verify in the tool activity, on the worker's phase context."""
    return await perform(current().context, run_id, tool, arguments)


def _activity(name: str, act: Act) -> Any:
    async def call(
        ctx: RunContextWrapper[RunDeps],
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
        run_id = ctx.context.run_id if isinstance(ctx.context, RunDeps) else ctx.context["run_id"]
        verdict = await act(run_id, name, arguments)
        return verdict_text(verdict)

    call.__name__ = name
    call.__qualname__ = name
    call.__doc__ = f"The {name} tool."
    return activity.defn(name=f"{ACTIVITY_PREFIX}{name}")(call)


def tool_activities(runtime: WorkerRuntime, act: Act = act_here) -> dict[str, Any]:
    """Tool name -> its activity function, for every tool of the scenario (acting through
    `act`; the raw floor, backends/openai_agents/floor.py, gives its own)."""
    return {name: _activity(name, act) for name in runtime.scenario.tools}


def model_provider(runtime: WorkerRuntime, http_client: httpx2.AsyncClient | None = None) -> Any:
    """The SDK's chat-completions provider on the simulated LLM (`http_client` default: the
    measured transport; the raw floor gives its own)."""
    from agents import OpenAIProvider

    client = AsyncOpenAI(
        base_url=runtime.llm_url,
        api_key="durabench",
        http_client=http_client or measured_client(),
        max_retries=0,  # the model activity's retries are the retries (the plugin's default)
    )
    return OpenAIProvider(openai_client=client, use_responses=False)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text") or "") for part in content if isinstance(part, Mapping))
    return "" if content is None else str(content)


def chat_messages(items: Iterable[Any]) -> list[dict[str, Any]]:
    """The SDK's input items (Responses-API shapes, as dicts or models) as chat messages."""
    chat: list[dict[str, Any]] = []
    for raw in items:
        item = raw.model_dump() if hasattr(raw, "model_dump") else dict(raw)
        kind, role = item.get("type"), item.get("role")
        if kind == "function_call":
            call = {
                "id": item.get("call_id"),
                "type": "function",
                "function": {"name": item.get("name"), "arguments": item.get("arguments")},
            }
            if chat and chat[-1]["role"] == "assistant" and not chat[-1]["tool_calls"]:
                chat[-1]["tool_calls"].append(call)
            else:
                chat.append({"role": "assistant", "content": "", "tool_calls": [call]})
        elif kind == "function_call_output":
            chat.append(
                {
                    "role": "tool",
                    "tool_call_id": item.get("call_id"),
                    "content": _text(item.get("output")),
                }
            )
        elif role == "assistant":
            chat.append(
                {"role": "assistant", "content": _text(item.get("content")), "tool_calls": []}
            )
        elif role in ("user", "system", "developer"):
            chat.append({"role": role, "content": _text(item.get("content"))})
    return chat
