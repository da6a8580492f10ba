"""The RAV agent as a Temporal workflow (code version v1).

The workflow holds the run's state and composes the phases as activities:
reason, act and verify run on any worker; each becomes durable when its result
is recorded in the event history. Once the last result of a step is in the
history, every field of the step record is durable (the record is a pure
function of recorded results). The commit is then carried by the next thing the
workflow schedules anyway: the next step's reason activity takes it as input
(`PhaseInput.committed`, recorded in the history with the scheduled event) and
writes the commit measurement row before its LLM call. Only when no activity
follows (the last step, an abort, an approval wait) does a `commit` local activity
write it. The row ends at `workflow.now()` of the task that saw the step's last
result recorded, as the raw floor's step does, so the measurement costs Temporal
no extra round trip and means exactly "acknowledged as durable".

Workflow code must be deterministic: no I/O, no clocks but `workflow.now()`.
The pure workload functions are passed through the sandbox.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    # `import a.b as b`, not `from a import b`: only this form hands the sandboxed
    # workflow the worker's own module (the one the worker armed), not a fresh copy
    import backends.temporal.crashpoints as crashpoints
    from backends.temporal.messages import (
        ACT,
        APPROVAL,
        APPROVE_SIGNAL,
        COMMIT,
        REASON,
        STATE_QUERY,
        VERIFY,
        VERSION_QUERY,
        WORKFLOW_NAME,
        ActInput,
        AgentInput,
        ApprovalNote,
        CommitAck,
        CommitInput,
        PhaseInput,
        VerifyInput,
        VerifyResult,
    )
    from harness.scenario import VerifyPolicy
    from harness.state import RunStatus
    from harness.steppolicy import plan_step, run_step_async
    from harness.workload import Decision, final_answer, idempotency_key

__all__ = ["AgentLoop", "AgentWorkflow", "retry_policy_of"]


def retry_policy_of(spec: AgentInput) -> RetryPolicy:
    policy = spec.policy
    return RetryPolicy(
        initial_interval=timedelta(seconds=policy.retry_initial_s),
        backoff_coefficient=policy.retry_backoff,
        maximum_interval=timedelta(seconds=policy.retry_max_interval_s),
        maximum_attempts=policy.retry_max_attempts,
    )


class _ActivityPhases:
    """The step policy's requests answered by the workflow's activities (a code version
    may override a phase); keeps what the commit row needs."""

    def __init__(self, loop: AgentLoop, spec: AgentInput, step: int) -> None:
        self.loop, self.spec, self.step = loop, spec, step
        self.reason_attempt = 1  # the attempt whose decision the step keeps
        self.verified_at = 0.0  # when the last verify finished

    async def reason(self, attempt: int) -> Decision:
        self.reason_attempt = attempt
        committed, self.loop._pending_commit = self.loop._pending_commit, None
        return await self.loop._reason(self.spec, self.step, attempt, committed)

    async def act(self, attempt: int, decision: Decision) -> dict[str, Any]:
        return await self.loop._act(self.spec, self.step, attempt, decision)

    async def verify(self, attempt: int, decision: Decision, output: dict[str, Any]) -> bool:
        result = await self.loop._verify(self.spec, self.step, attempt, decision, output)
        self.verified_at = result.finished_at
        return result.verified


class AgentLoop:
    """The workflow logic, shared by every code version; subclasses add the Temporal
    decorators (the SDK wants them on the registered class) and may override a phase."""

    VERSION = "v1"

    def __init__(self) -> None:
        self._run_id = ""
        self._status: RunStatus = "pending"
        self._steps: list[dict[str, Any]] = []
        self._answer: str | None = None
        self._approved = False
        self._history_bytes = 0
        self._pending_commit: CommitInput | None = None  # carried by the next reason

    # -- the run --------------------------------------------------------------------

    async def run_agent(self, spec: AgentInput) -> dict[str, Any]:
        self._run_id = spec.run_id
        self._status = "running"
        policy = VerifyPolicy.model_validate(
            {"on_failure": spec.on_failure, "max_attempts": spec.max_attempts}
        )
        for step in range(spec.steps):
            move = await self._drive_step(spec, policy, step)
            if self._pending_commit is not None and (
                move == "abort" or step == spec.steps - 1 or spec.approval_after_step == step
            ):
                await self._commit_locally(spec, self._pending_commit)  # nothing follows
            if move == "abort":
                self._status = "aborted"
                return self.snapshot()
            if spec.approval_after_step == step and not await self._wait_approval(spec, step):
                self._status = "expired"
                return self.snapshot()
        self._answer = final_answer(spec.run_id, [s["output"] for s in self._steps])
        self._status = "completed"
        return self.snapshot()

    async def _drive_step(self, spec: AgentInput, policy: VerifyPolicy, step: int) -> str:
        """One step as the step policy plans it, each phase an activity; then its commit,
        pending until the next scheduled activity or local activity records it."""
        phases = _ActivityPhases(self, spec, step)
        outcome = await run_step_async(plan_step(policy, step), phases)
        record = outcome.record
        self._steps.append(record.to_dict())
        self._pending_commit = self._commit_of(
            spec, step, record.attempts, phases.reason_attempt, phases.verified_at
        )
        if not workflow.unsafe.is_replaying():  # the task that would record it is open
            with workflow.unsafe.sandbox_unrestricted():
                crashpoints.in_workflow_task(spec.run_id, step)
        return outcome.move

    # -- phases (activities) ----------------------------------------------------------

    async def _reason(
        self, spec: AgentInput, step: int, attempt: int, committed: CommitInput | None = None
    ) -> Decision:
        decision: Decision = await workflow.execute_activity(
            REASON,
            PhaseInput(spec.run_id, step, attempt, committed),
            result_type=Decision,
            start_to_close_timeout=timedelta(seconds=spec.policy.start_to_close_s),
            heartbeat_timeout=timedelta(seconds=spec.policy.heartbeat_s),
            retry_policy=retry_policy_of(spec),
        )
        return decision

    async def _act(
        self, spec: AgentInput, step: int, attempt: int, decision: Decision
    ) -> dict[str, Any]:
        key = idempotency_key(spec.run_id, step, attempt)
        output: dict[str, Any] = await workflow.execute_activity(
            ACT,
            ActInput(spec.run_id, step, attempt, decision.tool, decision.arguments, key),
            result_type=dict,
            start_to_close_timeout=timedelta(seconds=spec.policy.start_to_close_s),
            heartbeat_timeout=timedelta(seconds=spec.policy.heartbeat_s),
            retry_policy=retry_policy_of(spec),
        )
        return output

    async def _verify(
        self, spec: AgentInput, step: int, attempt: int, decision: Decision, output: dict[str, Any]
    ) -> VerifyResult:
        result: VerifyResult = await workflow.execute_activity(
            VERIFY,
            VerifyInput(spec.run_id, step, attempt, decision.tool, decision.arguments, output),
            result_type=VerifyResult,
            start_to_close_timeout=timedelta(seconds=spec.policy.start_to_close_s),
            heartbeat_timeout=timedelta(seconds=spec.policy.heartbeat_s),
            retry_policy=retry_policy_of(spec),
        )
        return result

    def _commit_of(
        self, spec: AgentInput, step: int, attempts: int, reason_attempt: int, since: float
    ) -> CommitInput:
        """Every result of the step is in the history now: the commit row's facts. It is
        durable from this task's time (or from verify's end, when a code version verifies
        in a local activity of this very task)."""
        info = workflow.info()
        size = info.get_current_history_size()
        grown, self._history_bytes = size - self._history_bytes, size
        return CommitInput(
            spec.run_id,
            step,
            attempts,
            reason_attempt,
            since,
            info.get_current_history_length(),
            grown,
            max(workflow.now().timestamp(), since),
        )

    async def _commit_locally(self, spec: AgentInput, commit: CommitInput) -> None:
        """No activity follows the step: a local activity writes its commit row."""
        self._pending_commit = None
        await workflow.execute_local_activity(
            COMMIT,
            commit,
            result_type=CommitAck,
            start_to_close_timeout=timedelta(seconds=spec.policy.local_timeout_s),
            retry_policy=retry_policy_of(spec),
        )

    async def _wait_approval(self, spec: AgentInput, step: int) -> bool:
        """Wait for the approve signal on a durable timer; False when the TTL ran out."""
        self._status = "waiting_approval"
        began = workflow.now().timestamp()
        try:
            await workflow.wait_condition(lambda: self._approved, timeout=spec.approval_ttl_s)
            approved = True
        except TimeoutError:  # the SDK raises asyncio.TimeoutError, the same class
            approved = False
        attempts = int(self._steps[-1]["attempts"])
        await workflow.execute_local_activity(
            APPROVAL,
            ApprovalNote(spec.run_id, step, attempts, began, approved),
            start_to_close_timeout=timedelta(seconds=spec.policy.local_timeout_s),
            retry_policy=retry_policy_of(spec),
        )
        if approved:
            self._status = "running"
        return approved

    # -- read side ---------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The RunState as a dict (`harness.state.RunState.from_dict` reads it)."""
        return {
            "run_id": self._run_id,
            "status": self._status,
            "steps": list(self._steps),
            "final_answer": self._answer,
        }

    def mark_approved(self) -> None:
        self._approved = True


@workflow.defn(name=WORKFLOW_NAME)
class AgentWorkflow(AgentLoop):
    """Code version v1."""

    VERSION = "v1"

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
