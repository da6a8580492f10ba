"""`cloudflare`: the RAV agent as a Cloudflare Workflow, on the real workerd runtime that
`wrangler dev` runs locally (`cloudflare:local`, the default), or deployed to a real
account (`cloudflare:account`, account.py).

Locally, durabench starts one runtime component (runtime.py: wrangler dev in local
mode, its persist directory in the backend's work directory, free 127.0.0.1 ports for
the Worker, its inspector and the crash-point endpoint). It is the only process that
runs the agent, so it has the role `worker`: kill, evict and pause faults and crash
points hit it, and the supervisor restarts it on the same persist directory. `start`
creates an instance through the Worker's own route (which returns once the runtime has
stored it), `approve` sends the `approve` event, `wait` long-polls the instance's status,
and `inspect` reads the status and the persisted step outputs back through the Workflows
API (`instance.status()`), never from memory.

The local runtime is a simulator of the production service, not the service: after a
runtime restart it resumes no instance by itself (the instance stays `running` with the
steps it had; scenarios/known/cloudflare-*.yaml). An event sent to such an instance
wakes its engine, which replays the persisted steps and goes on: `recover=wake` makes
durabench do that for every open instance after each restart (what the production
control plane does for you), `recover=none` (the default) measures the runtime alone.

Options: `cloudflare?recover=none|wake&poll_ms=2000` (`workers` is accepted for every
backend's sake but the runtime is one process: only 1).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, Literal

from backends.base import BackendEnv, Guarantees, RunSpec
from backends.cloudflare import account
from backends.cloudflare.client import InstanceApi, LocalApi, NoInstance, Snapshot
from backends.cloudflare.crashpoints import CRASH_POINTS
from backends.cloudflare.history import Recorded, state_from_outputs
from backends.cloudflare.install import PACKAGE_DIR, npm_version
from backends.cloudflare.install import missing as missing_install
from backends.cloudflare.settings import (
    AGENT,
    BASE_CONFIG,
    COMPATIBILITY_DATE,
    TERMINAL_STATUSES,
    RuntimeOptions,
    instance_id,
    spec_of,
    worker_config,
    write_config,
)
from backends.options import BackendOptions, Workers
from backends.workercli import WorkerArgs
from harness.errors import BackendError
from harness.failpoints import BackendCrashPoint
from harness.platform.base import ComponentSpec, free_port
from harness.state import PersistedRun

__all__ = ["CloudflareBackend", "CloudflareBackendOptions"]

log = logging.getLogger("durabench.cloudflare")

RUNTIME_READY_TIMEOUT_S = 120.0  # wrangler bundles the Worker and starts two workerds
WAKE_EVENT = "durabench-wake"  # a type no Workflow waits for: it only wakes the engine


class CloudflareBackendOptions(BackendOptions):
    """`cloudflare[:local|:account]?recover=none|wake&poll_ms=N` (module docstring);
    the account variant's own options are in account.py."""

    variant: Literal["local", "account"] = "local"
    workers: Workers | None = None
    recover: Literal["none", "wake"] = "none"
    poll_ms: int = 2000
    account_id_env: str = account.ACCOUNT_ENV
    token_env: str = account.TOKEN_ENV
    llm_url: str | None = None
    tools_url: str | None = None


class CloudflareBackend:
    """Cloudflare Workflows: one instance per agent run, reason/act/verify as step.do."""

    Options = CloudflareBackendOptions

    name = "cloudflare"

    def __init__(
        self,
        variant: str = "local",
        workers: int | None = None,
        recover: str = "none",
        poll_ms: int = 2000,
        account_id_env: str = account.ACCOUNT_ENV,
        token_env: str = account.TOKEN_ENV,
        llm_url: str | None = None,
        tools_url: str | None = None,
    ) -> None:
        if workers not in (None, 1):
            raise BackendError(
                f"cloudflare: workers={workers}: the runtime is one process (workerd runs "
                "every instance), so only workers=1"
            )
        self.variant = variant
        self.recover = recover
        self.poll_ms = poll_ms
        self.account = (
            account.AccountTarget(account_id_env, token_env, llm_url, tools_url)
            if variant == "account"
            else None
        )
        self._env: BackendEnv | None = None
        self._api: InstanceApi | None = None
        self.http_port = 0
        self._started: dict[str, float] = {}  # instance id -> when durabench created it
        self._boot: str | None = None
        self._wakes = 0
        self._watcher: asyncio.Task[None] | None = None

    @property
    def guarantees(self) -> Guarantees:
        """Locally: no instance resumes after a runtime restart, and only the runtime can
        read an instance back, so nothing survives the contract's killed worker. Act keys
        are stable (`run/step/attempt`) on both."""
        return Guarantees(durable=False, stable_act_keys=True)

    # -- names --------------------------------------------------------------------------

    @property
    def env(self) -> BackendEnv:
        if self._env is None:
            raise BackendError("cloudflare: components() must be called first")
        return self._env

    @property
    def api(self) -> InstanceApi:
        if self._api is None:
            raise BackendError("cloudflare backend used before setup()")
        return self._api

    @property
    def prefix(self) -> str:
        return f"db-{self.env.bench_id}"

    def instance(self, run_id: str) -> str:
        return instance_id(self.prefix, run_id)

    def spec(self, run_id: str) -> dict[str, Any]:
        return spec_of(self.env.scenario, run_id)

    @property
    def runtime_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    # -- lifecycle ----------------------------------------------------------------------

    def crash_points(self) -> list[BackendCrashPoint]:
        """HasCrashPoints: the Workflow's own boundaries (crashpoints.py); local only."""
        return list(CRASH_POINTS) if self.account is None else []

    def components(self, env: BackendEnv) -> list[ComponentSpec]:
        self._env = env
        if self.account is not None:
            self.account.check(env)
            return []
        problems = missing_install()
        if problems:
            raise BackendError(f"backend 'cloudflare' needs {'; '.join(problems)}")
        if env.scenario.llm.base_url is not None and env.scenario.llm.api_key_env:
            import os

            if os.environ.get(env.scenario.llm.api_key_env):
                raise BackendError(
                    "cloudflare: a real LLM provider with an API key is not supported on the "
                    "local runtime (the key would have to be written into the Worker's vars)"
                )
        env.workdir.mkdir(parents=True, exist_ok=True)
        config = write_config(
            env.workdir / BASE_CONFIG,
            worker_config(
                env.scenario,
                backend=self.name,
                worker="runtime",
                llm_url=env.llm_url,
                tools_url=env.tools_url,
            ),
        )
        self.http_port = free_port()
        options = RuntimeOptions(
            http_port=self.http_port,
            inspector_port=free_port(),
            control_port=free_port(),
            persist=env.workdir / "state",
            config=config,
        )
        args = WorkerArgs.for_env(env, self.name, "runtime", options)
        return [
            ComponentSpec(
                name=f"{self.name}-runtime",
                role="worker",
                argv=args.command("backends.cloudflare.runtime"),
                port=self.http_port,
                health_url=f"{self.runtime_url}/health",
                restart=True,
                ready_timeout_s=RUNTIME_READY_TIMEOUT_S,
            )
        ]

    async def setup(self, env: BackendEnv) -> None:
        self._env = env
        if self.account is not None:
            self._api = await self.account.deploy(env)
            return
        self._api = LocalApi(self.runtime_url)
        self._boot = await self._api.boot()
        if self.recover == "wake":
            self._watcher = asyncio.create_task(self._watch_restarts())

    async def _watch_restarts(self) -> None:
        """recover=wake: after each runtime restart (a new boot id), send every open
        instance an event no Workflow waits for; its engine wakes and replays."""
        while True:
            await asyncio.sleep(0.2)
            boot = await self.api.boot()
            if boot is None or boot == self._boot:
                continue
            self._boot = boot
            for instance in list(self._started):
                with contextlib.suppress(BackendError):
                    snapshot = await self.api.status(AGENT, instance)
                    if snapshot.status not in TERMINAL_STATUSES:
                        await self.api.send_event(AGENT, instance, WAKE_EVENT, None)
                        self._wakes += 1

    async def start(self, run: RunSpec) -> None:
        instance = self.instance(run.run_id)
        await self.api.create(AGENT, instance, self.spec(run.run_id))
        self._started[instance] = time.time()

    async def wait(self, run_id: str, timeout_s: float) -> bool:
        instance = self.instance(run_id)
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            ms = int(min(self.poll_ms, max(left * 1000, 1)))
            try:
                snapshot = await asyncio.wait_for(
                    self.api.wait(AGENT, instance, ms), timeout=left + 5
                )
            except (BackendError, TimeoutError) as exc:  # the runtime is down or restarting
                log.debug("cloudflare: waiting on %s: %s", instance, exc)
                await asyncio.sleep(min(0.25, max(left, 0)))
                continue
            if snapshot.status in TERMINAL_STATUSES:
                return True

    async def approve(self, run_id: str) -> None:
        """Send the `approve` event (an instance already ended ignores it)."""
        with contextlib.suppress(NoInstance):
            await self.api.send_event(AGENT, self.instance(run_id), "approve", {"approved": True})

    async def inspect(self, run_id: str) -> PersistedRun:
        instance = self.instance(run_id)
        try:
            snapshot: Snapshot = await self.api.status(AGENT, instance)
        except NoInstance:
            return PersistedRun(run_id, None, 0, 0, extra={"error": "no such instance"})
        recorded = Recorded(snapshot.outputs)
        state = state_from_outputs(self.spec(run_id), recorded, snapshot.status)
        extra: dict[str, Any] = {
            "workflow_status": snapshot.status,
            "recorded_steps": recorded.count,
        }
        if snapshot.error:
            extra["reason"] = str(snapshot.error)[:500]
        if isinstance(snapshot.output, dict):
            returned = {k: snapshot.output.get(k) for k in ("run_id", "status", "steps")}
            derived = {k: state.to_dict()[k] for k in ("run_id", "status", "steps")}
            extra["output_agrees"] = returned == derived
        return PersistedRun(run_id, state, snapshot.size, recorded.count, extra)

    async def cleanup_stale(self, ttl_s: float) -> int:
        """Terminate this run's instances still open and older than the TTL."""
        cleaned = 0
        now = time.time()
        for instance, created in list(self._started.items()):
            if now - created < ttl_s:
                continue
            with contextlib.suppress(BackendError):
                snapshot = await self.api.status(AGENT, instance)
                if snapshot.status not in TERMINAL_STATUSES:
                    await self.api.terminate(AGENT, instance)
                    cleaned += 1
        return cleaned

    async def teardown(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        if self._api is not None:
            await self._api.close()
            self._api = None

    def describe(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "variant": self.variant,
            "wrangler": npm_version("wrangler"),
            "workerd": npm_version("workerd"),
            "miniflare": npm_version("miniflare"),
            "compatibility_date": COMPATIBILITY_DATE,
            "worker": str(PACKAGE_DIR / "src"),
            "phases": "reason, act, verify: step.do each (reason and act with 4 step "
            "retries); commit: verify's output persisted; approval: step.waitForEvent "
            "with the TTL as timeout",
            "idempotency": "stable key per (run, step, attempt)",
        }
        if self.account is None:
            data.update(
                {
                    "runtime": "wrangler dev, local mode (workerd): a simulator of the "
                    "production service, not the service",
                    "persist_to": str(self.env.workdir / "state") if self._env else None,
                    "recover": self.recover,
                    "recovery": "none by the runtime: an instance of a killed runtime stays "
                    "running until something wakes it"
                    + (
                        "; durabench wakes every open instance after a restart"
                        if self.recover == "wake"
                        else ""
                    ),
                    "wakes_sent": self._wakes,
                }
            )
        else:
            data.update(self.account.describe())
        return data
