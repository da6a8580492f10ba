"""The Temporal backend: one workflow per agent run on a real Temporal server.

The runner only starts workflows, signals approvals and waits for results; the
worker processes (platform components, restarted when killed) do the work.
`inspect` reads what the *server* persisted: the workflow result when the run is
closed, a query (answered by replaying the persisted history) while it runs, and
the event history itself when no worker answers or the run was terminated.

Each durabench run owns a task queue and a workflow-id prefix derived from its
bench id, refuses to start when workflows with that prefix exist already, and
terminates its own leftovers in teardown (never anything else).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from backends.base import BackendEnv, Guarantees, RunSpec
from backends.options import BackendOptions, Seconds, Workers
from backends.temporal.connection import (
    ConnectSettings,
    connect,
    connect_until_ready,
    run_blocking,
)
from backends.temporal.crashpoints import CRASH_POINTS as TEMPORAL_CRASH_POINTS
from backends.temporal.history import HISTORY_LIMITS, persisted_from_history
from backends.temporal.messages import (
    APPROVE_SIGNAL,
    STATE_QUERY,
    WORKFLOW_NAME,
    AgentInput,
    TimeoutPolicy,
)
from backends.temporal.server import (
    SERVER_READY_TIMEOUT_S,
    SHARD_QUEUE_CONFIG,
    SQLITE_PRAGMAS,
    ServerPlan,
    plan_server,
    temporal_version,
)
from backends.temporal.versioning import WORKFLOW_VERSIONS
from backends.temporal.worker import TemporalWorkerOptions
from backends.workercli import WorkerArgs
from harness.errors import BackendError
from harness.failpoints import BackendCrashPoint
from harness.platform.base import ComponentSpec, free_port
from harness.state import PersistedRun, RunState

__all__ = ["TemporalBackend", "TemporalBackendOptions"]

DEFAULT_HEARTBEAT_S = 5.0  # Temporal has no default; a killed act is retried after this
DEFAULT_TASK_TIMEOUT_S = 10.0  # Temporal's default workflow task timeout
DEFAULT_STICKY_S = 10.0  # the Python SDK's default sticky schedule-to-start timeout
QUERY_TIMEOUT_S = 5.0
START_RETRY_S = 30.0  # a start keeps trying while the server restarts
TRANSIENT = frozenset({RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED})
RETRY_INTERVAL_S = 0.2
WORKER_READY_TIMEOUT_S = 90.0  # a worker waits for a (re)starting server before polling


class TemporalBackendOptions(BackendOptions):
    """`temporal?workers=N&version=V&heartbeat_s=S&task_timeout_s=S&sticky_s=S`; the
    version is checked against the workflow codes that exist by the backend itself."""

    workers: Workers | None = None
    version: str = "v1"
    heartbeat_s: Seconds | None = None
    task_timeout_s: Seconds | None = None
    sticky_s: Seconds | None = None


def _positive(name: str, value: str | float | None, default: float) -> float:
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0 < number < float("inf"):
        raise BackendError(f"temporal: option {name}={value!r} must be a positive number")
    return number


class TemporalBackend:
    """Options (`temporal?key=value&...`): workers (count), version (v1, v2-unpatched,
    v2-patched: the workflow code the workers run), heartbeat_s, task_timeout_s, sticky_s."""

    Options = TemporalBackendOptions

    name = "temporal"
    guarantees = Guarantees(durable=True, stable_act_keys=True)

    def __init__(
        self,
        workers: int | str | None = None,
        version: str = "v1",
        heartbeat_s: float | str | None = None,
        task_timeout_s: float | str | None = None,
        sticky_s: float | str | None = None,
    ) -> None:
        if version not in WORKFLOW_VERSIONS:
            known = ", ".join(sorted(WORKFLOW_VERSIONS))
            raise BackendError(f"temporal: unknown version {version!r}; versions: {known}")
        self._workers_override = (
            int(_positive("workers", workers, 1)) if workers is not None else None
        )
        self.version = version
        self.heartbeat_s = _positive("heartbeat_s", heartbeat_s, DEFAULT_HEARTBEAT_S)
        self.task_timeout_s = _positive("task_timeout_s", task_timeout_s, DEFAULT_TASK_TIMEOUT_S)
        self.sticky_s = _positive("sticky_s", sticky_s, DEFAULT_STICKY_S)
        self._env: BackendEnv | None = None
        self._settings: ConnectSettings | None = None
        self._server: ServerPlan | None = None
        self._client: Client | None = None
        self._worker_names: list[str] = []
        self._started: set[str] = set()
        self.prefix = ""
        self.task_queue = ""

    # -- components and setup --------------------------------------------------------

    def _configure(self, env: BackendEnv) -> None:
        self._env = env
        self.prefix = f"durabench-{env.bench_id}"
        self.task_queue = self.prefix
        if env.external.temporal_address:
            self._settings = ConnectSettings.external(env.external)

    def components(self, env: BackendEnv) -> list[ComponentSpec]:
        self._configure(env)
        specs: list[ComponentSpec] = []
        if self._settings is not None:
            # one clear error now, before any worker tries (and fails) to connect
            run_blocking(connect(self._settings))
        else:
            self._server = plan_server(env.workdir, env.external.temporal_namespace)
            self._settings = ConnectSettings(self._server.address, env.external.temporal_namespace)
            specs.append(self._server.spec)
        count = self._workers_override or env.scenario.workers
        self._worker_names = [f"{self.name}-worker-{i}" for i in range(count)]
        specs += [self._worker_spec(env, name, i) for i, name in enumerate(self._worker_names)]
        return specs

    def _worker_settings(self, env: BackendEnv) -> ConnectSettings:
        """Workers dial the server over the `worker->server` link (the fault proxy's port
        when the scenario cuts that link); the harness's own client dials directly."""
        assert self._settings is not None
        host, _, port = self._settings.address.rpartition(":")
        dial_host, dial_port = env.dial("worker->server", host, int(port))
        return dataclasses.replace(self._settings, address=f"{dial_host}:{dial_port}")

    def crash_points(self) -> list[BackendCrashPoint]:
        """HasCrashPoints: Temporal's own durability boundaries (crashpoints.py)."""
        return list(TEMPORAL_CRASH_POINTS)

    def versions(self) -> list[str]:
        """Deployable: the workflow code versions, the running one first."""
        return [self.version, *(v for v in WORKFLOW_VERSIONS if v != self.version)]

    def worker_components(self, env: BackendEnv, version: str) -> list[ComponentSpec]:
        """Deployable: the same workers on another workflow version (a mid-run deploy)."""
        if version not in WORKFLOW_VERSIONS:
            known = ", ".join(WORKFLOW_VERSIONS)
            raise BackendError(f"temporal: unknown version {version!r}; versions: {known}")
        return [
            self._worker_spec(env, name, i, version) for i, name in enumerate(self._worker_names)
        ]

    def _worker_spec(
        self, env: BackendEnv, name: str, index: int, version: str | None = None
    ) -> ComponentSpec:
        assert self._settings is not None
        port = free_port()
        options = TemporalWorkerOptions.of(
            self._worker_settings(env), self.task_queue, version or self.version, self.sticky_s
        )
        args = WorkerArgs.for_env(env, self.name, f"worker-{index}", options, port)
        return ComponentSpec(
            name=name,
            role="worker",
            argv=args.command("backends.temporal.worker"),
            port=port,
            health_url=f"http://127.0.0.1:{port}/health",
            restart=True,
            ready_timeout_s=WORKER_READY_TIMEOUT_S,
        )

    @property
    def server(self) -> ServerPlan | None:
        """The embedded server's plan (None with an external address)."""
        return self._server

    @property
    def client(self) -> Client:
        if self._client is None:
            raise BackendError("temporal backend used before setup()")
        return self._client

    @property
    def env(self) -> BackendEnv:
        if self._env is None:
            raise BackendError("temporal backend used before components() or setup()")
        return self._env

    @property
    def policy(self) -> TimeoutPolicy:
        deadline = self.env.scenario.deadline_s
        return TimeoutPolicy(start_to_close_s=deadline, heartbeat_s=min(self.heartbeat_s, deadline))

    async def setup(self, env: BackendEnv) -> None:
        if self._settings is None:  # set up without components(): an existing server only
            self._configure(env)
        if self._settings is None:
            raise BackendError("temporal: setup() before components() needs --temporal-address")
        self._client = await connect_until_ready(self._settings, SERVER_READY_TIMEOUT_S)
        query = f'WorkflowId STARTS_WITH "{self.prefix}-"'
        existing = await self._client.count_workflows(query)
        if existing.count:
            raise BackendError(
                f"temporal: {existing.count} workflow(s) with id prefix {self.prefix!r} already "
                f"exist in namespace {self._settings.namespace!r} on {self._settings.address}; "
                "refusing to mix two durabench runs (use a fresh bench id)"
            )

    # -- runs --------------------------------------------------------------------------

    def workflow_id(self, run_id: str) -> str:
        return f"{self.prefix}-{run_id}"

    def handle(self, run_id: str) -> WorkflowHandle[Any, Any]:
        return self.client.get_workflow_handle(self.workflow_id(run_id))

    async def start(self, run: RunSpec) -> None:
        scenario = self.env.scenario
        approval = scenario.approval
        spec = AgentInput(
            run_id=run.run_id,
            steps=scenario.steps,
            on_failure=scenario.verify.on_failure,
            max_attempts=scenario.verify.max_attempts,
            policy=self.policy,
            approval_after_step=approval.after_step if approval else None,
            approval_ttl_s=approval.ttl_s if approval else None,
        )
        loop = asyncio.get_running_loop()
        give_up = loop.time() + min(START_RETRY_S, run.deadline_s)
        while True:
            try:
                await self.client.start_workflow(
                    WORKFLOW_NAME,
                    spec,
                    id=self.workflow_id(run.run_id),
                    task_queue=self.task_queue,
                    task_timeout=timedelta(seconds=self.task_timeout_s),
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                    id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                )
                break
            except WorkflowAlreadyStartedError:
                break  # an earlier attempt was accepted before its answer got lost
            except RPCError as exc:
                if exc.status not in TRANSIENT or loop.time() >= give_up:
                    raise
                await asyncio.sleep(RETRY_INTERVAL_S)
        self._started.add(run.run_id)

    async def wait(self, run_id: str, timeout_s: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        handle = self.handle(run_id)
        while (remaining := deadline - loop.time()) > 0:
            try:
                await asyncio.wait_for(handle.result(), remaining)
                return True
            except TimeoutError:
                return False
            except WorkflowFailureError:
                return True  # failed, terminated, timed out or cancelled: terminal all the same
            except RPCError as exc:
                if exc.status == RPCStatusCode.NOT_FOUND:
                    return False
                await asyncio.sleep(RETRY_INTERVAL_S)  # server restarting: keep waiting
        return False

    async def approve(self, run_id: str) -> None:
        """Signal the approval; retried while the server is unavailable (a signal is
        recorded once the server acknowledged it, so a retry after a lost answer may
        deliver it twice, which the workflow tolerates)."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + START_RETRY_S
        while True:
            try:
                await self.handle(run_id).signal(APPROVE_SIGNAL)
                return
            except RPCError as exc:
                if exc.status == RPCStatusCode.NOT_FOUND:
                    return  # the run ended before its approval step: nothing to approve
                if exc.status not in TRANSIENT or loop.time() >= give_up:
                    raise
                await asyncio.sleep(RETRY_INTERVAL_S)

    async def inspect(self, run_id: str) -> PersistedRun:
        handle = self.handle(run_id)
        try:
            history = await handle.fetch_history()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return PersistedRun(run_id, None, 0, 0, extra={"error": "no such workflow"})
            return PersistedRun(run_id, None, extra={"error": f"fetch_history: {exc.message}"})
        persisted = persisted_from_history(run_id, history, self.client.data_converter)
        if persisted.extra.get("temporal_status") != "RUNNING":
            return persisted
        try:
            data = await handle.query(
                STATE_QUERY, result_type=dict, rpc_timeout=timedelta(seconds=QUERY_TIMEOUT_S)
            )
        except (RPCError, TimeoutError) as exc:  # no live worker: the history says it all
            message = exc.message if isinstance(exc, RPCError) else repr(exc)
            return PersistedRun(
                run_id,
                persisted.state,
                persisted.bytes_persisted,
                persisted.history_length,
                {**persisted.extra, "query_error": message[:500]},
            )
        return PersistedRun(
            run_id,
            RunState.from_dict(data),
            persisted.bytes_persisted,
            persisted.history_length,
            {**persisted.extra, "source": "query"},
        )

    async def _running(self) -> list[str]:
        """Workflow ids of this durabench run that are still open."""
        ids = {self.workflow_id(r) for r in self._started}
        query = f'WorkflowId STARTS_WITH "{self.prefix}-" AND ExecutionStatus = "Running"'
        async for execution in self.client.list_workflows(query):
            ids.add(execution.id)
        running = []
        for wid in sorted(ids):
            try:
                description = await self.client.get_workflow_handle(wid).describe()
            except RPCError:
                continue
            if description.status == WorkflowExecutionStatus.RUNNING:
                running.append(wid)
        return running

    async def cleanup_stale(self, ttl_s: float) -> int:
        """Terminate this run's workflows still open after the wait (zombies); how many."""
        cleaned = 0
        for wid in await self._running():
            handle = self.client.get_workflow_handle(wid)
            description = await handle.describe()
            age = time.time() - description.start_time.timestamp()
            if age >= ttl_s:
                await handle.terminate(reason=f"durabench: stale after {age:.1f}s (ttl {ttl_s}s)")
                cleaned += 1
        return cleaned

    async def teardown(self) -> None:
        if self._client is None:
            return
        try:
            for wid in await self._running():
                await self._client.get_workflow_handle(wid).terminate(
                    reason="durabench teardown: leftover of this run"
                )
        except RPCError:
            pass  # the server is gone: nothing left to clean up on it
        self._client = None

    def describe(self) -> dict[str, Any]:
        policy = self.policy if self._env is not None else None
        settings = self._settings
        return {
            "server": "embedded dev server" if self._server else "external",
            "server_sqlite_pragmas": list(SQLITE_PRAGMAS) if self._server else None,
            "server_dynamic_config": dict(SHARD_QUEUE_CONFIG) if self._server else None,
            "temporal": temporal_version(Path(self._server.spec.argv[0])) if self._server else None,
            "connection": settings.describe() if settings else None,
            "task_queue": self.task_queue,
            "workflow_id_prefix": self.prefix,
            "workflow": WORKFLOW_NAME,
            "workflow_version": self.version,
            "workers": len(self._worker_names),
            "activity_policy": policy.__dict__ if policy else None,
            "workflow_task_timeout_s": self.task_timeout_s,
            "sticky_schedule_to_start_s": self.sticky_s,
            "phases": "reason, act, verify: activities; a step's commit row is written by "
            "the next reason activity, whose input records it (a local activity when none "
            "follows); approval: a local activity; measurement rows only",
            "history_limits": HISTORY_LIMITS,
        }
