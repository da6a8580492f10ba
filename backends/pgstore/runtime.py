"""What both Postgres state stores share: the workers' command-line options, their
start-up and claim loop, the NOTIFY channels, and the backend-side wait for a
finished run.

Work is handed out by the store (`claim`); a worker wakes on a NOTIFY from `start`
or `approve` and otherwise polls every `poll_s`, so expired leases are reclaimed
even when nobody notifies.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import aiohttp
import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from backends.workercli import WorkerArgs
from harness.agent import AgentContext
from harness.scenario import Scenario, load_scenario

__all__ = [
    "DSN_ENV",
    "ClaimLoop",
    "DoneWaiter",
    "Periodic",
    "StoreWorkerOptions",
    "channels",
    "open_pool",
    "run_store_worker",
    "serve_store_worker",
    "worker_periodics",
]

DSN_ENV = "DURABENCH_WORKER_DSN"  # workers read their DSN here: never in argv (ps, logs)
POOL_MIN = 2
POOL_OPEN_TIMEOUT_S = 120.0
RECONNECT_DELAY_S = 0.5
WAIT_POLL_S = 1.0  # the backend re-reads a run's status at least this often

log = logging.getLogger("durabench.pgstore")
T = TypeVar("T")


def channels(schema: str) -> tuple[str, str]:
    """(work, done) NOTIFY channels of one run's schema; short, valid identifiers."""
    digest = hashlib.blake2b(schema.encode(), digest_size=6).hexdigest()
    return f"durabench_{digest}_work", f"durabench_{digest}_done"


async def open_pool(dsn: str, max_size: int) -> AsyncConnectionPool[AsyncConnection[Any]]:
    """An autocommit pool; waits (bounded) for the server to accept connections."""
    pool: AsyncConnectionPool[AsyncConnection[Any]] = AsyncConnectionPool(
        dsn,
        min_size=min(POOL_MIN, max_size),
        max_size=max_size,
        kwargs={"autocommit": True},
        open=False,
        reconnect_timeout=POOL_OPEN_TIMEOUT_S,
    )
    await pool.open(wait=True, timeout=POOL_OPEN_TIMEOUT_S)
    return pool


async def _listen(
    dsn: str, channel_names: Sequence[str], on_notify: Callable[[str, str], None]
) -> None:
    """LISTEN forever, reconnecting after errors; calls on_notify(channel, payload)."""
    while True:
        try:
            conn = await AsyncConnection.connect(dsn, autocommit=True)
            async with conn:
                for name in channel_names:
                    await conn.execute(f"LISTEN {name}")
                on_notify("", "")  # (re)connected: whatever was missed, look again
                async for note in conn.notifies():
                    on_notify(note.channel, note.payload)
        except psycopg.Error as exc:
            log.warning("listen connection lost: %s", exc)
        await asyncio.sleep(RECONNECT_DELAY_S)


@dataclass(frozen=True)
class Periodic:
    """A job the worker runs every `interval_s` (heartbeats, the approval TTL reaper)."""

    interval_s: float
    job: Callable[[], Awaitable[None]]
    name: str


REAP_MIN_INTERVAL_S = 0.05
REAP_MAX_INTERVAL_S = 1.0


def worker_periodics(
    scenario: Scenario,
    heartbeat_s: float,
    heartbeat: Callable[[], Awaitable[None]],
    reap: Callable[[], Awaitable[None]],
) -> list[Periodic]:
    """What both stores' workers run on a timer: the lease heartbeat and, when the scenario
    has approvals, the TTL reaper (often enough to close a zombie near its TTL)."""
    periodic = [Periodic(heartbeat_s, heartbeat, "heartbeat")]
    if scenario.approval is not None:
        interval = min(REAP_MAX_INTERVAL_S, max(REAP_MIN_INTERVAL_S, scenario.approval.ttl_s / 4))
        periodic.append(Periodic(interval, reap, "approval reaper"))
    return periodic


class ClaimLoop(Generic[T]):
    """Keeps up to `slots` runs in flight: claim, drive each in its own task, repeat."""

    def __init__(
        self,
        *,
        dsn: str,
        work_channel: str,
        slots: int,
        poll_s: float,
        claim: Callable[[int], Awaitable[list[T]]],
        drive: Callable[[T], Coroutine[Any, Any, None]],
        key: Callable[[T], str],
        periodic: Sequence[Periodic] = (),
    ) -> None:
        self.dsn = dsn
        self.work_channel = work_channel
        self.slots = slots
        self.poll_s = poll_s
        self._claim = claim
        self._drive = drive
        self._key = key
        self._periodic = periodic
        self.active: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()

    def wake(self, *_: str) -> None:
        self._wake.set()

    async def _every(self, job: Periodic) -> None:
        while True:
            await asyncio.sleep(job.interval_s)
            try:
                await job.job()
            except (psycopg.Error, OSError) as exc:
                log.warning("%s failed: %s", job.name, exc)

    def _launch(self, item: T) -> None:
        key = self._key(item)
        task = asyncio.create_task(self._drive(item), name=f"run {key}")
        self.active[key] = task

        def finished(_: asyncio.Task[None]) -> None:
            if self.active.get(key) is task:
                del self.active[key]
            self._wake.set()

        task.add_done_callback(finished)

    async def run(self) -> None:
        helpers = [asyncio.create_task(_listen(self.dsn, [self.work_channel], self.wake))]
        helpers += [asyncio.create_task(self._every(p)) for p in self._periodic]
        try:
            while True:
                free = self.slots - len(self.active)
                claimed: list[T] = []
                if free > 0:
                    try:
                        claimed = [
                            c for c in await self._claim(free) if self._key(c) not in self.active
                        ]
                    except (psycopg.Error, OSError) as exc:
                        log.warning("claim failed: %s", exc)
                        await asyncio.sleep(RECONNECT_DELAY_S)
                for item in claimed:
                    self._launch(item)
                if claimed and len(claimed) == free:
                    continue  # there may be more waiting
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_s)
                self._wake.clear()
        finally:
            for task in [*helpers, *self.active.values()]:
                task.cancel()


class DoneWaiter:
    """The backend side: one LISTEN connection; `wait` returns when a run is done,
    woken by the done NOTIFY and re-reading the status at least every WAIT_POLL_S."""

    def __init__(self, dsn: str, done_channel: str) -> None:
        self.dsn = dsn
        self.channel = done_channel
        self._events: dict[str, asyncio.Event] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(_listen(self.dsn, [self.channel], self._notified))

    def _notified(self, _channel: str, run_id: str) -> None:
        if run_id:
            self._events.setdefault(run_id, asyncio.Event()).set()
        else:
            for event in self._events.values():
                event.set()

    async def wait(
        self, run_id: str, timeout_s: float, is_done: Callable[[], Awaitable[bool]]
    ) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        event = self._events.setdefault(run_id, asyncio.Event())
        try:
            while True:
                event.clear()
                try:
                    if await is_done():
                        return True
                except (psycopg.Error, OSError) as exc:
                    log.warning("status of %s: %s", run_id, exc)
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return False
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), min(remaining, WAIT_POLL_S))
        finally:
            self._events.pop(run_id, None)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


# -- a store worker process -------------------------------------------------------------


@dataclass(frozen=True)
class StoreWorkerOptions:
    """The worker command-line options both stores share (see `WorkerArgs`)."""

    schema: str
    slots: int = 64  # runs in flight
    dsn: str | None = field(
        default=None,
        metadata={"help": f"conninfo with search_path set (default: ${DSN_ENV}, out of ps)"},
    )


class Claimed(Protocol):
    @property
    def run_id(self) -> str: ...


C = TypeVar("C", bound=Claimed)


class StoreWorker(Protocol[C]):
    """One store's worker, as the claim loop drives it."""

    work_channel: str
    loop: ClaimLoop[C] | None

    async def claim(self, n: int) -> list[C]: ...

    async def drive(self, claimed: C) -> None: ...

    async def heartbeat(self) -> None: ...

    async def reap(self) -> None: ...


class StoreTables(Protocol):
    """What a worker does to its store before it claims anything (a store module)."""

    async def ensure_tables(self, conn: AsyncConnection[Any], schema: str) -> None: ...

    async def release_own(self, conn: AsyncConnection[Any], worker: str) -> list[str]: ...


Pool = AsyncConnectionPool[AsyncConnection[Any]]


async def serve_store_worker(
    args: WorkerArgs[Any],
    tables: StoreTables,
    make_worker: Callable[[AgentContext, Pool], StoreWorker[C]],
    lease_s: float,
) -> None:
    """A store worker's life: open the pool, create the tables, give back what this worker
    id held before a restart, then claim and drive runs until cancelled. `lease_s` is how
    long a claimed run stays this worker's without a heartbeat."""
    options: StoreWorkerOptions = args.options
    dsn = str(options.dsn)
    scenario = load_scenario(args.scenario)
    pool = await open_pool(dsn, max_size=min(options.slots, 16) + 2)
    async with (
        pool,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, limit_per_host=0)) as http,
    ):
        async with pool.connection() as conn:
            await tables.ensure_tables(conn, options.schema)
            released = await tables.release_own(conn, args.worker_id)
        if released:
            log.info("gave back %d runs this worker id held before its restart", len(released))
        worker = make_worker(args.agent_context(scenario, http), pool)
        worker.loop = ClaimLoop(
            dsn=dsn,
            work_channel=worker.work_channel,
            slots=options.slots,
            poll_s=min(1.0, lease_s / 2),
            claim=worker.claim,
            drive=worker.drive,
            key=lambda c: c.run_id,
            periodic=worker_periodics(scenario, lease_s / 3, worker.heartbeat, worker.reap),
        )
        log.info(
            "worker %s ready (%d slots, claims held %gs)", args.worker_id, options.slots, lease_s
        )
        await worker.loop.run()


def run_store_worker(
    args: WorkerArgs[Any],
    tables: StoreTables,
    make_worker: Callable[[AgentContext, Pool], StoreWorker[C]],
    lease_s: float,
) -> None:
    """The worker main's end: the DSN from `--dsn` or the environment, then serve."""
    options: StoreWorkerOptions = args.options
    dsn = options.dsn or os.environ.get(DSN_ENV)
    if not dsn:
        print(f"error: --dsn or ${DSN_ENV} is required", file=sys.stderr)
        raise SystemExit(2)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args = dataclasses.replace(args, options=dataclasses.replace(options, dsn=dsn))
    asyncio.run(serve_store_worker(args, tables, make_worker, lease_s))
