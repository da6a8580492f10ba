"""LangGraph: the RAV agent as a checkpointed StateGraph, run by claiming workers.

What is measured, and what is ours rather than LangGraph's:

- The graph (`graph.py`) runs reason, act and verify as nodes; a checkpoint follows
  every superstep according to the durability mode (`exit`, `async`, `sync`; default:
  LangGraph's own, `async`). The checkpointer is LangGraph's own saver, unchanged:
  `InMemorySaver` (`langgraph:memory`), `AsyncSqliteSaver` on a file
  (`langgraph:sqlite`, the default) or `AsyncPostgresSaver` (`langgraph:postgres`).
  A step is acknowledged (`commit` row) when the saver's `aput` of the first
  checkpoint holding it returned (`savers.py`).
- LangGraph has no job queue, so deciding which worker resumes which thread after a
  crash is ours: a durable claim table (`queue.py`): in the run's Postgres schema, or
  a SQLite file of its own beside the checkpoint file (sqlite) or alone (memory, which
  has no store), so its writes never wait on the saver's lock. Workers (scenario `workers`,
  restarted when they die) claim threads with a lease; a restarted worker takes its
  own threads back at once, others after the lease (10 s). A claimed thread resumes
  with `ainvoke(None, config)` from its last checkpoint, or from the start when there
  is none (`exit` before the invocation ended, or the memory saver after a crash).
  A start or approval wakes the workers and a worker reports each finished thread to
  the harness (`signals.py`), so neither waits on a poll; what a run start still pays
  is the claim itself (the insert, the claim and the final status: three commits).
- Human approval is `interrupt()` in an approval node, resumed with
  `Command(resume=...)` once approved, or with an expiry once the scenario's TTL
  passed (the thread then ends `expired` in its own checkpoint).
- The act node passes `idempotency_key(run, step, attempt)` with the logical run id,
  so a re-executed act is absorbed by the tool ledger (it shows as a raw duplicate
  execution, not as a second applied effect); a re-executed reason is a repeated LLM
  call.
- `inspect` reads the latest checkpoint through the checkpointer from the store; its
  checkpoint count and bytes are counted by the store itself. The memory saver's
  store is the worker's memory: `inspect` asks that worker's checkpointer, and a
  restarted worker's fresh saver knows nothing, which is what it should show.

What a killed worker costs (tests/backends/langgraph/test_langgraph_crash.py): `sync`
re-runs at most the node in flight; `async` resumes from the last checkpoint, but
nothing makes the graph wait for its saver, so under load that checkpoint can be
several steps behind and all of them run again; `exit` re-runs the whole invocation;
the memory saver loses every run the worker held (finished ones are gone for good).
"""

from __future__ import annotations

import asyncio
import contextlib
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Annotated, Any

import aiohttp
from langgraph.checkpoint.base import BaseCheckpointSaver
from pydantic import Field

from backends.base import BackendEnv, Guarantees, RunSpec, mask_dsn
from backends.langgraph.crashpoints import crash_points_for
from backends.langgraph.graph import AgentGraph, ThreadView, compile_graph, read_thread
from backends.langgraph.queue import (
    CLAIM_BATCH,
    FINAL_STATUSES,
    LEASE_S,
    POLL_INTERVAL_S,
    ClaimQueue,
)
from backends.langgraph.savers import (
    DURABILITIES,
    LANGGRAPH_DEFAULT_DURABILITY,
    SAVER_CLASSES,
    SAVERS,
    package_versions,
)
from backends.langgraph.signals import DoneWatcher, wake_workers
from backends.langgraph.store import (
    DSN_ENV,
    StoreSpec,
    check_sqlite_writable,
    sqlite_synchronous,
)
from backends.langgraph.variants import footprint, open_claims, open_saver
from backends.langgraph.worker import LangGraphWorkerOptions
from backends.options import BackendOptions, Workers
from backends.workercli import WorkerArgs
from harness.errors import BackendError
from harness.failpoints import BackendCrashPoint
from harness.platform.base import ComponentSpec, free_port
from harness.postgres import worker_dsn
from harness.scenario import Scenario
from harness.state import PersistedRun

__all__ = ["LangGraphBackend"]

DEFAULT_SAVER = "sqlite"  # bare `langgraph`: durable, and needs no server
WAIT_POLL_S = 0.05
CLEANUP_WAIT_S = 10.0


class LangGraphBackendOptions(BackendOptions):
    """`langgraph[:SAVER][?durability=MODE&workers=N&path=FILE]`; the saver and the
    durability mode are checked against LangGraph's own by the constructor."""

    variant: Annotated[str, Field(min_length=1)] | None = None
    durability: Annotated[str, Field(min_length=1)] | None = None
    workers: Workers | None = None
    path: Annotated[str, Field(min_length=1)] | None = None


class LangGraphBackend:
    """`langgraph[:memory|sqlite|postgres][?durability=exit|async|sync&workers=N&path=F]`;
    bare `langgraph` is the SQLite saver, and no durability option LangGraph's default."""

    Options = LangGraphBackendOptions
    WORKER_MODULE = "backends.langgraph.worker"  # what each worker process runs
    COMPONENT_PREFIX = "langgraph"

    def __init__(
        self,
        variant: str | None = None,
        durability: str | None = None,
        workers: int | None = None,
        path: str | None = None,
    ) -> None:
        saver = variant or DEFAULT_SAVER
        if saver not in SAVERS:
            raise BackendError(f"langgraph: unknown saver {saver!r}; savers: {', '.join(SAVERS)}")
        if durability is not None and durability not in DURABILITIES:
            raise BackendError(
                f"langgraph: unknown durability mode {durability!r}; "
                f"durability modes: {', '.join(DURABILITIES)}"
            )
        if path is not None and saver != "sqlite":
            raise BackendError(f"langgraph:{saver}: the path option is for langgraph:sqlite")
        self._workers_override = workers
        self.variant = saver
        self.durability = durability
        self._path = Path(path) if path else None
        options = [
            f"{k}={v}"
            for k, v in (("durability", durability), ("workers", workers), ("path", path))
            if v
        ]
        # the name as the user wrote it (in canonical option order): the runner files
        # results under that name and the workers label their measurement rows with it
        self.name = ("langgraph:" + variant if variant else "langgraph") + (
            "?" + "&".join(options) if options else ""
        )
        self._store: StoreSpec | None = None
        self._worker_urls: dict[str, str] = {}
        self._scenario: Scenario | None = None
        self._bench_id = ""
        self._stack: AsyncExitStack | None = None
        self._claims: ClaimQueue | None = None
        self._saver: BaseCheckpointSaver[Any] | None = None
        self._graph: AgentGraph | None = None
        self._http: aiohttp.ClientSession | None = None
        self._done: DoneWatcher | None = None
        self._wakes: set[asyncio.Task[None]] = set()
        self._synchronous: str | None = None

    def crash_points(self) -> list[BackendCrashPoint]:
        """HasCrashPoints: around each saver write, as this saver and mode reach them."""
        return crash_points_for(self.variant, self.durability or LANGGRAPH_DEFAULT_DURABILITY)

    @property
    def shares_files_with_workers(self) -> bool:
        """sqlite and memory: the harness and the workers open the same SQLite files (the
        checkpoints, the claim table), so both must see one filesystem."""
        return self.variant != "postgres"

    # -- components -----------------------------------------------------------------

    def _resolve_store(self, env: BackendEnv) -> tuple[StoreSpec, list[ComponentSpec]]:
        if self.variant == "memory":
            claims = env.workdir / "langgraph-claims.sqlite"
            check_sqlite_writable(claims, self.name)
            return StoreSpec("memory", claims_path=claims), []
        if self.variant == "sqlite":
            path = self._path or env.workdir / "langgraph.sqlite"
            # the claim table in a file of its own beside the checkpoints: its writes
            # (the harness's starts, the workers' claims) never wait on the saver's lock
            claims = path.with_name(f"{path.stem}-claims.sqlite")
            check_sqlite_writable(path, self.name)
            check_sqlite_writable(claims, self.name)
            return StoreSpec("sqlite", sqlite_path=path, claims_path=claims), []
        from backends.langgraph.pg import postgres_store

        return postgres_store(env, self.name)

    def components(self, env: BackendEnv) -> list[ComponentSpec]:
        store, specs = self._resolve_store(env)
        self._store = store
        count = self._workers_override or env.scenario.workers
        for index in range(count):
            port = free_port()
            slot = f"worker-{index}"
            self._worker_urls[slot] = f"http://127.0.0.1:{port}"
            options = LangGraphWorkerOptions(
                variant=self.variant,
                durability=self.durability,
                sqlite_path=store.sqlite_path,
                claims_path=store.claims_path,
                schema=store.schema,
            )
            worker = WorkerArgs.for_env(env, self.name, slot, options, port)
            specs.append(
                ComponentSpec(
                    name=f"{self.COMPONENT_PREFIX}-{self.variant}-worker-{index}",
                    role="worker",
                    argv=worker.command(self.WORKER_MODULE),
                    port=port,
                    health_url=f"http://127.0.0.1:{port}/health",
                    env={DSN_ENV: worker_dsn(env, store.dsn)} if store.dsn else {},
                    restart=True,
                    ready_timeout_s=60.0,
                )
            )
        return specs

    # -- lifecycle --------------------------------------------------------------------

    async def setup(self, env: BackendEnv) -> None:
        if self._store is None:
            self._store, _ = self._resolve_store(env)
        self._scenario = env.scenario
        self._bench_id = env.bench_id
        self._stack = stack = AsyncExitStack()
        self._claims = await stack.enter_async_context(open_claims(self._store))
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
        self._http = await stack.enter_async_context(aiohttp.ClientSession(connector=connector))
        self._done = DoneWatcher(self._http, self._worker_urls.values())
        self._done.start()
        stack.push_async_callback(self._done.close)
        if self.variant != "memory":
            self._saver = await stack.enter_async_context(open_saver(self._store))
            self._graph = compile_graph(env.scenario, self._saver)
        if self._store.sqlite_path is not None:
            self._synchronous = await sqlite_synchronous(self._store.sqlite_path)

    @property
    def guarantees(self) -> Guarantees:
        """Durable unless the saver is in memory (a killed worker loses its threads); an
        act re-run after a crash keeps its key (`run/step/attempt` from the state)."""
        return Guarantees(durable=self.variant != "memory", stable_act_keys=True)

    @property
    def claims(self) -> ClaimQueue:
        if self._claims is None:
            raise BackendError(f"{self.name} used before setup()")
        return self._claims

    def thread_id(self, run_id: str) -> str:
        return f"{self._bench_id}-{run_id}"

    async def start(self, run: RunSpec) -> None:
        await self.claims.enqueue(self.thread_id(run.run_id), run.run_id)
        self._wake_workers()

    def _wake_workers(self) -> None:
        """The row is durable: wake the workers (not awaited; they poll anyway)."""
        if self._http is None or not self._worker_urls:
            return
        task = asyncio.create_task(wake_workers(self._http, self._worker_urls.values()))
        self._wakes.add(task)
        task.add_done_callback(self._wakes.discard)

    async def wait(self, run_id: str, timeout_s: float) -> bool:
        thread_id = self.thread_id(run_id)

        async def finished() -> bool:
            claim = await self.claims.get(thread_id)
            return claim is not None and claim.status in FINAL_STATUSES

        if self._done is None:
            raise BackendError(f"{self.name} used before setup()")
        return await self._done.wait(thread_id, timeout_s, finished)

    async def approve(self, run_id: str) -> None:
        await self.claims.approve(self.thread_id(run_id))
        self._wake_workers()

    async def inspect(self, run_id: str) -> PersistedRun:
        thread_id = self.thread_id(run_id)
        claim = await self.claims.get(thread_id)
        extra: dict[str, Any] = {"thread_id": thread_id}
        if claim is not None:
            extra |= {"claim_status": claim.status, "claims": claim.claims}
            if claim.error:
                extra["error"] = claim.error
        try:
            view = await self._read(thread_id, claim.slot if claim else None)
        except (aiohttp.ClientError, TimeoutError) as exc:
            extra["error"] = f"cannot read the thread: {type(exc).__name__}: {exc}"
            return PersistedRun(run_id, None, extra=extra)
        persisted = view.persisted(run_id)
        return PersistedRun(
            run_id, persisted.state, persisted.bytes_persisted, persisted.history_length, extra
        )

    async def _read(self, thread_id: str, slot: str | None) -> ThreadView:
        if self.variant == "memory":
            url = self._worker_urls.get(slot or "")
            if url is None or self._http is None:
                return ThreadView(None, False, 0, 0)  # never claimed: nothing anywhere
            async with self._http.get(f"{url}/threads/{thread_id}") as response:
                response.raise_for_status()
                return ThreadView.from_dict(await response.json())
        assert self._saver is not None and self._graph is not None and self._scenario is not None
        checkpoints, size = await footprint(self._saver, thread_id)
        return await read_thread(self._graph, self._scenario, thread_id, checkpoints, size)

    async def cleanup_stale(self, ttl_s: float) -> int:
        """Runs parked for approval longer than `ttl_s` are expired by a worker (the same
        path as the scenario's TTL); returns how many runs the TTL policy expired."""
        if ttl_s > 0 and await self.claims.expire_overdue(ttl_s):
            loop = asyncio.get_running_loop()
            deadline = loop.time() + CLEANUP_WAIT_S
            while await self.claims.count("waiting_approval") and loop.time() < deadline:
                await asyncio.sleep(WAIT_POLL_S)
        return await self.claims.count("expired")

    async def teardown(self) -> None:
        for task in list(self._wakes):
            task.cancel()
        if self._stack is not None:
            with contextlib.suppress(Exception):
                await self._stack.aclose()
        self._stack = self._claims = self._saver = self._graph = self._http = self._done = None

    def describe(self) -> dict[str, Any]:
        store = self._store
        location: str | None = None
        claim_store: str | None = None  # the claim table's file, or the Postgres schema
        if store is not None:
            claim_store = f"postgres ({store.schema})" if store.dsn else str(store.claims_path)
            if store.dsn:
                location = mask_dsn(store.dsn)
            elif store.sqlite_path:
                location = str(store.sqlite_path)
        return {
            "variant": self.variant,
            "saver": SAVER_CLASSES[self.variant],
            "durability": self.durability or LANGGRAPH_DEFAULT_DURABILITY,
            "durability_source": "option" if self.durability else "langgraph default",
            "store": location,
            "schema": store.schema if store else None,
            "sqlite_synchronous": self._synchronous,
            "workers": len(self._worker_urls),
            "claim_table": {
                "store": claim_store,
                "lease_s": LEASE_S,
                "poll_s": POLL_INTERVAL_S,
                "batch": CLAIM_BATCH,
            },
            "commit_row": "after the saver's aput of the first checkpoint holding the step",
            "history_channel": "list with operator.add reducer (whole list per checkpoint)",
            "approval": "interrupt() + Command(resume=...); TTL expiry by the workers",
            "versions": package_versions(),
        }
