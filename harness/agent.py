"""The Reason-Act-Verify phases, written once for every backend.

Backends compose these in their own idiom (a plain loop, a workflow, a graph, an
event-sourced state machine) and must never re-implement them: that is what
makes the workload identical everywhere. Each phase records one measurement row.

A backend must NOT call the LLM or the tool service any other way, and must pass
the act phase the idempotency key it can keep stable across its own retries.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from harness.errors import DurabenchError
from harness.mcptools import McpToolClient, SessionLost
from harness.measure import PhaseRow, Recorder
from harness.recorded import InvalidAnswer, decision_of
from harness.scenario import Scenario
from harness.services.common import SERVICE_TIME_HEADER
from harness.services.llm import MARKER
from harness.services.tools_mcp import CALL_META, MCP_PATH
from harness.steppolicy import StepOutcome, plan_step, run_step_async
from harness.workload import Decision, idempotency_key, verify_output

__all__ = [
    "AgentContext",
    "PhaseError",
    "StepOutcome",
    "act",
    "api_key",
    "drive_step",
    "reason",
    "verify",
]

MAX_TRANSIENT_RETRIES = 8
BACKOFF_BASE_S = 0.05
BACKOFF_CAP_S = 2.0
RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class PhaseError(DurabenchError):
    """A phase gave up after its transient retries (the service stayed unreachable)."""


@dataclass
class AgentContext:
    """What a worker needs to run phases: the scenario, service URLs, one HTTP session."""

    scenario: Scenario
    http: aiohttp.ClientSession
    llm_url: str
    tools_url: str
    recorder: Recorder
    api_key: str | None = None
    _tool_specs: list[dict[str, Any]] = field(default_factory=list)
    _mcp: McpToolClient | None = None

    def mcp_tools(self) -> McpToolClient:
        """This worker's MCP session with the tool service (opened on first use)."""
        if self._mcp is None:
            self._mcp = McpToolClient(f"{self.tools_url}{MCP_PATH}")
        return self._mcp

    def tool_specs(self) -> list[dict[str, Any]]:
        """OpenAI `tools` declarations, so a real provider can answer too."""
        if not self._tool_specs:
            self._tool_specs = [
                {
                    "type": "function",
                    "function": {
                        "name": name,
                        "parameters": {
                            "type": "object",
                            "properties": {
                                "item": {"type": "string"},
                                "quantity": {"type": "integer"},
                                "amount_cents": {"type": "integer"},
                                "counterparty": {"type": "string"},
                            },
                        },
                    },
                }
                for name in self.scenario.tools
            ]
        return self._tool_specs


def api_key(scenario: Scenario) -> str | None:
    """The provider key for a real LLM endpoint, from the environment only (never stored)."""
    if scenario.llm.base_url is None:
        return None
    return os.environ.get(scenario.llm.api_key_env)


def _retry_delay(response: aiohttp.ClientResponse | None, retry: int) -> float:
    if response is not None and "Retry-After" in response.headers:
        try:
            return min(float(response.headers["Retry-After"]), BACKOFF_CAP_S * 5)
        except ValueError:
            pass
    return float(min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**retry))


async def _post(ctx: AgentContext, url: str, body: dict[str, Any], row: PhaseRow) -> dict[str, Any]:
    """POST with transient retries; service time and retries go into the row."""
    headers = {"Authorization": f"Bearer {ctx.api_key}"} if ctx.api_key else {}
    for retry in range(MAX_TRANSIENT_RETRIES + 1):
        row.retries = retry
        try:
            async with ctx.http.post(url, json=body, headers=headers) as response:
                row.service_ms += float(response.headers.get(SERVICE_TIME_HEADER, 0.0))
                if response.status == 200:
                    data: dict[str, Any] = await response.json()
                    return data
                if response.status not in RETRYABLE_STATUS:
                    row.outcome = "fail"
                    raise PhaseError(f"{url} answered {response.status}: {await response.text()}")
                delay = _retry_delay(response, retry)
        except (TimeoutError, aiohttp.ClientError) as exc:
            row.error = f"{type(exc).__name__}: {exc}"[:500]
            delay = _retry_delay(None, retry)
        if retry < MAX_TRANSIENT_RETRIES:
            await asyncio.sleep(delay)
    raise PhaseError(f"{url}: gave up after {MAX_TRANSIENT_RETRIES} retries ({row.error})")


async def _call_mcp(
    ctx: AgentContext, tool: str, body: dict[str, Any], row: PhaseRow
) -> dict[str, Any]:
    """`tools/call` through the worker's MCP session, with the same transient retries as
    `_post`; the key and the run's coordinates travel in `_meta[CALL_META]`. A lost
    session is reopened and the call retried with the same key."""
    client = ctx.mcp_tools()
    meta = {CALL_META: {k: v for k, v in body.items() if k != "arguments"}}
    for retry in range(MAX_TRANSIENT_RETRIES + 1):
        row.retries = retry
        delay = _retry_delay(None, retry)
        try:
            answer = await client.call(tool, body["arguments"], meta)
        except SessionLost as exc:
            row.error = str(exc)[:500]
        else:
            row.service_ms += answer.service_ms
            if answer.status == 200:
                return answer.body
            if answer.status not in RETRYABLE_STATUS:
                row.outcome = "fail"
                raise PhaseError(f"MCP tool {tool} answered {answer.status}: {answer.body}")
            if answer.retry_after_s is not None:
                delay = min(answer.retry_after_s, BACKOFF_CAP_S * 5)
        if retry < MAX_TRANSIENT_RETRIES:
            await asyncio.sleep(delay)
    raise PhaseError(
        f"MCP tool {tool}: gave up after {MAX_TRANSIENT_RETRIES} retries ({row.error})"
    )


async def reason(ctx: AgentContext, run_id: str, step: int, attempt: int) -> Decision:
    """One chat-completion request; the answer names a tool, its arguments, a thought."""
    prompt = {
        MARKER: {"run_id": run_id, "step": step, "attempt": attempt},
        "task": f"{ctx.scenario.name}: choose the tool for step {step}",
    }
    body = {
        "model": ctx.scenario.llm.model,
        "messages": [
            {"role": "system", "content": "You are a procurement agent. Call exactly one tool."},
            {"role": "user", "content": json.dumps(prompt)},
        ],
        "tools": ctx.tool_specs(),
        "tool_choice": "required",
    }
    with ctx.recorder.phase(run_id, step, attempt, "reason") as row:
        data = await _post(ctx, f"{ctx.llm_url}/chat/completions", body, row)
        usage = data.get("usage") or {}
        row.extra = {
            "tokens_in": usage.get("prompt_tokens"),
            "tokens_out": usage.get("completion_tokens"),
        }
        try:
            return decision_of(ctx.scenario, data)  # as the oracle reads a recorded answer
        except InvalidAnswer as exc:
            row.outcome = "fail"
            raise PhaseError(f"{run_id} step {step} attempt {attempt}: {exc}") from None


async def act(
    ctx: AgentContext, run_id: str, step: int, attempt: int, decision: Decision, key: str
) -> dict[str, Any]:
    """One tool execution with the backend's idempotency key, over the scenario's tool
    transport (plain HTTP, or MCP: `tools: {transport: mcp}`); returns the tool output."""
    body = {
        "run_id": run_id,
        "step": step,
        "attempt": attempt,
        "idempotency_key": key,
        "arguments": decision.arguments,
    }
    with ctx.recorder.phase(run_id, step, attempt, "act") as row:
        if ctx.scenario.tool_transport.transport == "mcp":
            data = await _call_mcp(ctx, decision.tool, body, row)
        else:
            data = await _post(ctx, f"{ctx.tools_url}/tools/{decision.tool}", body, row)
        row.extra = {"applied": bool(data.get("applied"))}
        output: dict[str, Any] = data["output"]
        return output


def verify(
    ctx: AgentContext,
    run_id: str,
    step: int,
    attempt: int,
    decision: Decision,
    output: dict[str, Any],
) -> bool:
    """The deterministic check of the tool output; a rejection is an `ok` row with verdict false."""
    with ctx.recorder.phase(run_id, step, attempt, "verify") as row:
        verdict = verify_output(decision, output)
        row.extra = {"verified": verdict}
        return verdict


KeyFn = Callable[[str, int, int], str]


@dataclass(frozen=True)
class _StepPhases:
    """The step policy's requests answered by the real phases, for one run and step."""

    ctx: AgentContext
    run_id: str
    step: int
    key: KeyFn

    async def reason(self, attempt: int) -> Decision:
        return await reason(self.ctx, self.run_id, self.step, attempt)

    async def act(self, attempt: int, decision: Decision) -> dict[str, Any]:
        key = self.key(self.run_id, self.step, attempt)
        return await act(self.ctx, self.run_id, self.step, attempt, decision, key)

    async def verify(self, attempt: int, decision: Decision, output: dict[str, Any]) -> bool:
        return verify(self.ctx, self.run_id, self.step, attempt, decision, output)


async def drive_step(
    ctx: AgentContext, run_id: str, step: int, key: KeyFn = idempotency_key
) -> StepOutcome:
    """The plain-loop composition: reason, then act and verify until the step policy
    (`harness.steppolicy`) commits or aborts. `key(run, step, attempt)` is the act's
    idempotency key. The caller persists the record (the commit phase)."""
    phases = _StepPhases(ctx, run_id, step, key)
    return await run_step_async(plan_step(ctx.scenario.verify, step), phases)
