"""The RAV agent as a Restate workflow: one workflow invocation per agent run.

Each phase is a durable step, `ctx.run`, around the shared phase function of
`harness.agent` (reason, act with the idempotency key of the logical attempt, verify);
the step policy (`harness.steppolicy`) decides what follows each verdict. The SDK
hands a `ctx.run` result to the handler only once the server acknowledged its journal
entry, so once verify's result is back every field of the step record is durable (a
pure function of journaled results): the commit row then spans from verify's action
ending to that acknowledgement, and the step is written to the workflow's K/V state
(one key per step) for `inspect` to read through the admin SQL API.

A retried attempt of the invocation (a killed worker, a cut link) replays the handler
from the journal: `ctx.run`s whose entries are there return their recorded results
without running, so the handler's plain code runs again and must not write a
measurement row for work it did not do (the commit row is written only by the attempt
that ran the step's last verify). The approval is the workflow's durable promise,
raced against a durable timer of the scenario's TTL.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import timedelta
from typing import Any

import restate
from restate import RunOptions, WorkflowContext, WorkflowSharedContext

from backends.restate.crashpoints import AFTER_REASON_EFFECT, AFTER_RUN_EFFECT, AFTER_STATE_WRITE
from backends.restate.messages import (
    APPROVAL_PROMISE,
    APPROVE_HANDLER,
    RUN_HANDLER,
    RUN_KEY,
    AgentInput,
    ServicePolicy,
    step_key,
)
from harness import agent
from harness.agent import AgentContext
from harness.scenario import VerifyPolicy
from harness.state import RunStatus, StepRecord
from harness.steppolicy import plan_step, run_step_async
from harness.workload import Decision, final_answer, idempotency_key

__all__ = ["AgentRun", "build_workflow", "retry_policy_of"]

DICT = RunOptions[dict[str, Any]](type_hint=dict)
FLAG = RunOptions[bool](type_hint=bool)


def retry_policy_of(policy: ServicePolicy) -> restate.InvocationRetryPolicy:
    return restate.InvocationRetryPolicy(
        initial_interval=timedelta(seconds=policy.retry_initial_s),
        exponentiation_factor=policy.retry_factor,
        max_interval=timedelta(seconds=policy.retry_max_s),
        max_attempts=policy.retry_max_attempts,
        on_max_attempts="kill",
    )


def _seconds(value: float | None) -> timedelta | None:
    return None if value is None else timedelta(seconds=value)


class _Phases:
    """The step policy's requests answered by durable steps, for one run and step."""

    def __init__(self, run: AgentRun, step: int) -> None:
        self.run, self.step = run, step
        self.verified_at: float | None = None  # set only when verify ran in this attempt

    async def reason(self, attempt: int) -> Decision:
        ctx, run_id, step = self.run.agent, self.run.spec.run_id, self.step

        async def call() -> dict[str, Any]:
            decision = await agent.reason(ctx, run_id, step, attempt)
            ctx.recorder.crash_point(AFTER_REASON_EFFECT, run_id, step)
            return dataclasses.asdict(decision)

        data = await self.run.rctx.run_typed(f"reason {step}.{attempt}", call, DICT)
        return Decision(**data)

    async def act(self, attempt: int, decision: Decision) -> dict[str, Any]:
        ctx, run_id, step = self.run.agent, self.run.spec.run_id, self.step
        key = idempotency_key(run_id, step, attempt)  # the same on every retry of this act

        async def call() -> dict[str, Any]:
            output = await agent.act(ctx, run_id, step, attempt, decision, key)
            ctx.recorder.crash_point(AFTER_RUN_EFFECT, run_id, step)
            return output

        output = await self.run.rctx.run_typed(f"act {step}.{attempt}", call, DICT)
        ctx.recorder.crash_point("after_act_recorded", run_id, step)  # acknowledged
        return output

    async def verify(self, attempt: int, decision: Decision, output: dict[str, Any]) -> bool:
        ctx, run_id, step = self.run.agent, self.run.spec.run_id, self.step
        self.verified_at = None

        async def call() -> bool:
            verdict = agent.verify(ctx, run_id, step, attempt, decision, output)
            self.verified_at = time.time()
            return verdict

        return await self.run.rctx.run_typed(f"verify {step}.{attempt}", call, FLAG)


class AgentRun:
    """One attempt of one run's invocation: the handler's state while it executes."""

    def __init__(self, rctx: WorkflowContext, ctx: AgentContext, spec: AgentInput) -> None:
        self.rctx, self.agent, self.spec = rctx, ctx, spec
        self.status: RunStatus = "pending"
        self.outputs: list[dict[str, Any]] = []
        self.answer: str | None = None
        self.last_attempts = 1

    def _write_run(self) -> None:
        self.rctx.set(
            RUN_KEY,
            {"run_id": self.spec.run_id, "status": self.status, "final_answer": self.answer},
        )

    def _result(self) -> dict[str, Any]:
        return {"run_id": self.spec.run_id, "status": self.status, "steps": len(self.outputs)}

    async def execute(self) -> dict[str, Any]:
        spec = self.spec
        policy = VerifyPolicy.model_validate(
            {"on_failure": spec.on_failure, "max_attempts": spec.max_attempts}
        )
        self.status = "running"
        self._write_run()
        for step in range(spec.steps):
            phases = _Phases(self, step)
            outcome = await run_step_async(plan_step(policy, step), phases)
            self._commit(outcome.record, phases.verified_at)
            if outcome.move == "abort":
                self.status = "aborted"
                self._write_run()
                return self._result()
            if spec.approval_after_step == step and not await self._wait_approval(step):
                self.status = "expired"
                self._write_run()
                return self._result()
        self.answer = final_answer(spec.run_id, self.outputs)
        self.status = "completed"
        self._write_run()
        return self._result()

    def _commit(self, record: StepRecord, verified_at: float | None) -> None:
        """The step's last result is acknowledged: write the commit row (only the attempt
        that ran that verify: a replay did not do the work) and the step's state."""
        data = record.to_dict()
        self.outputs.append(record.output)
        self.last_attempts = record.attempts
        recorder, run_id = self.agent.recorder, self.spec.run_id
        if verified_at is not None:
            with recorder.phase(run_id, record.index, record.attempts, "commit") as row:
                row.start = min(row.start, verified_at)
        self.rctx.set(step_key(record.index), data)
        recorder.crash_point(AFTER_STATE_WRITE, run_id, record.index)

    async def _wait_approval(self, step: int) -> bool:
        """Wait for the approval promise on a durable timer; False when the TTL ran out."""
        self.status = "waiting_approval"
        self._write_run()
        began = await self.rctx.time()
        ttl = timedelta(seconds=self.spec.approval_ttl_s or 0.0)
        promise = self.rctx.promise(APPROVAL_PROMISE, type_hint=bool)
        match await restate.select(approved=promise.value(), expired=self.rctx.sleep(ttl)):
            case ["approved", _]:
                approved = True
            case _:
                approved = False
        attempts = self.last_attempts  # the row belongs to the step the wait follows
        recorder, run_id = self.agent.recorder, self.spec.run_id

        async def note() -> bool:
            with recorder.phase(run_id, step, attempts, "approval") as row:
                row.start = min(row.start, began)
                if not approved:
                    row.outcome = "fail"
            return approved

        await self.rctx.run_typed(f"approval {step}", note, FLAG)
        if approved:
            self.status = "running"
            self._write_run()
        return approved


def build_workflow(name: str, ctx: AgentContext, policy: ServicePolicy) -> restate.Workflow:
    """The agent workflow called `name`, its phases bound to this worker's context."""
    workflow = restate.Workflow(
        name,
        description="durabench RAV agent: one invocation per agent run",
        invocation_retry_policy=retry_policy_of(policy),
        inactivity_timeout=_seconds(policy.inactivity_timeout_s),
        abort_timeout=_seconds(policy.abort_timeout_s),
    )

    @workflow.main(name=RUN_HANDLER)
    async def run(rctx: WorkflowContext, spec: dict[str, Any]) -> dict[str, Any]:
        return await AgentRun(rctx, ctx, AgentInput.from_dict(spec)).execute()

    @workflow.handler(name=APPROVE_HANDLER)
    async def approve(rctx: WorkflowSharedContext) -> None:
        promise = rctx.promise(APPROVAL_PROMISE, type_hint=bool)
        if await promise.peek() is None:  # a second approval is a no-op, not a failure
            await promise.resolve(True)

    return workflow
