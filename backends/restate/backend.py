"""The Restate backend: one workflow invocation per agent run on a real Restate server.

The runner starts runs through the server's ingress (`/send`: accepted durably, the
workflow key makes a repeated start the same invocation), delivers approvals to the
workflow's shared `approve` handler (with an idempotency key) and attaches to each run
to wait for it. The workers (platform components, restarted when killed) serve the
agent service; durabench registers them with the admin API as one deployment (the
port they share). `inspect` reads what the *server* persisted, through the admin SQL
introspection API: the workflow's K/V state (the run, one key per committed step), the
invocation's status and its journal, with no worker involved.

Each durabench run registers its own service (`durabench_<bench id>`) and refuses to
start when a service of that name exists already; teardown kills only its own
invocations still open.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp

from backends.base import BackendEnv, Guarantees, RunSpec
from backends.options import BackendOptions, Count, Seconds, Workers
from backends.restate.client import (
    RestateClient,
    RestateHTTPError,
    ServerAddress,
    probe,
    sql_text,
    transient,
)
from backends.restate.crashpoints import CRASH_POINTS as RESTATE_CRASH_POINTS
from backends.restate.messages import (
    APPROVE_HANDLER,
    RUN_HANDLER,
    RUN_KEY,
    STEP_PREFIX,
    AgentInput,
    ServicePolicy,
    service_name,
)
from backends.restate.server import (
    SERVER_READY_TIMEOUT_S,
    SERVER_SETTINGS,
    ServerPlan,
    plan_server,
    restate_version,
)
from backends.restate.worker import RestateWorkerOptions
from backends.workercli import WorkerArgs
from harness.errors import BackendError
from harness.failpoints import BackendCrashPoint
from harness.platform.base import ComponentSpec, free_port
from harness.state import PersistedRun, RunState, StepRecord

__all__ = ["RestateBackend", "RestateBackendOptions"]

START_RETRY_S = 30.0  # a start keeps trying while the server restarts
INSPECT_RETRY_S = 30.0
RETRY_INTERVAL_S = 0.2
WORKER_READY_TIMEOUT_S = 60.0
ATTACH_SLICE_S = 30.0  # one attach request at most this long, then attach again
OPEN_STATUSES = ("pending", "scheduled", "ready", "running", "backing-off", "suspended", "paused")


class RestateBackendOptions(BackendOptions):
    """`restate?workers=N&retry_initial_s=S&retry_max_s=S&inactivity_timeout_s=S&
    abort_timeout_s=S&partitions=N`."""

    workers: Workers | None = None
    retry_initial_s: Seconds | None = None
    retry_max_s: Seconds | None = None
    inactivity_timeout_s: Seconds | None = None
    abort_timeout_s: Seconds | None = None
    partitions: Count | None = None


class RestateBackend:
    """Options (`restate?key=value&...`): workers (count); retry_initial_s, retry_max_s
    (the invocation retry policy after a failed attempt); inactivity_timeout_s,
    abort_timeout_s (when the server gives up a silent attempt; default: the server's);
    partitions (the embedded server's partition count at its first start)."""

    Options = RestateBackendOptions

    name = "restate"
    guarantees = Guarantees(durable=True, stable_act_keys=True)

    def __init__(
        self,
        workers: int | None = None,
        retry_initial_s: float | None = None,
        retry_max_s: float | None = None,
        inactivity_timeout_s: float | None = None,
        abort_timeout_s: float | None = None,
        partitions: int | None = None,
    ) -> None:
        defaults = ServicePolicy()
        self._workers_override = workers
        self.policy = ServicePolicy(
            retry_initial_s=retry_initial_s or defaults.retry_initial_s,
            retry_max_s=retry_max_s or defaults.retry_max_s,
            inactivity_timeout_s=inactivity_timeout_s,
            abort_timeout_s=abort_timeout_s,
        )
        self.partitions = partitions
        self._env: BackendEnv | None = None
        self._address: ServerAddress | None = None
        self._server: ServerPlan | None = None
        self._client: RestateClient | None = None
        self._worker_names: list[str] = []
        self._version = ""
        self.service = ""
        self.shared_port = 0
        self.deployment_uri = ""
        self.deployment_id = ""

    # -- components and setup --------------------------------------------------------

    def _configure(self, env: BackendEnv) -> None:
        self._env = env
        self.service = service_name(env.bench_id)
        ingress, admin = env.external.restate_ingress, env.external.restate_admin
        if bool(ingress) != bool(admin):
            raise BackendError(
                "restate: an existing server needs both --restate-ingress and --restate-admin"
            )
        if ingress and admin:
            self._address = ServerAddress.of(ingress, admin)

    def components(self, env: BackendEnv) -> list[ComponentSpec]:
        self._configure(env)
        specs: list[ComponentSpec] = []
        if self._address is not None:
            if self.partitions is not None:
                raise BackendError("restate: partitions= applies to the embedded server only")
            self._version = probe(self._address)  # one clear error before any worker starts
        else:
            self._server = plan_server(env.workdir, self.partitions)
            self._address = ServerAddress.of(self._server.ingress_url, self._server.admin_url)
            specs.append(self._server.spec)
        self.shared_port = free_port()
        # the server dials the workers: its connections go over the worker->server link
        host, port = env.dial("worker->server", "127.0.0.1", self.shared_port)
        self.deployment_uri = f"http://{host}:{port}"
        count = self._workers_override or env.scenario.workers
        self._worker_names = [f"{self.name}-worker-{i}" for i in range(count)]
        specs += [self._worker_spec(env, name, i) for i, name in enumerate(self._worker_names)]
        return specs

    def _worker_spec(self, env: BackendEnv, name: str, index: int) -> ComponentSpec:
        port = free_port()
        options = RestateWorkerOptions.of(self.service, self.shared_port, self.policy)
        args = WorkerArgs.for_env(env, self.name, f"worker-{index}", options, port)
        return ComponentSpec(
            name=name,
            role="worker",
            argv=args.command("backends.restate.worker"),
            port=port,
            health_url=f"http://127.0.0.1:{port}/health",
            restart=True,
            ready_timeout_s=WORKER_READY_TIMEOUT_S,
        )

    def crash_points(self) -> list[BackendCrashPoint]:
        """HasCrashPoints: Restate's own durability boundaries (crashpoints.py)."""
        return list(RESTATE_CRASH_POINTS)

    @property
    def env(self) -> BackendEnv:
        if self._env is None:
            raise BackendError("restate backend used before components() or setup()")
        return self._env

    @property
    def client(self) -> RestateClient:
        if self._client is None:
            raise BackendError("restate backend used before setup()")
        return self._client

    @property
    def address(self) -> ServerAddress | None:
        """The server's ingress and admin URLs (embedded or external), once configured."""
        return self._address

    @property
    def server(self) -> ServerPlan | None:
        """The embedded server's plan (None with an external server)."""
        return self._server

    async def setup(self, env: BackendEnv) -> None:
        if self._address is None:
            raise BackendError("restate: setup() before components()")
        client = RestateClient(self._address)
        self._client = client
        await client.wait_healthy(SERVER_READY_TIMEOUT_S)
        if await client.service(self.service) is not None:
            raise BackendError(
                f"restate: a service {self.service!r} exists already on "
                f"{self._address.admin_url}; refusing to mix two durabench runs "
                "(use a fresh bench id)"
            )
        try:
            answer = await client.register(self.deployment_uri)
        except RestateHTTPError as exc:
            raise BackendError(
                f"restate: registering the workers at {self.deployment_uri} failed: "
                f"{exc.message[:500]}"
            ) from None
        self.deployment_id = str(answer.get("id", ""))

    # -- runs --------------------------------------------------------------------------

    async def _retrying(self, what: str, call: Any, limit_s: float = START_RETRY_S) -> Any:
        """`await call()`, retried while the server restarts (connection refused, 5xx)."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + limit_s
        while True:
            try:
                return await call()
            except Exception as exc:
                if not transient(exc) or loop.time() >= give_up:
                    if isinstance(exc, BackendError):
                        raise
                    raise BackendError(f"restate: {what}: {type(exc).__name__}: {exc}") from None
            await asyncio.sleep(RETRY_INTERVAL_S)

    def _input(self, run_id: str) -> AgentInput:
        scenario = self.env.scenario
        approval = scenario.approval
        return AgentInput(
            run_id=run_id,
            steps=scenario.steps,
            on_failure=scenario.verify.on_failure,
            max_attempts=scenario.verify.max_attempts,
            approval_after_step=approval.after_step if approval else None,
            approval_ttl_s=approval.ttl_s if approval else None,
        )

    async def start(self, run: RunSpec) -> None:
        spec = self._input(run.run_id).to_dict()
        client = self.client
        await self._retrying(
            f"starting {run.run_id}",
            lambda: client.send(self.service, run.run_id, RUN_HANDLER, spec),
            min(START_RETRY_S, run.deadline_s),
        )

    async def wait(self, run_id: str, timeout_s: float) -> bool:
        """Attach to the workflow until it ends (any ending: completed or failed)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        url = self.client.attach_url(self.service, run_id)
        while (remaining := deadline - loop.time()) > 0:
            try:
                await self.client.request("GET", url, timeout_s=min(remaining, ATTACH_SLICE_S))
                return True
            except RestateHTTPError:
                # a workflow that ended with a failure answers an error too: ask the server
                if await self._ended(run_id):
                    return True
            except (aiohttp.ClientError, TimeoutError, ConnectionError):
                pass  # still running past this slice, or the server is restarting
            await asyncio.sleep(RETRY_INTERVAL_S)
        return False

    async def _ended(self, run_id: str) -> bool:
        try:
            invocation = await self._invocation(run_id)
        except (BackendError, aiohttp.ClientError, TimeoutError, ConnectionError):
            return False
        return invocation is not None and invocation.get("status") == "completed"

    async def approve(self, run_id: str) -> None:
        client = self.client
        await self._retrying(
            f"approving {run_id}",
            lambda: client.send(
                self.service, run_id, APPROVE_HANDLER, idempotency_key=f"approve-{run_id}"
            ),
        )

    # -- reading back ----------------------------------------------------------------------

    async def _invocation(self, run_id: str) -> dict[str, Any] | None:
        rows = await self.client.query(
            "SELECT id, status, journal_size, retry_count, completion_result, "
            "completion_failure, last_failure FROM sys_invocation "
            f"WHERE target_service_name = {sql_text(self.service)} "
            f"AND target_service_key = {sql_text(run_id)} "
            f"AND target_handler_name = {sql_text(RUN_HANDLER)}"
        )
        return rows[0] if rows else None

    async def _read(self, run_id: str) -> PersistedRun:
        client = self.client
        state_rows = await client.query(
            "SELECT key, value_utf8, length(value) AS bytes FROM state "
            f"WHERE service_name = {sql_text(self.service)} "
            f"AND service_key = {sql_text(run_id)}"
        )
        invocation = await self._invocation(run_id)
        extra: dict[str, Any] = {}
        journal_bytes, entries = 0, None
        if invocation is not None:
            extra = {
                "restate_status": invocation.get("status"),
                "invocation_id": invocation.get("id"),
                "retry_count": invocation.get("retry_count"),
                "completion_result": invocation.get("completion_result"),
            }
            for name in ("completion_failure", "last_failure"):
                if invocation.get(name):
                    extra[name] = str(invocation[name])[:500]
            entries = invocation.get("journal_size")
            journal = await client.query(
                "SELECT sum(raw_length) AS bytes FROM sys_journal "
                f"WHERE id = {sql_text(str(invocation['id']))}"
            )
            journal_bytes = int((journal[0].get("bytes") if journal else 0) or 0)
        values = {row["key"]: row for row in state_rows}
        run = values.get(RUN_KEY)
        if run is None:
            return PersistedRun(run_id, None, journal_bytes or None, entries, extra)
        state_bytes = sum(int(row.get("bytes") or 0) for row in state_rows)
        data = json.loads(run["value_utf8"])
        steps = sorted(
            (
                StepRecord.from_dict(json.loads(row["value_utf8"]))
                for key, row in values.items()
                if key.startswith(STEP_PREFIX)
            ),
            key=lambda s: s.index,
        )
        state = RunState(str(data["run_id"]), data["status"], tuple(steps), data["final_answer"])
        return PersistedRun(run_id, state, journal_bytes + state_bytes, entries, extra)

    async def inspect(self, run_id: str) -> PersistedRun:
        self.client  # noqa: B018 - before setup: a BackendError
        try:
            result: PersistedRun = await self._retrying(
                f"reading {run_id}", lambda: self._read(run_id), INSPECT_RETRY_S
            )
        except BackendError as exc:
            return PersistedRun(run_id, None, extra={"error": str(exc)[:500]})
        return result

    async def _open_invocations(self) -> list[dict[str, Any]]:
        statuses = ", ".join(sql_text(s) for s in OPEN_STATUSES)
        return await self.client.query(
            "SELECT id, target_service_key, created_at FROM sys_invocation "
            f"WHERE target_service_name = {sql_text(self.service)} "
            f"AND target_handler_name = {sql_text(RUN_HANDLER)} AND status IN ({statuses})"
        )

    async def cleanup_stale(self, ttl_s: float) -> int:
        """Kill this run's workflow invocations still open after the wait and older than
        the TTL (zombies); how many."""
        cleaned = 0
        for row in await self._open_invocations():
            created = _epoch(str(row.get("created_at", "")))
            if created is not None and time.time() - created >= ttl_s:
                await self.client.kill(str(row["id"]))
                cleaned += 1
        return cleaned

    async def teardown(self) -> None:
        if self._client is None:
            return
        try:
            for row in await self._open_invocations():
                await self._client.kill(str(row["id"]))
        except (BackendError, aiohttp.ClientError, TimeoutError, ConnectionError):
            pass  # the server is gone: nothing left to clean up on it
        await self._client.close()
        self._client = None

    def describe(self) -> dict[str, Any]:
        address = self._address
        embedded = self._server is not None
        return {
            "server": "embedded restate-server" if embedded else "external",
            "restate_server": restate_version(Path(self._server.spec.argv[0]))
            if self._server is not None
            else self._version or None,
            "server_settings": dict(SERVER_SETTINGS) if embedded else None,
            "partitions": self.partitions if self.partitions else "server default (24)",
            "ingress": address.ingress_url if address else None,
            "admin": address.admin_url if address else None,
            "service": self.service,
            "deployment_uri": self.deployment_uri,
            "workers_port": self.shared_port,
            "deployment_id": self.deployment_id,
            "workers": len(self._worker_names),
            "service_policy": self.policy.__dict__,
            "restate_sdk": _sdk_version(),
            "phases": "reason, act, verify: ctx.run durable steps (results journaled and "
            "acknowledged before the handler sees them); commit: the step's K/V state "
            "write after verify's acknowledgement; approval: a durable promise raced "
            "against a durable timer",
        }


def _epoch(text: str) -> float | None:
    """Seconds since the epoch of the query API's RFC 3339 timestamps."""
    from datetime import datetime

    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _sdk_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("restate-sdk")
    except PackageNotFoundError:
        return None
