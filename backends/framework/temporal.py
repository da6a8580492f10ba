"""A framework's Temporal integration as a durabench backend: the Temporal backend's
server, connection, worker supervision, start/wait and cleanup, with the framework's
workflow and worker instead of the hand-written ones.

`inspect` reads what Temporal persisted: the workflow result once the run closed, else
the `state` query (answered by a worker replaying the history), else the history itself
folded by the framework (`state_from_history`), since the agent's conversation is in
its recorded activity inputs and results.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from backends.base import BackendEnv, Guarantees, RunSpec
from backends.framework.messages import STATE_QUERY, FrameworkInput
from backends.framework.versions import package_versions
from backends.options import BackendOptions, Seconds, Workers
from backends.temporal.backend import (
    DEFAULT_HEARTBEAT_S,
    QUERY_TIMEOUT_S,
    RETRY_INTERVAL_S,
    START_RETRY_S,
    TRANSIENT,
    WORKER_READY_TIMEOUT_S,
    TemporalBackend,
)
from backends.temporal.history import persisted_from_history
from backends.temporal.worker import TemporalWorkerOptions
from backends.workercli import WorkerArgs
from harness.errors import BackendError
from harness.failpoints import BackendCrashPoint
from harness.platform.base import ComponentSpec, free_port
from harness.state import PersistedRun, RunState

__all__ = [
    "FrameworkTemporalBackend",
    "FrameworkTemporalOptions",
    "FrameworkWorkerOptions",
    "connect_with_plugins",
    "package_versions",
]


class FrameworkTemporalOptions(BackendOptions):
    """`NAME:temporal?workers=N&heartbeat_s=S&task_timeout_s=S&sticky_s=S`."""

    variant: str = "temporal"
    workers: Workers | None = None
    heartbeat_s: Seconds | None = None
    task_timeout_s: Seconds | None = None
    sticky_s: Seconds | None = None


@dataclass(frozen=True)
class FrameworkWorkerOptions(TemporalWorkerOptions):
    """The Temporal worker's options plus the activity timeouts the agent is built with."""

    heartbeat_s: float = DEFAULT_HEARTBEAT_S
    start_to_close_s: float = 120.0


class FrameworkTemporalBackend(TemporalBackend):
    """Subclasses name the framework: `name`, `worker_module`, `workflow_name`,
    `packages`, `stage`, `crash_point_list`, and how to fold an open run's history."""

    Options = FrameworkTemporalOptions  # type: ignore[assignment]
    guarantees = Guarantees(durable=True, stable_act_keys=True)
    worker_module = ""
    workflow_name = ""
    packages: tuple[str, ...] = ()
    stage = ""  # the integration's release stage, as its documentation states it
    crash_point_list: tuple[BackendCrashPoint, ...] = ()

    def __init__(
        self,
        variant: str = "temporal",
        workers: int | None = None,
        heartbeat_s: float | None = None,
        task_timeout_s: float | None = None,
        sticky_s: float | None = None,
    ) -> None:
        if variant != "temporal":
            raise BackendError(f"{self.name}: unknown variant {variant!r}; variants: temporal")
        super().__init__(workers, "v1", heartbeat_s, task_timeout_s, sticky_s)

    # -- workers --------------------------------------------------------------------

    def crash_points(self) -> list[BackendCrashPoint]:
        return list(self.crash_point_list)

    def versions(self) -> list[str]:
        return ["v1"]

    def worker_components(self, env: BackendEnv, version: str) -> list[ComponentSpec]:
        if version != "v1":
            raise BackendError(f"{self.name}: one workflow code version only (v1)")
        return [self._worker_spec(env, name, i) for i, name in enumerate(self._worker_names)]

    def _worker_spec(
        self, env: BackendEnv, name: str, index: int, version: str | None = None
    ) -> ComponentSpec:
        assert self._settings is not None
        port = free_port()
        base = TemporalWorkerOptions.of(
            self._worker_settings(env), self.task_queue, "v1", self.sticky_s
        )
        policy = self.policy
        options = FrameworkWorkerOptions(
            **dataclasses.asdict(base),
            heartbeat_s=policy.heartbeat_s,
            start_to_close_s=policy.start_to_close_s,
        )
        args = WorkerArgs.for_env(env, self.name, f"worker-{index}", options, port)
        return ComponentSpec(
            name=name,
            role="worker",
            argv=args.command(self.worker_module),
            port=port,
            health_url=f"http://127.0.0.1:{port}/health",
            restart=True,
            ready_timeout_s=WORKER_READY_TIMEOUT_S,
        )

    async def setup(self, env: BackendEnv) -> None:
        if env.scenario.approval is not None:
            raise BackendError(
                f"{self.name}: the scenario asks for a human approval, which this framework "
                "backend does not model; run it on temporal, pgstore or langgraph"
            )
        await super().setup(env)

    # -- runs -----------------------------------------------------------------------

    async def start(self, run: RunSpec) -> None:
        scenario = self.env.scenario
        spec = FrameworkInput(
            run_id=run.run_id,
            scenario_name=scenario.name,
            steps=scenario.steps,
            on_failure=scenario.verify.on_failure,
            max_attempts=scenario.verify.max_attempts,
        )
        loop = asyncio.get_running_loop()
        give_up = loop.time() + min(START_RETRY_S, run.deadline_s)
        while True:
            try:
                await self.client.start_workflow(
                    self.workflow_name,
                    spec,
                    id=self.workflow_id(run.run_id),
                    task_queue=self.task_queue,
                    task_timeout=timedelta(seconds=self.task_timeout_s),
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                    id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                )
                break
            except WorkflowAlreadyStartedError:
                break
            except RPCError as exc:
                if exc.status not in TRANSIENT or loop.time() >= give_up:
                    raise
                await asyncio.sleep(RETRY_INTERVAL_S)
        self._started.add(run.run_id)

    async def approve(self, run_id: str) -> None:
        raise BackendError(f"{self.name}: no human-approval step in this framework backend")

    def state_from_history(self, run_id: str, events: list[Any]) -> RunState | None:
        """The run state folded from an open run's recorded events (None: cannot tell)."""
        return None

    async def inspect(self, run_id: str) -> PersistedRun:
        handle = self.handle(run_id)
        try:
            history = await handle.fetch_history()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return PersistedRun(run_id, None, 0, 0, extra={"error": "no such workflow"})
            return PersistedRun(run_id, None, extra={"error": f"fetch_history: {exc.message}"})
        persisted = persisted_from_history(run_id, history, self.client.data_converter)
        status = persisted.extra.get("temporal_status")
        if status == "COMPLETED":
            return persisted
        extra = dict(persisted.extra)
        state: RunState | None = None
        if status == "RUNNING":
            try:
                data = await handle.query(
                    STATE_QUERY, result_type=dict, rpc_timeout=timedelta(seconds=QUERY_TIMEOUT_S)
                )
                state, extra["source"] = RunState.from_dict(data), "query"
            except (RPCError, TimeoutError) as exc:
                message = exc.message if isinstance(exc, RPCError) else repr(exc)
                extra["query_error"] = message[:500]
        if state is None:
            state = self.state_from_history(run_id, list(history.events))
            extra["source"] = "history"
        return PersistedRun(
            run_id, state, persisted.bytes_persisted, persisted.history_length, extra
        )

    def describe(self) -> dict[str, Any]:
        described = super().describe()
        for key in ("workflow_version", "phases"):
            described.pop(key, None)
        return {
            **described,
            "workflow": self.workflow_name,
            "framework_versions": package_versions(*self.packages),
            "release_stage": self.stage,
        }


def connect_with_plugins(base: Client, plugins: list[Any]) -> Client:
    """The same connection, with the framework's client plugins (its data converter)."""
    config = base.config()
    config["plugins"] = [*config.get("plugins", []), *plugins]
    return Client(**config)
