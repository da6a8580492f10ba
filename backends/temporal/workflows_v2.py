"""Code version v2 of the agent workflow, in the two ways a team might deploy it.

v2 runs verify as a *local* activity (it is a pure check; a local activity saves
a server round trip per attempt). That changes the command sequence: where v1
scheduled a `durabench.verify` activity, v2 records a local-activity marker.

- `AgentWorkflowV2Unpatched` just changes the code. Replaying a v1 history with it
  raises a non-determinism error: a mid-run deploy of it wedges every open run.
- `AgentWorkflowV2Patched` guards the change with `workflow.patched`, so runs that
  started on v1 keep the v1 commands and new runs take the new path.

Both register under the same workflow name as v1: that is what a deploy does.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from backends.temporal.messages import (
        APPROVE_SIGNAL,
        STATE_QUERY,
        VERIFY,
        VERSION_QUERY,
        WORKFLOW_NAME,
        AgentInput,
        VerifyInput,
        VerifyResult,
    )
    from backends.temporal.workflows import AgentLoop, retry_policy_of
    from harness.workload import Decision

__all__ = ["PATCH_ID", "AgentWorkflowV2Patched", "AgentWorkflowV2Unpatched"]

PATCH_ID = "verify-as-local-activity"


async def _verify_locally(
    spec: AgentInput, step: int, attempt: int, decision: Decision, output: dict[str, Any]
) -> VerifyResult:
    result: VerifyResult = await workflow.execute_local_activity(
        VERIFY,
        VerifyInput(spec.run_id, step, attempt, decision.tool, decision.arguments, output),
        result_type=VerifyResult,
        start_to_close_timeout=timedelta(seconds=spec.policy.local_timeout_s),
        retry_policy=retry_policy_of(spec),
    )
    return result


@workflow.defn(name=WORKFLOW_NAME)
class AgentWorkflowV2Unpatched(AgentLoop):
    """v2 deployed carelessly: the new command sequence without a patch."""

    VERSION = "v2-unpatched"

    async def _verify(
        self, spec: AgentInput, step: int, attempt: int, decision: Decision, output: dict[str, Any]
    ) -> VerifyResult:
        return await _verify_locally(spec, step, attempt, decision, output)

    @workflow.run
    async def run(self, spec: AgentInput) -> dict[str, Any]:
        return await self.run_agent(spec)

    @workflow.query(name=STATE_QUERY)
    def state(self) -> dict[str, Any]:
        return self.snapshot()

    @workflow.query(name=VERSION_QUERY)
    def version(self) -> str:
        return self.VERSION

    @workflow.signal(name=APPROVE_SIGNAL)
    def approve(self) -> None:
        self.mark_approved()


@workflow.defn(name=WORKFLOW_NAME)
class AgentWorkflowV2Patched(AgentLoop):
    """v2 deployed correctly: `workflow.patched` keeps v1 histories on the v1 path."""

    VERSION = "v2-patched"

    async def _verify(
        self, spec: AgentInput, step: int, attempt: int, decision: Decision, output: dict[str, Any]
    ) -> VerifyResult:
        if workflow.patched(PATCH_ID):
            return await _verify_locally(spec, step, attempt, decision, output)
        return await super()._verify(spec, step, attempt, decision, output)

    @workflow.run
    async def run(self, spec: AgentInput) -> dict[str, Any]:
        return await self.run_agent(spec)

    @workflow.query(name=STATE_QUERY)
    def state(self) -> dict[str, Any]:
        return self.snapshot()

    @workflow.query(name=VERSION_QUERY)
    def version(self) -> str:
        return self.VERSION

    @workflow.signal(name=APPROVE_SIGNAL)
    def approve(self) -> None:
        self.mark_approved()
