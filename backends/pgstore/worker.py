"""The pgstore worker: claims runs from the queue and drives each as an event-sourced
state machine.

For a claimed run it folds the event log, asks `next_action`, performs that one
phase through `harness.agent`, and appends the result as an event under its lease
and fencing token before the next phase starts. A phase whose result is already in
the log is never performed again: a restarted worker reuses the recorded LLM answer
or tool output. Act carries the stable key `idempotency_key(run, step, attempt)`.

The `commit` measurement row is written after the append that contains the step's
`step_committed` event returned (the verify event and whatever follows without a
call, e.g. `run_completed`, go in the same transaction). Its `extra` holds how many
durable appends the step took and their total time, for the overhead figures.

Run as `python -m backends.pgstore.worker --schema S --scenario F ...` (`WorkerArgs`,
`PgStoreOptions`), the DSN in `$DURABENCH_WORKER_DSN`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from backends.pgstore import store
from backends.pgstore.fold import (
    Action,
    CorruptLog,
    Event,
    Progress,
    apply_event,
    internal_events,
    next_action,
)
from backends.pgstore.runtime import (
    ClaimLoop,
    Pool,
    StoreWorkerOptions,
    channels,
    run_store_worker,
)
from backends.workercli import WorkerArgs
from harness.agent import AgentContext, PhaseError, act, reason, verify
from harness.failpoints import BackendCrashPoint
from harness.workload import idempotency_key

__all__ = ["CRASH_POINTS", "PgStoreOptions", "PgStoreWorker", "main"]

AFTER_CLAIM = "pgstore.after_claim"
AFTER_REASON_EVENT = "pgstore.after_reason_event"
BEFORE_ACT_COMMIT = "pgstore.before_act_commit"
AFTER_ACT_EVENT = "pgstore.after_act_event"
BEFORE_STEP_COMMIT = "pgstore.before_step_commit"
CRASH_POINTS = (
    BackendCrashPoint(
        AFTER_CLAIM,
        "the run is leased to this worker (new fencing token), nothing performed: the "
        "restarted worker gives its leases back and the run is claimed again",
        per_step=False,
    ),
    BackendCrashPoint(
        AFTER_REASON_EVENT,
        "the reason event is committed, the act not sent: the recorded decision is reused "
        "(no second LLM call)",
    ),
    BackendCrashPoint(
        BEFORE_ACT_COMMIT,
        "the act event is written inside its transaction, COMMIT not sent (the effect is "
        "applied): rolled back, the act runs again with the same key",
    ),
    BackendCrashPoint(
        AFTER_ACT_EVENT,
        "the act event (key, tool output) is committed, verify has not run: the recorded "
        "output is reused, the tool is not called again (the shared after_act_recorded)",
    ),
    BackendCrashPoint(
        BEFORE_STEP_COMMIT,
        "the verify and step_committed events are written inside their transaction, COMMIT "
        "not sent: rolled back, verify (pure) runs again, nothing is re-executed",
    ),
)

DB_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError)
RETRY_DELAY_S = 0.2

log = logging.getLogger("durabench.pgstore.worker")


@dataclass
class StepCost:
    """Durable appends made for one step by this worker (for the commit row)."""

    appends: int = 0
    ms: float = 0.0
    bytes: int = 0


@dataclass(frozen=True)
class PgStoreOptions(StoreWorkerOptions):
    """The pgstore worker's own command-line options (see `WorkerArgs`)."""

    lease_s: float = 10.0
    snapshot_every: int = 256  # events between snapshots; 0 = never


class PgStoreWorker:
    def __init__(
        self,
        ctx: AgentContext,
        pool: AsyncConnectionPool[AsyncConnection[Any]],
        options: PgStoreOptions,
        worker_id: str,
    ) -> None:
        self.ctx = ctx
        self.worker_id = worker_id
        self.scenario = ctx.scenario
        self.pool = pool
        self.options = options
        self.work_channel, self.done_channel = channels(options.schema)
        self.leases: dict[str, int] = {}  # run id -> fencing token, for runs in flight
        self.loop: ClaimLoop[store.Claim] | None = None

    # -- queue -------------------------------------------------------------------------

    async def claim(self, n: int) -> list[store.Claim]:
        async with self.pool.connection() as conn:
            claims = await store.claim(conn, self.worker_id, n, self.options.lease_s)
        for c in claims:
            if c.takeover:
                log.info("took over %s (token %d) from %s", c.run_id, c.token, c.previous_worker)
        return claims

    async def heartbeat(self) -> None:
        """Extend the leases of runs in flight (not durable: a lost extension only makes a
        lease end sooner); a run whose lease is gone is cancelled here."""
        leases = dict(self.leases)
        if not leases:
            return
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute("SET LOCAL synchronous_commit = off")
            lost = await store.heartbeat(conn, leases, self.options.lease_s)
        for run_id in lost:
            if self.leases.get(run_id) != leases[run_id] or self.loop is None:
                continue  # finished meanwhile
            self._record_fenced(run_id, "heartbeat", leases[run_id])
            task = self.loop.active.get(run_id)
            if task is not None:
                task.cancel()

    async def reap(self) -> None:
        """The approval TTL policy: close runs nobody approved in time."""
        approval = self.scenario.approval
        if approval is None:
            return
        async with self.pool.connection() as conn:
            expired = await store.expire_waiting(conn, approval.ttl_s, self.done_channel)
        for run_id in expired:
            log.info("expired %s: no approval within %gs", run_id, approval.ttl_s)

    # -- one run -----------------------------------------------------------------------

    async def drive(self, claim: store.Claim) -> None:
        run_id, token = claim.run_id, claim.token
        self.leases[run_id] = token
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    await self._drive(run_id, token)
                    return
                except store.Fenced as exc:
                    log.warning("%s", exc)
                    return
                except (PhaseError, CorruptLog) as exc:
                    log.error("%s: %s (left for a later claim)", run_id, exc)
                    return
                except DB_ERRORS as exc:
                    log.warning("%s: store error %s; retrying while the lease lasts", run_id, exc)
                    deadline = loop.time() + self.options.lease_s
                    mine: bool | None = None
                    while mine is None and loop.time() < deadline:
                        await asyncio.sleep(RETRY_DELAY_S)
                        mine = await self._still_mine(run_id, token)
                    if not mine:
                        return
        finally:
            if self.leases.get(run_id) == token:
                del self.leases[run_id]

    async def _still_mine(self, run_id: str, token: int) -> bool | None:
        try:
            async with self.pool.connection(timeout=self.options.lease_s) as conn:
                cursor = await conn.execute(
                    "SELECT token = %s AND status = 'leased' AND lease_until > clock_timestamp()"
                    " FROM runs WHERE run_id = %s",
                    (token, run_id),
                )
                row = await cursor.fetchone()
        except (*DB_ERRORS, TimeoutError):
            return None
        return bool(row and row[0])

    async def _load(self, run_id: str) -> Progress:
        async with self.pool.connection() as conn:
            return await store.load(conn, run_id, use_snapshot=self.options.snapshot_every > 0)

    async def _drive(self, run_id: str, token: int) -> None:
        progress = await self._load(run_id)
        costs: dict[int, StepCost] = {}
        claimed = True
        while True:
            action = next_action(self.scenario, progress)
            if action.kind == "done":
                return
            if claimed:
                self.ctx.recorder.crash_point(AFTER_CLAIM, run_id, action.step)
                claimed = False
            if action.kind == "wait":  # normally parked by the approval_requested append
                await self._append_once(run_id, token, [], park=True)
                return
            events = await self._perform(run_id, progress, action)
            progress = await self._append(run_id, token, progress, events, action, costs)
            if progress.terminal or progress.status == "waiting_approval":
                return
            if action.kind == "reason":
                self.ctx.recorder.crash_point(AFTER_REASON_EVENT, run_id, action.step)
            if action.kind == "act":
                self.ctx.recorder.crash_point("after_act_recorded", run_id, action.step)
                self.ctx.recorder.crash_point(AFTER_ACT_EVENT, run_id, action.step)

    async def _perform(self, run_id: str, progress: Progress, action: Action) -> list[Event]:
        """Run one phase (or none, for internal actions) and draft its events."""
        ctx, step, attempt = self.ctx, action.step, action.attempt
        if action.kind == "reason":
            decision = await reason(ctx, run_id, step, attempt)
            return [Event("reason", step, attempt, {"decision": decision.__dict__})]
        if action.kind == "act":
            assert action.decision is not None
            key = idempotency_key(run_id, step, attempt)
            output = await act(ctx, run_id, step, attempt, action.decision, key)
            return [Event("act", step, attempt, {"key": key, "output": output})]
        draft = progress.copy()
        events: list[Event] = []
        if action.kind == "verify":
            assert action.decision is not None and action.output is not None
            verified = verify(ctx, run_id, step, attempt, action.decision, action.output)
            event = Event("verify", step, attempt, {"verified": verified})
            apply_event(draft, event, draft.last_seq + 1)
            events.append(event)
        return events + internal_events(self.scenario, draft)

    async def _append(
        self,
        run_id: str,
        token: int,
        progress: Progress,
        events: list[Event],
        action: Action,
        costs: dict[int, StepCost],
    ) -> Progress:
        """Append under the lease; returns the progress with the events folded in (or
        re-folded from the log when an approval was appended meanwhile)."""
        closes = next((e for e in events if e.type == "step_committed"), None)
        step = action.step
        cost = costs.setdefault(step, StepCost())
        began = time.perf_counter()
        if closes is not None:
            attempts = int(closes.payload["attempts"])
            with self.ctx.recorder.phase(run_id, step, attempts, "commit") as row:
                try:
                    appended = await self._append_once(
                        run_id, token, events, crash=(BEFORE_STEP_COMMIT, step)
                    )
                except store.Fenced as exc:
                    row.outcome = "fail"  # certain: nothing was written
                    row.extra = {"fenced": True, "by": "step_committed", "token": token}
                    row.error = str(exc)
                    raise
                cost.appends += 1
                cost.ms += (time.perf_counter() - began) * 1000
                cost.bytes += appended.bytes
                row.bytes = progress.step_bytes.get(step, 0) + appended.bytes
                row.extra = {
                    "appends": cost.appends,
                    "append_ms": round(cost.ms, 3),
                    "events": len(events),
                    "bytes_written": cost.bytes,
                }
        else:
            crash = (BEFORE_ACT_COMMIT, step) if action.kind == "act" else None
            try:
                appended = await self._append_once(run_id, token, events, crash=crash)
            except store.Fenced:
                kind = events[0].type if events else "park"
                self._record_fenced(run_id, kind, token, step, action.attempt)
                raise
            cost.appends += 1
            cost.ms += (time.perf_counter() - began) * 1000
            cost.bytes += appended.bytes
        if appended.first_seq != progress.last_seq + 1:
            progress = await self._load(run_id)  # an approval was appended in between
        else:
            for i, event in enumerate(events):
                apply_event(progress, event, appended.first_seq + i)
            if events:
                progress.step_bytes[step] = progress.step_bytes.get(step, 0) + appended.bytes
        if closes is not None:
            costs.pop(step, None)
        await self._maybe_snapshot(run_id, token, progress, appended)
        return progress

    async def _append_once(
        self,
        run_id: str,
        token: int,
        events: list[Event],
        park: bool = False,
        crash: tuple[str, int] | None = None,
    ) -> store.Appended:
        """One append (one statement, its own transaction). With `crash` armed, the same
        statement runs in an explicit transaction and the worker dies inside it, after the
        rows are written and before COMMIT: Postgres rolls them back."""
        failpoints = self.ctx.recorder.failpoints
        armed = crash is not None and failpoints is not None and failpoints.armed(crash[0])
        async with self.pool.connection() as conn:
            if not armed:
                return await self._append_statement(conn, run_id, token, events, park)
            assert crash is not None
            async with conn.transaction():
                appended = await self._append_statement(conn, run_id, token, events, park)
                self.ctx.recorder.crash_point(crash[0], run_id, crash[1])
            return appended

    async def _append_statement(
        self, conn: AsyncConnection[Any], run_id: str, token: int, events: list[Event], park: bool
    ) -> store.Appended:
        return await store.append(
            conn,
            run_id,
            token,
            events,
            lease_s=self.options.lease_s,
            done_channel=self.done_channel,
            park=park,
        )

    def _record_fenced(
        self, run_id: str, by: str, token: int, step: int = -1, attempt: int = 0
    ) -> None:
        """A fencing refusal as a `fail` commit row: it certainly did not happen."""
        with self.ctx.recorder.phase(run_id, step, attempt, "commit") as row:
            row.outcome = "fail"
            row.error = f"fenced: lease for token {token} taken over or expired"
            row.extra = {"fenced": True, "by": by, "token": token}

    async def _maybe_snapshot(
        self, run_id: str, token: int, progress: Progress, appended: store.Appended
    ) -> None:
        every = self.options.snapshot_every
        if every <= 0 or appended.status != "leased" or progress.terminal:
            return
        first = appended.first_seq
        if progress.last_seq // every > (first - 1) // every:
            async with self.pool.connection() as conn:
                await store.write_snapshot(conn, run_id, token, progress)


def main(argv: list[str] | None = None) -> None:
    args = WorkerArgs.parse(
        PgStoreOptions, argv, description="durabench pgstore worker (event-sourced)"
    )

    def make_worker(ctx: AgentContext, pool: Pool) -> PgStoreWorker:
        return PgStoreWorker(ctx, pool, args.options, args.worker_id)

    run_store_worker(args, store, make_worker, args.options.lease_s)


if __name__ == "__main__":
    main()
