"""The runner: one scenario on each backend in turn, from services up to verdicts.

For each backend: start the simulated LLM and the tool service (fresh, so every
backend sees the identical workload and its own ledger), start the backend's
components, drive the load (closed or open loop), wait for every run up to its
deadline, read back what was persisted, judge it, and write the results. What
was measured is written even when the run is interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, cast, runtime_checkable

import aiohttp
import pandas as pd

from backends.base import (
    Backend,
    BackendEnv,
    Deployable,
    ExternalServices,
    RunSpec,
    load_backend,
)
from harness.crashpoints import expand_crash_points
from harness.errors import BackendError, DryRunPlanned, DurabenchError
from harness.evaluate import judge_runs, summarize, with_exposure
from harness.faults import DeployFault, NetworkFault
from harness.floor import AFTER_PASS, BEFORE_PASS, record_floor
from harness.healing import ActiveFaults, default_state_dir
from harness.injectors import refuse_faults
from harness.injectors.crash_point import crash_point_records, with_crash_points
from harness.injectors.network import ProxyLinks
from harness.masking import mask_command
from harness.measure import read_rows
from harness.nemesis import CommitCounter, Nemesis
from harness.oracle import run_ids
from harness.platform import PLATFORMS, closing_platform, make_platform
from harness.platform.base import ComponentSpec, Handle, Platform, free_port
from harness.platform.capabilities import (
    CollectFiles,
    DryRun,
    LinkFaults,
    ReportsStarts,
    SharedFilesystem,
)
from harness.results import ResultsDir, collect_environment, new_bench_id
from harness.scenario import Scenario, load_scenario, resolve_scenario_path
from harness.workload import seeded_rng

__all__ = [
    "SESSION_OBSERVERS",
    "BackendSession",
    "BenchmarkRun",
    "LoadDriver",
    "RunTiming",
    "await_run",
    "default_driver",
    "drive_load",
    "inspect_all",
    "open_session",
    "record_backend",
    "service_specs",
    "start_run",
]

INSPECT_CONCURRENCY = 64
INTERRUPT_INSPECT_S = 20.0  # on an interrupt, how long the finished runs may take to inspect
COLLECT_TIMEOUT_S = 120.0  # reading a service's records (the ledger, the LLM call log)
ProgressFn = Callable[[str, int, int], None]  # (backend, runs finished, runs total)
# called with each BackendSession as it opens (live metrics, harness/metrics.py)
SESSION_OBSERVERS: list[Callable[[BackendSession], None]] = []


@dataclass(frozen=True)
class RunTiming:
    run_id: str
    started_at: float
    finished_at: float | None
    finished_in_time: bool
    start_error: str | None = None


def service_specs(scenario: Scenario, scenario_path: Path, workdir: Path) -> list[ComponentSpec]:
    specs = []
    python = sys.executable
    # the simulated provider, or the recording gateway in front of a real endpoint
    port = free_port()
    real = scenario.llm.base_url is not None
    module = "harness.services.gateway" if real else "harness.services.llm"
    specs.append(
        ComponentSpec(
            name="llm",
            role="llm",
            argv=(
                python,
                "-m",
                module,
                "--scenario",
                str(scenario_path),
                "--port",
                str(port),
                "--call-log",
                str(workdir / "llm_calls.jsonl"),
            ),
            port=port,
            health_url=f"http://127.0.0.1:{port}/health",
        )
    )
    port = free_port()
    specs.append(
        ComponentSpec(
            name="tools",
            role="tools",
            argv=(
                python,
                "-m",
                "harness.services.tools",
                "--scenario",
                str(scenario_path),
                "--port",
                str(port),
                "--ledger",
                str(workdir / "ledger.sqlite"),
            ),
            port=port,
            health_url=f"http://127.0.0.1:{port}/health",
        )
    )
    return specs


async def start_run(scenario: Scenario, backend: Backend, run_id: str) -> RunTiming | None:
    """Start one run through the backend's client; a RunTiming (with `start_error`) when the
    backend refused it, None when it accepted."""
    started = time.time()
    try:
        await backend.start(RunSpec(run_id, scenario.deadline_s))
    except Exception as exc:
        return RunTiming(run_id, started, None, False, f"{type(exc).__name__}: {exc}")
    return None


async def await_run(scenario: Scenario, backend: Backend, run_id: str, started: float) -> RunTiming:
    """Wait for a started run up to its deadline, approving it when the scenario says so."""
    approval = scenario.approval
    approver = None

    async def approve_later(delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        await backend.approve(run_id)

    if approval is not None and approval.delay_s is not None:
        approver = asyncio.create_task(approve_later(approval.delay_s))
    try:
        remaining = scenario.deadline_s - (time.time() - started)
        done = await backend.wait(run_id, max(0.0, remaining))
    finally:
        if approver is not None and not approver.done():
            approver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await approver
    if approver is not None and not approver.cancelled() and approver.exception() is not None:
        # the approval never reached the run: it would expire and be judged as the
        # backend's loss, so the adapter's failure is reported as what it is
        error = approver.exception()
        raise BackendError(f"{run_id}: the approval could not be delivered: {error}") from error
    finished = time.time()
    in_time = done and finished - started <= scenario.deadline_s
    return RunTiming(run_id, started, finished if done else None, in_time)


async def drive_load(
    scenario: Scenario,
    backend: Backend,
    on_finished: Callable[[int], None],
    ids: list[str] | None = None,
    finished: list[RunTiming] | None = None,
) -> list[RunTiming]:
    """Start every run (closed loop: `concurrency` in flight; open loop: Poisson arrivals
    at `arrival_rate`, drawn from the seed), and wait for each up to its deadline. Each
    finished run's timing is appended to `finished` as it finishes, so an interrupted
    load still says which runs ended."""
    ids = run_ids(scenario) if ids is None else ids
    timings: list[RunTiming] = [] if finished is None else finished
    limit = asyncio.Semaphore(scenario.load.concurrency or len(ids))

    async def one(run_id: str) -> None:
        async with limit:
            started = time.time()
            refused = await start_run(scenario, backend, run_id)
            timing = refused or await await_run(scenario, backend, run_id, started)
            timings.append(timing)
            on_finished(len(timings))

    tasks = []
    arrivals = seeded_rng(scenario.seed, "arrivals")
    for run_id in ids:
        if scenario.load.arrival_rate is not None:
            await asyncio.sleep(arrivals.expovariate(scenario.load.arrival_rate))
        tasks.append(asyncio.create_task(one(run_id)))
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
    return timings


async def inspect_all(backend: Backend, timings: list[RunTiming]) -> list[dict[str, Any]]:
    limit = asyncio.Semaphore(INSPECT_CONCURRENCY)

    async def one(timing: RunTiming) -> dict[str, Any]:
        found: dict[str, Any] = {"state": None, "inspect_error": None}
        what = "raised"  # a run whose inspect fails gets unknown verdicts, the others not
        try:
            async with limit:
                persisted = await backend.inspect(timing.run_id)
            what = "returned malformed state"
            found = {
                "state": persisted.state.to_dict() if persisted.state else None,
                "bytes_persisted": persisted.bytes_persisted,
                "history_length": persisted.history_length,
                "extra": dict(persisted.extra),
                "inspect_error": None,
            }
            json.dumps(found)  # what is stored must be JSON
        except Exception as exc:
            found = {
                "state": None,
                "inspect_error": f"inspect {what}: {type(exc).__name__}: {exc}"[:500],
            }
        return {
            "run_id": timing.run_id,
            **found,
            "started_at": timing.started_at,
            "finished_at": timing.finished_at,
            "finished_in_time": timing.finished_in_time,
            "start_error": timing.start_error,
        }

    return list(await asyncio.gather(*(one(t) for t in sorted(timings, key=lambda t: t.run_id))))


async def _fetch_json_lines(url: str) -> list[dict[str, Any]]:
    timeout = aiohttp.ClientTimeout(total=COLLECT_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as http, http.get(url) as response:
        response.raise_for_status()
        text = await response.text()
    if text.lstrip().startswith("["):
        rows: list[dict[str, Any]] = json.loads(text)
        return rows
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _ledger_rows(backend: str, ledger: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            **e,
            "backend": backend,
            "request": json.dumps(e["request"]),
            "response": json.dumps(e["response"]),
        }
        for e in ledger
    ]


def _direct(link: str, host: str, port: int) -> tuple[str, int]:
    return host, port


def _url(address: tuple[str, int]) -> str:
    return f"http://{address[0]}:{address[1]}"


@runtime_checkable
class SharesFilesWithWorkers(Protocol):
    """Optional backend capability: the harness and the workers open the same files."""

    @property
    def shares_files_with_workers(self) -> bool: ...


def _needs_proxy(scenario: Scenario, platform: Platform) -> bool:
    """Network faults go through the fault proxy, except on platforms that fault links
    themselves (Kubernetes: NetworkPolicies and Chaos Mesh)."""
    cuts_links = isinstance(platform, LinkFaults)
    return not cuts_links and any(isinstance(f, NetworkFault) for f in scenario.faults)


def _collector(platform: Platform, env: BackendEnv) -> Callable[[], None] | None:
    """How to bring the workers' measurement files and crash-point markers into the work
    directory, on platforms whose components write elsewhere (Kubernetes: `collect`)."""
    if not isinstance(platform, CollectFiles):
        return None
    paths = [str(env.measurements_dir.relative_to(env.workdir)), "failpoints"]
    return lambda: platform.collect(paths)


@dataclass(frozen=True)
class ProxyHandle:
    """The fault proxy of one backend run; `route` adds a link on first use. Blocking
    (backends call it from `components`): the runner calls it from a thread."""

    control_url: str

    def route(self, link: str, host: str, port: int) -> tuple[str, int]:
        if not (host.startswith("127.") or host == "localhost"):
            return host, port  # the proxy stays on loopback: remote links are not cut
        body = json.dumps({"name": link, "upstream_host": host, "upstream_port": port}).encode()
        request = urllib.request.Request(
            f"{self.control_url}/links",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return "127.0.0.1", int(json.loads(response.read())["listen_port"])


def _start_proxy(platform: Platform) -> ProxyHandle:
    control = free_port()
    platform.start(
        ComponentSpec(
            name="proxy",
            role="proxy",
            argv=(sys.executable, "-m", "harness.faultproxy", "--control-port", str(control)),
            port=control,
            health_url=f"http://127.0.0.1:{control}/health",
        )
    )
    return ProxyHandle(f"http://127.0.0.1:{control}")


def _deployer(
    backend: Backend, env: BackendEnv, platform: Platform, scenario: Scenario, workdir: Path
) -> Callable[[DeployFault], Awaitable[None]]:
    """How the `deploy` fault recreates the workers: from another image, on another code
    version (Deployable backends), or both. What cannot apply was refused before the
    run started (harness/injectors/deploy.py)."""

    def recreate(fault: DeployFault) -> None:
        running = {c.spec.name: c.spec for c in platform.components("worker")}
        specs = list(running.values())
        if fault.version is not None and isinstance(backend, Deployable):
            specs = backend.worker_components(env, fault.version)
        for spec in specs:
            image = fault.image or running.get(spec.name, spec).image  # a version keeps the image
            new = with_crash_points(replace(spec, image=image), scenario.faults, workdir)
            platform.stop(new.name)
            platform.start(new)

    async def deploy(fault: DeployFault) -> None:
        await asyncio.to_thread(recreate, fault)

    return deploy


def scenario_record(scenario: Scenario) -> dict[str, Any]:
    """The scenario as the manifest keeps it, every default spelled out, and as `check`
    parses it back: a fault's `times` only where it has `every_s` (the model refuses
    `times` given without it)."""
    data = scenario.model_dump(mode="json")
    for fault in data.get("faults", []):
        if fault.get("every_s") is None:
            fault.pop("times", None)
    return data


def _uncancel() -> None:
    """The cancellation (an interrupt) was caught to finish the evidence: the task may
    await again; the caller raises it once done."""
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()


def check_platform(
    name: str, scenario: Scenario, backend: Backend, platform: Platform
) -> dict[int, str]:
    """Before anything starts: the backend can run on this platform; returns which faults
    the injectors refuse here and why (fault index -> reason)."""
    if (
        not isinstance(platform, SharedFilesystem)
        and isinstance(backend, SharesFilesWithWorkers)
        and backend.shares_files_with_workers
    ):
        raise BackendError(
            f"{name} shares files between the harness and its workers, which the "
            f"{platform.name} platform cannot give them; use a backend whose workers "
            "reach their store over the network (e.g. langgraph:postgres)"
        )
    return refuse_faults(scenario.faults, platform, backend)


@dataclass(frozen=True)
class Services:
    """The simulated LLM (or the recording gateway in front of a real one) and the tool
    service, as started for one backend: their direct (unproxied) admin URLs."""

    llm: Handle | None
    tools: Handle

    @property
    def llm_admin_url(self) -> str | None:
        return None if self.llm is None else f"http://127.0.0.1:{self.llm.spec.port}"

    @property
    def tools_admin_url(self) -> str:
        return f"http://127.0.0.1:{self.tools.spec.port}"


def start_services(
    platform: Platform, scenario: Scenario, scenario_path: Path, workdir: Path
) -> Services:
    started = {s.role: platform.start(s) for s in service_specs(scenario, scenario_path, workdir)}
    return Services(started.get("llm"), started["tools"])


def build_env(
    scenario: Scenario,
    scenario_path: Path,
    results: ResultsDir,
    workdir: Path,
    services: Services,
    proxy: ProxyHandle | None,
    external: ExternalServices | None,
) -> BackendEnv:
    """What the backend is given; the workers' links go through the proxy when there is
    one (blocking: it asks the proxy for each link)."""
    route = proxy.route if proxy is not None else _direct
    llm_url = str(scenario.llm.base_url)
    if services.llm is not None:
        llm_url = _url(route("worker->llm", "127.0.0.1", services.llm.spec.port or 0)) + "/v1"
    return BackendEnv(
        scenario=scenario,
        scenario_path=scenario_path,
        bench_id=results.path.name,
        llm_url=llm_url,
        tools_url=_url(route("worker->tools", "127.0.0.1", services.tools.spec.port or 0)),
        workdir=workdir,
        measurements_dir=workdir / "measurements",
        external=external or ExternalServices(),
        route=route,
    )


def start_components(platform: Platform, backend: Backend, env: BackendEnv) -> None:
    """The backend's own components (servers, stores, workers with their crash points)."""
    for spec in backend.components(env):
        platform.start(with_crash_points(spec, env.scenario.faults, env.workdir))


def record_starts(active: ActiveFaults, platform: Platform) -> None:
    """Every component the platform starts from now on goes into the state file the
    moment it starts (again, with its new pid, after a supervisor's restart), so
    `durabench heal` can end it."""
    if isinstance(platform, ReportsStarts):
        platform.on_start(lambda c: active.add(f"started:{c.spec.name}", platform.started_entry(c)))


def register_for_heal(active: ActiveFaults, platform: Platform, proxy: ProxyHandle | None) -> None:
    """Everything started goes into the state file, so `durabench heal` can end it (a
    platform that reports its starts has recorded each already)."""
    if not isinstance(platform, ReportsStarts):
        for component in platform.components():
            active.add(f"started:{component.spec.name}", platform.started_entry(component))
    if proxy is not None:
        active.add("proxy", ProxyLinks(proxy.control_url))


def build_nemesis(
    name: str,
    backend: Backend,
    env: BackendEnv,
    platform: Platform,
    active: ActiveFaults,
    services: Services,
    proxy: ProxyHandle | None,
    refused: Mapping[int, str],
) -> Nemesis:
    return Nemesis(
        env.scenario,
        name,
        platform,
        log_path=env.workdir / "faults.jsonl",
        active=active,
        commits=CommitCounter(env.measurements_dir, refresh=_collector(platform, env)),
        proxy_url=proxy.control_url if proxy is not None else None,
        llm_admin_url=services.llm_admin_url,
        tools_admin_url=services.tools_admin_url,
        deploy=_deployer(backend, env, platform, env.scenario, env.workdir),
        refused=refused,
    )


@dataclass
class BackendSession:
    """One backend brought up for a benchmark: its platform with the services, the fault
    proxy and the backend's components running, the backend set up, and the nemesis ready.

    A load driver starts runs through `backend` (see `drive`); after the session closes,
    `ledger` and `llm_calls` hold what the services recorded."""

    name: str
    backend: Backend
    scenario: Scenario
    env: BackendEnv
    platform: Platform
    nemesis: Nemesis
    results: ResultsDir
    ids: list[str]  # the run ids a closed/open-loop driver starts
    progress: ProgressFn | None = None
    notify: Callable[[str], None] | None = None  # what durabench is doing, for the user
    wall_s: float = 0.0
    arrivals_began_at: float | None = None
    arrivals_ended_at: float | None = None  # a driver may set when its last run finished
    ledger: list[dict[str, Any]] = field(default_factory=list)
    llm_calls: list[dict[str, Any]] = field(default_factory=list)
    timings: list[RunTiming] = field(default_factory=list)  # runs finished so far
    interrupted: bool = False
    _arrivals: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def workdir(self) -> Path:
        return self.env.workdir

    def report(self, finished: int, total: int | None = None) -> None:
        """Progress: `finished` runs done of `total` (default: the session's ids)."""
        if self.progress is not None:
            self.progress(self.name, finished, len(self.ids) if total is None else total)

    def say(self, message: str) -> None:
        if self.notify is not None:
            self.notify(message)

    def begin_arrivals(self) -> None:
        """Drivers call this when the first run is about to start: the fault timeline and
        the wall clock count from here (a Locust driver first waits for Locust to start)."""
        if self.arrivals_began_at is None:
            self.arrivals_began_at = time.time()
            self._arrivals.set()

    async def drive(self, driver: LoadDriver) -> list[RunTiming]:
        """Run `driver` with the nemesis alongside; faults are healed when the load ends.
        The load phase's wall time, from `begin_arrivals` to the driver's return (or
        `arrivals_ended_at` when the driver sets it), goes to `wall_s`."""
        self.report(0)
        load_done = asyncio.Event()

        async def chaos() -> None:
            arrivals = asyncio.create_task(self._arrivals.wait())
            done = asyncio.create_task(load_done.wait())
            await asyncio.wait((arrivals, done), return_when=asyncio.FIRST_COMPLETED)
            arrivals.cancel()
            done.cancel()
            if self.arrivals_began_at is not None:
                await self.nemesis.run(self.arrivals_began_at, load_done)

        nemesis = asyncio.create_task(chaos())
        try:
            timings = await driver(self)
        except asyncio.CancelledError:  # Ctrl-C: heal every fault now, do not wait them out
            self.interrupted = True
            self.nemesis.interrupt()
            active = self.nemesis.in_progress()
            self.say(
                f"interrupted: {self.name}: healing {len(active)} active fault(s)"
                + (f": {'; '.join(active)}" if active else "")
            )
            raise
        finally:
            load_done.set()
            await nemesis
        began = self.arrivals_began_at or time.time()
        self.wall_s = max(0.0, (self.arrivals_ended_at or time.time()) - began)
        return timings


LoadDriver = Callable[[BackendSession], Awaitable[list[RunTiming]]]


async def default_driver(session: BackendSession) -> list[RunTiming]:
    """The scenario's own load: closed loop (`concurrency`) or open loop (`arrival_rate`)."""
    session.begin_arrivals()
    return await drive_load(
        session.scenario, session.backend, session.report, session.ids, session.timings
    )


@asynccontextmanager
async def open_session(
    scenario: Scenario,
    scenario_path: Path,
    name: str,
    backend: Backend,
    results: ResultsDir,
    platform_name: str = "local",
    external: ExternalServices | None = None,
    *,
    ids: list[str] | None = None,
    progress: ProgressFn | None = None,
    notify: Callable[[str], None] | None = None,
) -> AsyncIterator[BackendSession]:
    """Bring `backend` up inside `results` (services, proxy, components, setup, nemesis);
    on exit heal every fault, tear the backend down, collect the ledger and the LLM call
    log, and stop every component. A failure keeps the active-fault file for `heal`."""
    workdir = results.backend_dir(name)
    active = ActiveFaults(
        default_state_dir() / f"{results.path.name}-{workdir.name}.json",
        results=results.path,
        backend=name,
    )
    try:
        platform = await asyncio.to_thread(make_platform, platform_name, workdir, results.path.name)
    except BaseException:
        active.close()  # refused before anything started (a guardrail)
        raise
    dry_run = isinstance(platform, DryRun) and platform.dry_run
    with closing_platform(platform):
        if not dry_run:
            record_starts(active, platform)
        refused = await asyncio.to_thread(check_platform, name, scenario, backend, platform)
        services = await asyncio.to_thread(
            start_services, platform, scenario, scenario_path, workdir
        )
        proxy = None
        if _needs_proxy(scenario, platform):
            proxy = await asyncio.to_thread(_start_proxy, platform)
        env = await asyncio.to_thread(
            build_env, scenario, scenario_path, results, workdir, services, proxy, external
        )
        await asyncio.to_thread(start_components, platform, backend, env)
        if dry_run:
            active.close()  # nothing was made: nothing to heal
            raise DryRunPlanned(name)  # the platform printed it all; stop_all prints the rest
        register_for_heal(active, platform, proxy)
        nemesis = build_nemesis(name, backend, env, platform, active, services, proxy, refused)
        await backend.setup(env)
        session = BackendSession(
            name,
            backend,
            scenario,
            env,
            platform,
            nemesis,
            results,
            run_ids(scenario) if ids is None else ids,
            progress,
            notify,
        )
        for observe in list(SESSION_OBSERVERS):
            observe(session)
        try:
            yield session
        finally:
            await nemesis.heal_all()
            await backend.teardown()
        await _collect_records(session, services)
    active.close()


async def _collect_records(session: BackendSession, services: Services) -> None:
    """Bring the workers' files here, and read what the services recorded."""
    collect = _collector(session.platform, session.env)
    if collect is not None:
        await asyncio.to_thread(collect)
    session.ledger = await _fetch_json_lines(f"{services.tools_admin_url}/ledger")
    if services.llm_admin_url is not None:
        session.llm_calls = await _fetch_json_lines(f"{services.llm_admin_url}/_durabench/calls")


def record_backend(
    results: ResultsDir,
    session: BackendSession,
    persisted: list[dict[str, Any]],
    stale: int,
    *,
    not_judged: Sequence[str] = (),
) -> None:
    """Judge one backend's runs and append its tables and manifest details to `results`.
    `not_judged`: runs an interrupt cut off or never started (named in the manifest;
    no verdict row, so nothing counts them as lost or passed)."""
    name, backend = session.name, session.backend
    fired = crash_point_records(session.scenario.faults, name, session.env.workdir / "failpoints")
    if fired:
        with (session.env.workdir / "faults.jsonl").open("a", encoding="utf-8") as log:
            log.writelines(json.dumps(asdict(r), default=str) + "\n" for r in fired)
    steps = pd.DataFrame(read_rows(session.env.measurements_dir))
    if not steps.empty:
        steps["backend"] = name  # workers know their class's name, not the options
    rows = judge_runs(
        session.scenario, name, persisted, session.ledger, steps, session.llm_calls, not_judged
    )
    results.append_jsonl("persisted.jsonl", [{"backend": name, **p} for p in persisted])
    results.append_table("ledger", _ledger_rows(name, session.ledger))
    results.append_table("llm_calls", [{"backend": name, **c} for c in session.llm_calls])
    results.append_table("runs", rows)
    details = results.read_json("manifest.json").get("backend_details", {})
    details[name] = {**backend.describe(), "stale_cleaned": stale, "wall_s": session.wall_s}
    if session.interrupted:
        details[name]["interrupted"] = True
        details[name]["not_judged"] = {
            "runs": len(not_judged),
            "run_ids": list(not_judged),
            "reason": "interrupted before the run finished (or started)",
        }
    results.update_manifest(backend_details=details)


@dataclass
class BenchmarkRun:
    """One `durabench run`: a scenario on one or more backends, into one results directory."""

    scenario_path: Path
    backend_names: list[str]
    out_root: Path
    progress: ProgressFn | None = None
    external: ExternalServices = field(default_factory=ExternalServices)
    trials: int = 1  # each task runs this many times: pass^k
    platform_name: str = "local"
    driver: LoadDriver = default_driver  # how runs arrive: the scenario's loop, or Locust
    with_floor: bool = False  # each backend's raw floor before and after its runs (floors.parquet)

    def __post_init__(self) -> None:
        # validate everything before anything starts
        if self.trials < 1:
            raise DurabenchError(f"--trials must be at least 1, got {self.trials}")
        if self.platform_name not in PLATFORMS:
            known = ", ".join(sorted(PLATFORMS))
            raise DurabenchError(f"unknown platform {self.platform_name!r}; platforms: {known}")
        self.scenario_path = resolve_scenario_path(self.scenario_path)
        self.scenario = load_scenario(self.scenario_path)
        self.backends = [load_backend(name) for name in self.backend_names]
        self.scenarios: dict[str, Scenario] = {}  # per backend: its crash points made concrete
        for name, backend in zip(self.backend_names, self.backends, strict=True):
            try:
                refuse_faults(self.scenario.faults, None, backend)  # e.g. unknown versions
                self.scenarios[name] = expand_crash_points(self.scenario, backend, self.trials)
            except DurabenchError as exc:
                raise DurabenchError(f"{self.scenario_path}: {name}: {exc}") from None
        self.results: ResultsDir | None = None
        self.platform: Platform | None = None  # of the backend running now, once it is up
        self._walls: dict[str, float] = {}
        self.dry_run = False  # the platform only printed what it would do
        self.notify: Callable[[str], None] | None = None  # what an interrupt is doing

    async def execute(self) -> ResultsDir:
        scenario = self.scenario
        self.results = results = ResultsDir.create(self.out_root, new_bench_id(scenario.name))
        (results.path / "scenario.yaml").write_text(self.scenario_path.read_text())
        results.update_manifest(
            bench_id=results.path.name,
            status="running",
            scenario=scenario_record(scenario),
            scenario_path=str(self.scenario_path),
            seed=scenario.seed,
            trials=self.trials,
            backends=self.backend_names,
            platform=self.platform_name,
            external=self.external.public(),
            crash_points={
                n: [f.model_dump(mode="json") for f in s.faults if f.kind == "crash_point"]
                for n, s in self.scenarios.items()
                if s is not scenario
            },
            command=mask_command([Path(sys.argv[0]).name, *sys.argv[1:]]),
            started_at=time.time(),
            environment=collect_environment(),
        )
        try:
            for name, backend in zip(self.backend_names, self.backends, strict=True):
                await self._run_backend(name, backend, results)
        except BaseException as exc:
            interrupted = isinstance(exc, KeyboardInterrupt | asyncio.CancelledError)
            self._finish(results, "interrupted" if interrupted else "failed", repr(exc))
            raise
        self._finish(results, "dry-run" if self.dry_run else "complete", None)
        return results

    async def _run_backend(self, name: str, backend: Backend, results: ResultsDir) -> None:
        interrupted: asyncio.CancelledError | None = None
        ids = run_ids(self.scenario, trials=self.trials)
        try:
            async with open_session(
                self.scenarios.get(name, self.scenario),
                self.scenario_path,
                name,
                backend,
                results,
                self.platform_name,
                self.external,
                ids=ids,
                progress=self.progress,
                notify=self.notify,
            ) as session:
                self.platform = session.platform
                try:
                    if self.with_floor:
                        await record_floor(session, floor_pass=BEFORE_PASS)
                    timings = await session.drive(self.driver)
                except asyncio.CancelledError as exc:
                    interrupted = exc  # faults healed already; judge what finished, then stop
                    _uncancel()
                    timings = list(session.timings)
                self._walls[name] = session.wall_s
                if interrupted is None:
                    persisted = await inspect_all(backend, timings)
                    stale = await backend.cleanup_stale(
                        self.scenario.approval.ttl_s if self.scenario.approval else 0
                    )
                    if self.with_floor:
                        await record_floor(session, floor_pass=AFTER_PASS)
                else:
                    persisted, stale = await self._inspect_interrupted(session, timings, ids)
        except DryRunPlanned:
            self.dry_run = True
            return
        judged = {str(p["run_id"]) for p in persisted}
        not_judged = [i for i in ids if i not in judged] if interrupted is not None else []
        record_backend(results, session, persisted, stale, not_judged=not_judged)
        if interrupted is not None:
            raise interrupted

    async def _inspect_interrupted(
        self, session: BackendSession, timings: list[RunTiming], ids: list[str]
    ) -> tuple[list[dict[str, Any]], int]:
        """At an interrupt: inspect the runs that had finished (bounded in time), so they
        are judged; the others are not judged (a run cut off would look lost)."""
        finished = list(timings)
        session.say(
            f"interrupted: {session.name}: judging the {len(finished)} run(s) that finished; "
            f"{len(ids) - len(finished)} not judged; then stopping its components"
        )
        try:
            persisted = await asyncio.wait_for(
                inspect_all(session.backend, finished), INTERRUPT_INSPECT_S
            )
        except Exception as exc:  # the backend cannot answer now: nothing is judged
            session.say(f"interrupted: {session.name}: could not inspect its runs: {exc!r}")
            persisted = []
        return persisted, 0

    def _finish(self, results: ResultsDir, status: str, error: str | None) -> None:
        """Write steps.parquet and summary.json from whatever was measured, then the status."""
        rows: list[dict[str, Any]] = []
        for name in self.backend_names:
            directory = results.backend_dir(name) / "measurements"
            if directory.exists():
                rows.extend({**r, "backend": name} for r in read_rows(directory))
        results.write_table("steps", rows)
        faults: list[dict[str, Any]] = []
        for name in self.backend_names:
            log = results.backend_dir(name) / "faults.jsonl"
            if log.exists():
                faults.extend(json.loads(line) for line in log.read_text().splitlines() if line)
        if faults or self.scenario.faults:
            results.write_table("faults", faults)
        tables = results.read_tables()
        if not tables["runs"].empty:  # which runs each fault exposed (harness/exposure.py)
            tables["runs"], tables["faults"] = with_exposure(
                tables["runs"], tables["steps"], tables["faults"]
            )
            for name in ("runs", "faults"):
                if not tables[name].empty:
                    results.write_table(
                        name, cast(list[dict[str, Any]], tables[name].to_dict("records"))
                    )
            backend_details = results.read_json("manifest.json").get("backend_details", {})
            cut_off = {
                name: (details.get("not_judged") or {}).get("run_ids") or []
                for name, details in backend_details.items()
            }
            summary = summarize(
                tables["runs"],
                tables["steps"],
                self._walls,
                tables["faults"],
                tables["floors"],
                ledger=tables["ledger"],
                not_judged=cut_off,
            )
            for name, details in backend_details.items():
                if name in summary and "not_judged" in details:  # an interrupted backend
                    summary[name]["not_judged"] = details["not_judged"]["runs"]
            results.write_json("summary.json", summary)
        results.update_manifest(
            status=status, error=error, finished_at=time.time(), pid=os.getpid()
        )
