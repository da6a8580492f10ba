"""Real Temporal for tests and benchmarks: a dev server, and a backend stack driven directly.

The dev server runs with its history-count limit lowered (HISTORY_COUNT_LIMIT
instead of 51,200 events) so a long-horizon run reaches it in seconds; every
other test stays far below it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backends.base import BackendEnv, ExternalServices
from backends.temporal import TemporalBackend
from backends.temporal.connection import ConnectSettings, connect_until_ready, run_blocking
from backends.temporal.server import ServerPlan, plan_server
from harness.platform.local import LocalPlatform
from harness.runner import service_specs
from harness.scenario import Scenario, load_scenario

__all__ = ["HISTORY_COUNT_LIMIT", "DevServer", "Stack", "dev_server", "temporal_stack"]

HISTORY_COUNT_LIMIT = 1000
SERVER_READY_S = 90.0


@dataclass(frozen=True)
class DevServer:
    plan: ServerPlan
    platform: LocalPlatform

    @property
    def address(self) -> str:
        return self.plan.address

    def external(self, **overrides: Any) -> ExternalServices:
        return ExternalServices(temporal_address=self.address, **overrides)


@contextmanager
def dev_server(workdir: Path) -> Iterator[DevServer]:
    """A real `temporal server start-dev` process, answering before this yields."""
    with LocalPlatform(workdir) as platform:
        plan = plan_server(
            workdir,
            dynamic_config={
                "limit.historyCount.error": str(HISTORY_COUNT_LIMIT),
                "limit.historyCount.warn": str(HISTORY_COUNT_LIMIT // 2),
            },
        )
        platform.start(plan.spec)
        run_blocking(connect_until_ready(ConnectSettings(plan.address), SERVER_READY_S))
        yield DevServer(plan, platform)


@dataclass(frozen=True)
class Stack:
    """Services, workers and a set-up backend, for tests that call the backend API."""

    backend: TemporalBackend
    env: BackendEnv
    platform: LocalPlatform
    scenario: Scenario


def backend_env(path: Path, workdir: Path, platform: LocalPlatform, address: str) -> BackendEnv:
    scenario = load_scenario(path)
    started = {s.role: platform.start(s) for s in service_specs(scenario, path, workdir)}
    return BackendEnv(
        scenario=scenario,
        scenario_path=path,
        bench_id=f"test-{uuid.uuid4().hex[:10]}",
        llm_url=f"http://127.0.0.1:{started['llm'].spec.port}/v1",
        tools_url=f"http://127.0.0.1:{started['tools'].spec.port}",
        workdir=workdir,
        measurements_dir=workdir / "measurements",
        external=ExternalServices(temporal_address=address),
    )


@asynccontextmanager
async def temporal_stack(
    path: Path, workdir: Path, address: str, **options: str
) -> AsyncIterator[Stack]:
    """LLM, tools and Temporal workers as real processes; the backend set up on them."""
    with LocalPlatform(workdir) as platform:
        env = backend_env(path, workdir, platform, address)
        backend = TemporalBackend(**options)
        for spec in backend.components(env):
            platform.start(spec)
        await backend.setup(env)
        try:
            yield Stack(backend, env, platform, env.scenario)
        finally:
            await backend.teardown()
