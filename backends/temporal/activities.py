"""The phases as Temporal activities: thin wrappers around `harness.agent`.

Each worker process holds one `AgentActivities` (one AgentContext: HTTP session,
Recorder, scenario). Reason and act heartbeat while their service call is in
flight, so a killed worker's attempt is retried after the heartbeat timeout
instead of the whole start-to-close timeout. Act passes the idempotency key the
workflow computed from the *logical* step attempt, so a Temporal retry of the
same attempt reuses the key and the tool ledger absorbs the duplicate.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

from temporalio import activity

from backends.temporal.messages import (
    ACT,
    APPROVAL,
    COMMIT,
    REASON,
    VERIFY,
    ActInput,
    ApprovalNote,
    CommitAck,
    CommitInput,
    PhaseInput,
    VerifyInput,
    VerifyResult,
)
from harness import agent
from harness.agent import AgentContext
from harness.workload import Decision

__all__ = ["AgentActivities", "heartbeating"]

HEARTBEATS_PER_TIMEOUT = 4
T = TypeVar("T")


async def heartbeating(work: Awaitable[T]) -> T:
    """Await `work`, heartbeating a few times per heartbeat timeout meanwhile."""
    timeout = activity.info().heartbeat_timeout
    task = asyncio.ensure_future(work)
    if not timeout:
        return await task
    every = timeout.total_seconds() / HEARTBEATS_PER_TIMEOUT
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=every)
            if done:
                return task.result()
            activity.heartbeat()
    finally:
        task.cancel()


class AgentActivities:
    """The activities of one worker process, bound to its AgentContext."""

    def __init__(self, ctx: AgentContext) -> None:
        self.ctx = ctx

    def all(self) -> list[Any]:
        return [self.reason, self.act, self.verify, self.commit, self.approval]

    @activity.defn(name=REASON)
    async def reason(self, req: PhaseInput) -> Decision:
        if req.committed is not None:  # the previous step, recorded with this activity
            self._commit_row(req.committed)
        return await heartbeating(agent.reason(self.ctx, req.run_id, req.step, req.attempt))

    @activity.defn(name=ACT)
    async def act(self, req: ActInput) -> dict[str, Any]:
        return await heartbeating(
            agent.act(
                self.ctx, req.run_id, req.step, req.attempt, req.decision(), req.idempotency_key
            )
        )

    @activity.defn(name=VERIFY)
    async def verify(self, req: VerifyInput) -> VerifyResult:
        verified = agent.verify(
            self.ctx, req.run_id, req.step, req.attempt, req.decision(), req.output
        )
        return VerifyResult(req.step, req.attempt, verified, time.time())

    @activity.defn(name=COMMIT)
    async def commit(self, req: CommitInput) -> CommitAck:
        """The commit row of a step no activity follows (the last, an abort, an approval)."""
        self._commit_row(req)
        return CommitAck(req.step, req.attempts, req.reason_attempt)

    def _commit_row(self, req: CommitInput) -> None:
        """The commit row spans from the step's last result leaving a worker to the
        workflow task that saw it recorded in the history."""
        ended = req.durable_at or None  # a history from before `durable_at` existed
        with self.ctx.recorder.phase(
            req.run_id, req.step, req.attempts, "commit", ended=ended
        ) as row:
            row.start = min(row.start, req.since)
            row.bytes = req.history_bytes
            row.extra = {"history_length": req.history_length}

    @activity.defn(name=APPROVAL)
    async def approval(self, note: ApprovalNote) -> None:
        with self.ctx.recorder.phase(note.run_id, note.step, note.attempts, "approval") as row:
            row.start = min(row.start, note.waited_from)
            if not note.approved:
                row.outcome = "fail"
