"""The Locust load driver: Locust processes generate the arrivals, the harness keeps score.

`LocustDriver` plugs into `BenchmarkRun(driver=...)` in place of the closed/open loop.
Within the backend session (services, components, nemesis all running), it starts the
run gateway, then Locust: one headless process (Locust's LocalRunner) in local mode, or
Locust's own master plus N `--worker` processes on loopback in distributed mode (or a
master waiting for workers on other machines). When Locust's test ends, every run the
gateway started is awaited to its deadline and handed back for inspection and judging,
so a load run writes the same results as `durabench run`, plus Locust's reports in
`locust/` and the load figures in `load.json`.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import math
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import DurabenchError
from harness.load.gateway import RunGateway
from harness.load.hdr import read_hdr_file
from harness.load.shapes import SHAPE_ENV, ConstantShape, LoadShape, shape_duration
from harness.platform.base import free_port
from harness.runner import BackendSession, RunTiming
from harness.scenario import Scenario

__all__ = [
    "LOCUSTFILE",
    "LocustDriver",
    "LocustPlan",
    "default_plan",
    "locust_stats",
    "worker_argv",
]

LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
REQUESTS = ("agent_start", "agent_run")
STOP_GRACE_S = 10.0  # after Locust's test, how long its processes get to exit
WORKER_CONNECT_TIMEOUT_S = 120  # how long a master waits for its workers
STOP_SLACK_S = 10.0  # users get the deadline plus this to finish their last run


@dataclass(frozen=True)
class LocustPlan:
    """How Locust drives one backend."""

    shape: LoadShape
    runs: int | None = None  # run budget (None: until the shape ends)
    wait: bool = True  # users wait for their runs (agent_run events) or only start them
    user_rate: float = 0.0  # runs/s per user, Poisson (0: back to back)
    workers: int = 0  # Locust worker processes on loopback (0: one local runner)
    expect_workers: int = 0  # workers on other machines a master waits for
    bind_host: str = "127.0.0.1"  # master and gateway bind here ("0.0.0.0" for remote)
    advertise_host: str | None = None  # the address remote workers dial for the gateway
    master_port: int | None = None  # default: a free port
    gateway_port: int = 0  # 0: a free port
    headless: bool = True
    web_port: int = 8089
    timeout_s: float | None = None  # end Locust (as a failure) if it runs longer

    def __post_init__(self) -> None:
        if self.runs is None and shape_duration(self.shape) is None:
            raise DurabenchError("a load test needs an end: a run budget, a run time or a shape")
        if self.runs is not None and self.runs < 1:
            raise DurabenchError(f"the run budget must be at least 1, got {self.runs}")
        if self.workers < 0 or self.expect_workers < 0:
            raise DurabenchError("worker counts cannot be negative")
        if self.expect_workers and not self.advertise_host:
            raise DurabenchError(
                "remote workers need --advertise-host: the address they reach this machine at"
            )
        if self.user_rate < 0:
            raise DurabenchError(f"--user-rate must be >= 0, got {self.user_rate}")

    @property
    def distributed(self) -> bool:
        return self.workers > 0 or self.expect_workers > 0

    def describe(self) -> dict[str, Any]:
        return {
            "mode": "distributed" if self.distributed else "local",
            "shape": self.shape.model_dump(mode="json"),
            "runs": self.runs,
            "wait": self.wait,
            "user_rate": self.user_rate,
            "workers": self.workers + self.expect_workers,
        }


def default_plan(scenario: Scenario, runs: int | None = None) -> LocustPlan:
    """The scenario's own load as a Locust plan: its `load.shape` if it has one; else as
    many users as its concurrency (closed loop), or users starting runs without waiting
    at its arrival rate (open loop); `runs` defaults to the scenario's runs."""
    load = scenario.load
    budget = scenario.runs if runs is None else runs
    if load.shape is not None:
        return LocustPlan(load.shape, runs=budget if shape_duration(load.shape) is None else runs)
    if load.concurrency is not None:
        return LocustPlan(ConstantShape(users=load.concurrency), runs=budget)
    assert load.arrival_rate is not None
    users = max(1, min(64, math.ceil(load.arrival_rate)))
    return LocustPlan(
        ConstantShape(users=users),
        runs=budget,
        wait=False,
        user_rate=load.arrival_rate / users,
    )


def worker_argv(master_host: str, master_port: int) -> list[str]:
    """A Locust worker of durabench's locustfile (run it on any machine with durabench)."""
    return [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--worker",
        "--master-host",
        master_host,
        "--master-port",
        str(master_port),
        "--loglevel",
        "WARNING",
    ]


class LocustDriver:
    """A `LoadDriver` (see harness.runner) that runs Locust against the session's backend."""

    def __init__(self, plan: LocustPlan) -> None:
        if importlib.util.find_spec("locust") is None:
            raise DurabenchError("durabench load needs Locust: pip install 'durabench[load]'")
        self.plan = plan
        self.master_port: int | None = None
        self.stats: dict[str, dict[str, dict[str, Any]]] = {}  # backend -> request -> stats

    async def __call__(self, session: BackendSession) -> list[RunTiming]:
        plan = self.plan
        total = plan.runs or 0
        gateway = RunGateway(
            session.name,
            session.scenario,
            session.backend,
            budget=plan.runs,
            host=plan.bind_host,
            port=plan.gateway_port,
            advertise_host=plan.advertise_host,
            on_finished=lambda done, started: session.report(done, total or started),
            on_first_start=session.begin_arrivals,
        )
        await gateway.start()
        reports = session.results.path / "locust"
        reports.mkdir(exist_ok=True)
        prefix = reports / session.workdir.name
        logs = session.workdir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        processes: list[asyncio.subprocess.Process] = []
        try:
            argv = self._master_argv(session, gateway.url, prefix)
            shape = plan.shape.model_dump_json()
            master = await _spawn(argv, logs, "locust", shape)
            processes.append(master)
            assert self.master_port is not None or not plan.distributed
            for index in range(plan.workers):
                argv = worker_argv("127.0.0.1", self.master_port or 0)
                processes.append(await _spawn(argv, logs, f"locust-worker-{index}"))
            await _wait_master(master, plan.timeout_s, logs / "locust.log")
            for worker in processes[1:]:
                await _stop(worker)
            timings = await gateway.drain()
            ends = [t.finished_at or t.started_at for t in timings]
            session.arrivals_ended_at = max(ends) if ends else None
        finally:
            for process in processes:  # only left running when something failed
                await _stop(process, grace_s=0.0)
            await gateway.stop()
        self.stats[session.name] = locust_stats(Path(f"{prefix}.json"), _hdr_path(prefix))
        _record(session, plan, gateway, self.stats[session.name], prefix)
        return timings

    def _master_argv(self, session: BackendSession, gateway_url: str, prefix: Path) -> list[str]:
        plan = self.plan
        argv = [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(LOCUSTFILE),
            "--csv",
            str(prefix),
            "--csv-full-history",
            "--html",
            f"{prefix}.html",
            "--json-file",
            str(prefix),
            "--stop-timeout",
            str(math.ceil(session.scenario.deadline_s + STOP_SLACK_S)),
            "--exit-code-on-error",
            "0",
            "--loglevel",
            "WARNING",
            "--durabench-gateway",
            gateway_url,
            "--durabench-user-rate",
            repr(plan.user_rate),
            "--durabench-hdr-file",
            str(_hdr_path(prefix)),
        ]
        if not plan.wait:
            argv.append("--durabench-no-wait")
        if plan.headless:
            argv += ["--headless", "--only-summary"]
        else:
            argv += ["--autostart", "--autoquit", "5", "--web-port", str(plan.web_port)]
            argv += ["--web-host", plan.bind_host]
        if plan.distributed:
            self.master_port = plan.master_port or free_port()
            argv += [
                "--master",
                "--master-bind-host",
                plan.bind_host,
                "--master-bind-port",
                str(self.master_port),
                "--expect-workers",
                str(plan.workers + plan.expect_workers),
                "--expect-workers-max-wait",
                str(WORKER_CONNECT_TIMEOUT_S),
            ]
        return argv


async def _spawn(argv: list[str], logs: Path, name: str, shape: str | None = None) -> Any:
    """Start one Locust process, its output in logs/<name>.log."""
    env = {**os.environ}
    if shape is not None:
        env[SHAPE_ENV] = shape
    with (logs / f"{name}.log").open("ab") as log:
        return await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log, env=env
        )


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


async def _wait_master(process: Any, timeout_s: float | None, log: Path) -> None:
    try:
        code = await asyncio.wait_for(process.wait(), timeout_s)
    except TimeoutError:
        raise DurabenchError(
            f"Locust ran longer than {timeout_s:g}s; stopped it. Last log lines:\n{_tail(log)}"
        ) from None
    if code != 0:
        raise DurabenchError(f"Locust exited with code {code}. Last log lines:\n{_tail(log)}")


async def _stop(process: Any, grace_s: float = STOP_GRACE_S) -> None:
    """Let a Locust process exit on its own for `grace_s`, then SIGTERM, then SIGKILL."""
    if process.returncode is not None:
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(process.wait(), grace_s)
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(sig)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), STOP_GRACE_S)
            return


def _hdr_path(prefix: Path) -> Path:
    return prefix.with_name(f"{prefix.name}_hdr.json")


def locust_stats(json_path: Path, hdr_path: Path) -> dict[str, dict[str, Any]]:
    """Locust's final stats (its `--json-file`), per request name: requests, failures,
    the request rate over the test, and latency percentiles in ms from the master's
    merged HDR histograms (harness.load.hdr: exact across workers, never averaged)."""
    try:
        entries: list[dict[str, Any]] = json.loads(json_path.read_text())
    except FileNotFoundError:
        raise DurabenchError(f"{json_path}: Locust wrote no stats") from None
    histograms = read_hdr_file(hdr_path)
    out: dict[str, dict[str, Any]] = {}
    for entry in entries:
        name = str(entry["name"])
        count = int(entry["num_requests"])
        span = float(entry["last_request_timestamp"] or 0) - float(entry["start_time"] or 0)
        hdr = histograms.get(name, {})
        if count and hdr.get("count") != count:
            raise DurabenchError(
                f"{hdr_path}: `{name}` holds {hdr.get('count', 0)} samples, Locust counted "
                f"{count} requests: a worker's report was lost"
            )
        out[name] = {
            "type": entry["method"],
            "requests": count,
            "failures": int(entry["num_failures"]),
            "successes": count - int(entry["num_failures"]),
            "mean_ms": round(float(entry["total_response_time"]) / count, 3) if count else None,
            **{k: v for k, v in hdr.items() if k.endswith("_ms")},
            "percentiles": "hdr",
            "per_s": round(count / span, 3) if span > 0 else None,
        }
    return out


def _record(
    session: BackendSession,
    plan: LocustPlan,
    gateway: RunGateway,
    stats: dict[str, dict[str, Any]],
    prefix: Path,
) -> None:
    """load.json: per backend, the plan, the gateway's counts and Locust's agent stats."""
    path = session.results.path / "load.json"
    data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    status = gateway.status()
    data[session.name] = {
        **plan.describe(),
        "started": status.started,
        "refused": status.refused,
        "started_by_worker": dict(sorted(gateway.started_by.items())),
        "locust": {name: stats.get(name) for name in REQUESTS},
        "reports": {
            "stats_csv": f"locust/{prefix.name}_stats.csv",
            "history_csv": f"locust/{prefix.name}_stats_history.csv",
            "html": f"locust/{prefix.name}.html",
            "json": f"locust/{prefix.name}.json",
            "hdr": f"locust/{_hdr_path(prefix).name}",
        },
        "recorded_at": time.time(),
    }
    session.results.write_json("load.json", data)
