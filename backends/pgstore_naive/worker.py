"""The pgstore-naive worker: claim a run by its status column, resume from the last
saved step, and overwrite the whole state after each step.

It runs each step with `drive_step`, as the baseline does, but, as such stores do, it
gives every act call a fresh key (`uuid4`): nothing in its state says an act was
already sent, so a step re-run after a crash calls the tool again under a new key.
A worker restarted under the same id puts the runs it held back in the queue at
once; runs of a worker that stopped heartbeating are picked up after `stale_s`.

Run as `python -m backends.pgstore_naive.worker --schema S --scenario F ...` (`WorkerArgs`,
`NaiveOptions`), the DSN in `$DURABENCH_WORKER_DSN`.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, replace
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from backends.pgstore.runtime import (
    ClaimLoop,
    Pool,
    StoreWorkerOptions,
    channels,
    run_store_worker,
)
from backends.pgstore_naive import store
from backends.workercli import WorkerArgs
from harness.agent import AgentContext, PhaseError, drive_step
from harness.failpoints import BackendCrashPoint
from harness.state import RunState, RunStatus
from harness.workload import final_answer

__all__ = ["CRASH_POINTS", "NaiveOptions", "NaiveWorker", "main"]

AFTER_CLAIM = "pgstore-naive.after_claim"
BEFORE_ROW_COMMIT = "pgstore-naive.before_row_commit"
AFTER_ROW_COMMIT = "pgstore-naive.after_row_commit"
CRASH_POINTS = (
    BackendCrashPoint(
        AFTER_CLAIM,
        "the row says running under this worker, nothing done: the restarted worker puts "
        "it back in the queue (another picks it up after stale_s)",
        per_step=False,
    ),
    BackendCrashPoint(
        BEFORE_ROW_COMMIT,
        "the step's effects are applied and the row overwrite is written inside its "
        "transaction, COMMIT not sent: rolled back, the step runs again under fresh keys",
    ),
    BackendCrashPoint(
        AFTER_ROW_COMMIT,
        "the row holding the step is committed, the worker has not acknowledged it (no "
        "commit row): the restarted worker resumes after it, nothing is repeated",
    ),
)

DB_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError)

log = logging.getLogger("durabench.pgstore_naive.worker")


@dataclass(frozen=True)
class NaiveOptions(StoreWorkerOptions):
    """The pgstore-naive worker's own command-line options (see `WorkerArgs`)."""

    stale_s: float = 10.0  # a run whose heartbeat is older is picked up by another worker


def _fresh_key(run_id: str, step: int, attempt: int) -> str:
    """A fresh key per act call: nothing in the state gives the act a stable identity."""
    return uuid.uuid4().hex


class NaiveWorker:
    def __init__(
        self,
        ctx: AgentContext,
        pool: AsyncConnectionPool[AsyncConnection[Any]],
        options: NaiveOptions,
        worker_id: str,
    ) -> None:
        self.ctx = ctx
        self.worker_id = worker_id
        self.scenario = ctx.scenario
        self.pool = pool
        self.options = options
        self.work_channel, self.done_channel = channels(options.schema)
        self.running: set[str] = set()
        self.loop: ClaimLoop[store.Claimed] | None = None

    async def claim(self, n: int) -> list[store.Claimed]:
        async with self.pool.connection() as conn:
            claimed = await store.claim(conn, self.worker_id, n, self.options.stale_s)
        for c in claimed:
            if c.takeover:
                log.info("picked up %s from %s (stale heartbeat)", c.run_id, c.previous_worker)
        return claimed

    async def heartbeat(self) -> None:
        if self.running:
            async with self.pool.connection() as conn:
                await store.heartbeat(conn, sorted(self.running))

    async def reap(self) -> None:
        approval = self.scenario.approval
        if approval is not None:
            async with self.pool.connection() as conn:
                await store.expire_waiting(conn, approval.ttl_s, self.done_channel)

    async def drive(self, claimed: store.Claimed) -> None:
        self.running.add(claimed.run_id)
        try:
            await self._drive(claimed)
        except (PhaseError, *DB_ERRORS) as exc:
            log.error("%s: %s (left for a later pick-up)", claimed.run_id, exc)
        finally:
            self.running.discard(claimed.run_id)

    async def _drive(self, claimed: store.Claimed) -> None:
        run_id, state = claimed.run_id, claimed.state
        scenario = self.scenario
        approval = scenario.approval
        steps = list(state.steps)
        if state.status in ("completed", "aborted", "expired"):
            return
        self.ctx.recorder.crash_point(AFTER_CLAIM, run_id, len(steps))
        while len(steps) < scenario.steps:
            step = len(steps)
            outcome = await drive_step(self.ctx, run_id, step, key=_fresh_key)
            record, move = outcome.record, outcome.move
            steps.append(record)
            status: RunStatus = "running"
            wait = False
            if move == "abort":
                status = "aborted"
            elif approval is not None and approval.after_step == step:
                status, wait = "waiting_approval", True
            elif len(steps) == scenario.steps:
                status = "completed"
            answer = (
                final_answer(run_id, [s.output for s in steps]) if status == "completed" else None
            )
            state = RunState(run_id, status, tuple(steps), answer)
            with self.ctx.recorder.phase(run_id, step, record.attempts, "commit") as row:
                saved = await self._save(state, step, wait=wait)
                row.bytes = saved.bytes
            if saved.status in ("done", "waiting"):
                return
            if wait:  # approved before we got here: carry on
                state = replace(state, status="running")
        # approved after the last step: finish
        state = RunState(
            run_id, "completed", tuple(steps), final_answer(run_id, [s.output for s in steps])
        )
        async with self.pool.connection() as conn:
            await store.save(conn, state, wait=False, done_channel=self.done_channel)

    async def _save(self, state: RunState, step: int, *, wait: bool) -> store.Saved:
        """Overwrite the run's row (one statement, its own transaction). With
        BEFORE_ROW_COMMIT armed, the same statement runs in an explicit transaction and
        the worker dies inside it, before COMMIT: Postgres rolls the row back."""
        failpoints = self.ctx.recorder.failpoints
        async with self.pool.connection() as conn:
            if failpoints is not None and failpoints.armed(BEFORE_ROW_COMMIT):
                async with conn.transaction():
                    saved = await store.save(conn, state, wait=wait, done_channel=self.done_channel)
                    self.ctx.recorder.crash_point(BEFORE_ROW_COMMIT, state.run_id, step)
            else:
                saved = await store.save(conn, state, wait=wait, done_channel=self.done_channel)
        self.ctx.recorder.crash_point(AFTER_ROW_COMMIT, state.run_id, step)
        return saved


def main(argv: list[str] | None = None) -> None:
    args = WorkerArgs.parse(NaiveOptions, argv, description="durabench pgstore-naive worker")

    def make_worker(ctx: AgentContext, pool: Pool) -> NaiveWorker:
        return NaiveWorker(ctx, pool, args.options, args.worker_id)

    run_store_worker(args, store, make_worker, args.options.stale_s)


if __name__ == "__main__":
    main()
