"""The RAV agent as a DBOS workflow: one agent run is one workflow, and reason, act and
verify are DBOS steps with DBOS's own retry settings.

A step is durable once DBOS recorded its output (one `operation_outputs` row, after
its function returned); a recovered workflow runs again from the start, and every
step whose output is recorded returns that output instead of running. Once verify's
output is recorded, every field of the step record is durable (the record is a pure
function of recorded outputs), so the workflow then writes the `commit` measurement
row: it spans from verify's verdict to its record, and means "acknowledged as
durable". Steps run again on recovery are at-least-once: act carries the idempotency
key of its logical attempt (`run/step/attempt`), so the tool applies it once.

The approval is `DBOS.recv` on the topic `approve` with the scenario's TTL as its
timeout (DBOS records the deadline, so a recovered wait keeps it); a `None` answer
means the TTL ran out and the run expires.

The steps reach this worker's phase context (HTTP session, Recorder) through `bind`:
one per process, set by the worker before DBOS launches.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

from dbos import DBOS

from backends.dbos import crashpoints
from backends.dbos.settings import (
    ACT,
    APPROVAL,
    APPROVE_TOPIC,
    REASON,
    RETRY_SETTINGS,
    VERIFY,
    WORKFLOW,
)
from harness import agent
from harness.agent import AgentContext
from harness.errors import BackendError
from harness.scenario import VerifyPolicy
from harness.steppolicy import plan_step, run_step_async
from harness.workload import Decision, final_answer, idempotency_key

__all__ = ["agent_workflow", "bind"]


@dataclass
class _Runtime:
    ctx: AgentContext | None = None
    # (workflow id, step, attempt) of verifies run by this process and not yet committed:
    # a verify replayed from its record after a recovery writes no second commit row
    fresh: set[tuple[str, int, int]] | None = None


_runtime = _Runtime()
_fresh_lock = threading.Lock()


def bind(ctx: AgentContext) -> None:
    """This process's phase context (the worker calls it before DBOS.launch)."""
    _runtime.ctx = ctx
    _runtime.fresh = set()


def _ctx() -> AgentContext:
    if _runtime.ctx is None:
        raise BackendError("dbos: a step ran before the worker bound its phase context")
    return _runtime.ctx


def _workflow_id() -> str:
    return DBOS.workflow_id or ""


# -- the steps ------------------------------------------------------------------------


@DBOS.step(name=REASON, **RETRY_SETTINGS)
async def reason_step(run_id: str, step: int, attempt: int) -> dict[str, Any]:
    decision = await agent.reason(_ctx(), run_id, step, attempt)
    return {"step": step, "attempt": attempt, "decision": asdict(decision)}


@DBOS.step(name=ACT, **RETRY_SETTINGS)
async def act_step(
    run_id: str, step: int, attempt: int, tool: str, arguments: dict[str, Any], key: str
) -> dict[str, Any]:
    output = await agent.act(_ctx(), run_id, step, attempt, Decision(tool, arguments, ""), key)
    crashpoints.note_output(_workflow_id(), "act", run_id, step)
    return {"step": step, "attempt": attempt, "key": key, "output": output}


@DBOS.step(name=VERIFY)
async def verify_step(
    run_id: str, step: int, attempt: int, tool: str, arguments: dict[str, Any], output: Any
) -> dict[str, Any]:
    verified = agent.verify(_ctx(), run_id, step, attempt, Decision(tool, arguments, ""), output)
    workflow_id = _workflow_id()
    with _fresh_lock:
        assert _runtime.fresh is not None
        _runtime.fresh.add((workflow_id, step, attempt))
    crashpoints.note_output(workflow_id, "verify", run_id, step)
    return {"step": step, "attempt": attempt, "verified": verified, "at": time.time()}


@DBOS.step(name=APPROVAL)
async def approval_step(
    run_id: str, step: int, attempts: int, waited_from: float, approved: bool
) -> bool:
    """Runs once per run (replayed, not run, after a recovery): the approval row."""
    with _ctx().recorder.phase(run_id, step, attempts, "approval") as row:
        row.start = min(row.start, waited_from)
        if not approved:
            row.outcome = "fail"
    return approved


# -- the workflow -----------------------------------------------------------------------


class _StepPhases:
    """The step policy's requests answered by the DBOS steps; keeps what the commit
    row needs."""

    def __init__(self, run_id: str, step: int) -> None:
        self.run_id, self.step = run_id, step
        self.verified_at = 0.0
        self.last_attempt = 0

    async def reason(self, attempt: int) -> Decision:
        recorded = await reason_step(self.run_id, self.step, attempt)
        return Decision(**recorded["decision"])

    async def act(self, attempt: int, decision: Decision) -> dict[str, Any]:
        key = idempotency_key(self.run_id, self.step, attempt)
        recorded = await act_step(
            self.run_id, self.step, attempt, decision.tool, decision.arguments, key
        )
        recorder = _ctx().recorder
        recorder.crash_point("after_act_recorded", self.run_id, self.step)
        recorder.crash_point(crashpoints.AFTER_ACT_OUTPUT, self.run_id, self.step)
        output: dict[str, Any] = recorded["output"]
        return output

    async def verify(self, attempt: int, decision: Decision, output: dict[str, Any]) -> bool:
        recorded = await verify_step(
            self.run_id, self.step, attempt, decision.tool, decision.arguments, output
        )
        self.verified_at, self.last_attempt = float(recorded["at"]), attempt
        return bool(recorded["verified"])


def _commit_row(workflow_id: str, run_id: str, step: int, attempts: int, since: float) -> None:
    """The commit row, only when this process recorded the verify that closed the step."""
    with _fresh_lock:
        assert _runtime.fresh is not None
        if (workflow_id, step, attempts) not in _runtime.fresh:
            return
        _runtime.fresh.discard((workflow_id, step, attempts))
    with _ctx().recorder.phase(run_id, step, attempts, "commit") as row:
        row.start = min(row.start, since)
        row.extra = {"pid": os.getpid()}


def _state(
    run_id: str, status: str, steps: list[dict[str, Any]], answer: str | None = None
) -> dict[str, Any]:
    return {"run_id": run_id, "status": status, "steps": steps, "final_answer": answer}


@DBOS.workflow(name=WORKFLOW)
async def agent_workflow(spec: dict[str, Any]) -> dict[str, Any]:
    """One agent run; returns its final state (RunState as a dict)."""
    run_id = str(spec["run_id"])
    workflow_id = _workflow_id()
    _ctx().recorder.crash_point(crashpoints.AFTER_DEQUEUE, run_id, 0)
    policy = VerifyPolicy.model_validate(
        {"on_failure": spec["on_failure"], "max_attempts": spec["max_attempts"]}
    )
    steps: list[dict[str, Any]] = []
    for step in range(int(spec["steps"])):
        phases = _StepPhases(run_id, step)
        outcome = await run_step_async(plan_step(policy, step), phases)
        record = outcome.record
        steps.append(record.to_dict())
        _commit_row(workflow_id, run_id, step, record.attempts, phases.verified_at)
        if outcome.move == "abort":
            return _state(run_id, "aborted", steps)
        if spec.get("approval_after_step") == step:
            began = time.time()
            message = await DBOS.recv_async(APPROVE_TOPIC, float(spec["approval_ttl_s"]))
            approved = await approval_step(
                run_id, step, record.attempts, began, message is not None
            )
            if not approved:
                return _state(run_id, "expired", steps)
    return _state(run_id, "completed", steps, final_answer(run_id, [s["output"] for s in steps]))
