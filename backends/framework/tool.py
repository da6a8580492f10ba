"""The workload's tool as a framework tool body: one act against the tool service with
the stable idempotency key of the plan position the call carries, the deterministic
verify check, and the step policy's move after it (`harness.steppolicy.settle`).

Each framework turns the verdict into its own idiom: a result the model reads (commit,
abort) or the framework's retry request (Pydantic AI's `ModelRetry`, an error string the
model is asked to correct) for `retry_act` and `replan`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness import agent
from harness.agent import AgentContext
from harness.services.conversation import Verdict, business_arguments, verdict_text
from harness.steppolicy import settle
from harness.workload import Decision, idempotency_key

__all__ = ["perform", "verdict_text"]


async def perform(
    ctx: AgentContext, run_id: str, tool: str, arguments: Mapping[str, Any]
) -> Verdict:
    """Act and verify once for the call's (step, attempt); the verdict names the next move."""
    step, attempt = int(arguments["step"]), int(arguments["attempt"])
    decision = Decision(tool, business_arguments(arguments), "")
    key = idempotency_key(run_id, step, attempt)
    output = await agent.act(ctx, run_id, step, attempt, decision, key)
    verified = agent.verify(ctx, run_id, step, attempt, decision, output)
    move = settle(ctx.scenario.verify, step, attempt, decision, output, (), verified).move
    return Verdict(step, attempt, verified, move, output)
