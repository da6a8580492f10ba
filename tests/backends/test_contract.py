"""The backend contract: what every backend must do, checked on every built-in one.

Each backend is driven through the `Backend` protocol alone, in the order the runner
uses (components, setup, start, wait, inspect, cleanup_stale, teardown), on a tiny
scenario against real services and workers. Every backend must bring every run to
the oracle's state and read it back with `inspect`, give each act an idempotency key
of its own, and fail a call made out of order with a BackendError. What a backend
declares in its `Guarantees` (backends/base.py) it is held to as well: a durable backend
reads its runs back with every worker stopped, and brings the runs of a worker killed
mid-step to the oracle's state; with stable act keys, the act executed again after
that kill carries its first key, and the tool applies it once.

Run it against your own backend (the built-in ones are then left out):
`DURABENCH_CONTRACT_BACKEND=mypkg.mod:MyBackend python -m pytest tests/backends/test_contract.py`
(several: comma-separated; options after `?` as on the command line). It is given
no external servers, so its `components` start what it needs.
"""

from __future__ import annotations

import asyncio
import json
import os
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from backends.base import (
    Backend,
    BackendEnv,
    ExternalServices,
    RunSpec,
    available_backends,
    guarantees_of,
    load_backend,
)
from harness.errors import BackendError
from harness.failpoints import ENV_DIR, ENV_POINTS, CrashPoint, format_points
from harness.oracle import expected_run, run_ids
from harness.platform.base import ComponentSpec
from harness.platform.local import LocalPlatform
from harness.state import LedgerEntry
from tests.conftest import ScenarioFactory, Services

pytestmark = pytest.mark.integration

ENV_BACKENDS = "DURABENCH_CONTRACT_BACKEND"
# built-in backend -> the session servers it runs against (no embedded server per test)
BUILTIN: dict[str, tuple[str, ...]] = {
    "baseline": (),
    "pgstore": ("postgres",),
    "pgstore-naive": ("postgres",),
    "temporal?heartbeat_s=1&sticky_s=1&task_timeout_s=2": ("temporal",),
    "langgraph:sqlite": (),
    "langgraph:memory": (),
    "langgraph:postgres": ("postgres",),
    "dbos": ("postgres",),
    "restate": (),  # its own embedded server per test (a second or two to start)
    "pydantic-ai:temporal?heartbeat_s=1&sticky_s=1&task_timeout_s=2": ("temporal",),
    "pydantic-ai:dbos": ("postgres",),
    "openai-agents:temporal?heartbeat_s=1&sticky_s=1&task_timeout_s=2": ("temporal",),
    "deepagents:sqlite": (),
    "deepagents:postgres": ("postgres",),
    "cloudflare": (),
}
# variants whose substrate another cell already holds to the contract in the default run
# (the same saver, engine or integration family); CI runs them with `-m slow`
SLOW = {"langgraph:memory", "langgraph:postgres", "deepagents:postgres", "pydantic-ai:dbos"}
SCENARIO: dict[str, Any] = {
    "runs": 4,
    "steps": 3,
    "load": {"concurrency": 4},
    "llm": {"latency": {"distribution": "constant", "ms": 1}},
    "verify": {"failure_probability": 0.3, "on_failure": "retry_act", "max_attempts": 3},
}
WAIT_S = 60.0
CRASH = CrashPoint("after_act", "run-000001", 1)  # the tool applied it, nothing committed


def _under_test() -> list[Any]:
    named = [n.strip() for n in os.environ.get(ENV_BACKENDS, "").split(",") if n.strip()]
    if named:
        return [pytest.param(n, (), id=n) for n in named]
    missing = available_backends()
    params = []
    for name, servers in BUILTIN.items():
        base = name.partition("?")[0]
        family = base if base in missing else base.partition(":")[0]
        lacks = missing.get(family, [])
        marks = [pytest.mark.skip(reason=f"needs {', '.join(lacks)}")] if lacks else []
        if base in SLOW:
            marks.append(pytest.mark.slow)
        params.append(pytest.param(name, servers, id=name.partition("?")[0], marks=marks))
    return params


def _durable(params: list[Any]) -> list[Any]:
    """The backends that declare durability: only they are held to it (baseline and the
    memory saver promise nothing across a killed worker, and are not asked to)."""
    kept = []
    for param in params:
        name = param.values[0]
        try:
            durable = guarantees_of(load_backend(name)).durable
        except BackendError:  # its dependencies are missing: keep it, with its skip mark
            durable = True
        if durable:
            kept.append(param)
    return kept


BACKENDS = pytest.mark.parametrize(("name", "servers"), _under_test())
DURABLE_BACKENDS = pytest.mark.parametrize(("name", "servers"), _durable(_under_test()))


@dataclass
class Session:
    backend: Backend
    env: BackendEnv
    platform: LocalPlatform
    specs: list[ComponentSpec]
    tools_url: str

    def ledger(self) -> list[LedgerEntry]:
        with urllib.request.urlopen(f"{self.tools_url}/ledger", timeout=10) as response:
            return [LedgerEntry.from_dict(e) for e in json.loads(response.read())]

    def stop_workers(self) -> None:
        for spec in self.specs:
            if spec.role == "worker":
                self.platform.stop(spec.name)

    async def run_all(self) -> list[str]:
        """Start every run of the scenario, then wait for each; the run ids."""
        ids = run_ids(self.env.scenario)
        for run_id in ids:
            await self.backend.start(RunSpec(run_id, self.env.scenario.deadline_s))
        finished = await asyncio.gather(*(self.backend.wait(r, WAIT_S) for r in ids))
        assert all(finished), dict(zip(ids, finished, strict=True))
        return ids


def _external(request: pytest.FixtureRequest, servers: tuple[str, ...]) -> ExternalServices:
    pg_dsn = request.getfixturevalue("pg_dsn") if "postgres" in servers else None
    temporal = request.getfixturevalue("temporal_server").address if "temporal" in servers else None
    return ExternalServices(pg_dsn=pg_dsn, temporal_address=temporal)


def _with_crash_point(spec: ComponentSpec, workdir: Path) -> ComponentSpec:
    if spec.role != "worker":
        return spec
    env = {**spec.env, ENV_POINTS: format_points([CRASH]), ENV_DIR: str(workdir / "failpoints")}
    return replace(spec, env=env)


@asynccontextmanager
async def session(
    name: str,
    services: Services,
    external: ExternalServices,
    *,
    crash: bool = False,
) -> AsyncIterator[Session]:
    """The backend's components running and the backend set up; torn down on exit."""
    backend = load_backend(name)
    workdir = services.workdir.parent / "backend"
    env = BackendEnv(
        scenario=services.scenario,
        scenario_path=services.scenario_path,
        bench_id=f"contract-{uuid.uuid4().hex[:8]}",
        llm_url=services.llm_url,
        tools_url=services.tools_url,
        workdir=workdir,
        measurements_dir=workdir / "measurements",
        external=external,
    )
    workdir.mkdir()
    with LocalPlatform(workdir) as platform:
        specs = backend.components(env)
        for spec in specs:
            platform.start(_with_crash_point(spec, workdir) if crash else spec)
        await backend.setup(env)
        try:
            yield Session(backend, env, platform, specs, services.tools_url)
        finally:
            await backend.teardown()


@pytest.fixture
def write_scenario(write_scenario: ScenarioFactory) -> ScenarioFactory:
    """The shared factory with the contract's scenario as its default (so `services` runs it)."""

    def write(name: str = "scenario.yaml", **overrides: Any) -> Path:
        return write_scenario(name, **{**SCENARIO, **overrides})

    return write


@BACKENDS
async def test_runs_reach_the_oracle_state_and_inspect_reads_it_back(
    name: str, servers: tuple[str, ...], services: Services, request: pytest.FixtureRequest
) -> None:
    async with session(name, services, _external(request, servers)) as s:
        ids = await s.run_all()
        if guarantees_of(s.backend).durable:
            s.stop_workers()  # what inspect returns must come from the store or server
        for run_id in ids:
            persisted = await s.backend.inspect(run_id)
            assert persisted.state == expected_run(s.env.scenario, run_id).state, run_id
        assert await s.backend.cleanup_stale(3600.0) >= 0
        json.dumps(s.backend.describe())  # the manifest can hold it
        keys: dict[str, set[tuple[str, int, int]]] = defaultdict(set)
        for entry in s.ledger():
            assert entry.idempotency_key, entry
            keys[entry.idempotency_key].add((entry.run_id, entry.step, entry.attempt))
        shared = {k: v for k, v in keys.items() if len(v) > 1}
        assert not shared, f"one key for several acts: {shared}"


@DURABLE_BACKENDS
async def test_a_killed_worker_s_runs_reach_the_oracle_state(
    name: str, servers: tuple[str, ...], services: Services, request: pytest.FixtureRequest
) -> None:
    promised = guarantees_of(load_backend(name))
    async with session(name, services, _external(request, servers), crash=True) as s:
        ids = await s.run_all()
        assert list((s.env.workdir / "failpoints").glob("*.fired")), "the crash point never fired"
        for run_id in ids:
            persisted = await s.backend.inspect(run_id)
            assert persisted.state == expected_run(s.env.scenario, run_id).state, run_id
        if promised.stable_act_keys:
            crashed = [e for e in s.ledger() if (e.run_id, e.step) == (CRASH.run_id, CRASH.step)]
            by_attempt: dict[int, list[LedgerEntry]] = defaultdict(list)
            for entry in crashed:
                by_attempt[entry.attempt].append(entry)
            assert len(crashed) > len(by_attempt), "the act was not executed again"
            for attempt, entries in by_attempt.items():
                assert len({e.idempotency_key for e in entries}) == 1, (attempt, entries)
                assert sum(e.applied for e in entries) == 1, (attempt, entries)


@BACKENDS
async def test_a_call_before_setup_is_a_backend_error(name: str, servers: tuple[str, ...]) -> None:
    backend = load_backend(name)
    with pytest.raises(BackendError):
        await backend.start(RunSpec("run-000000", 30.0))
    with pytest.raises(BackendError):
        await backend.inspect("run-000000")
