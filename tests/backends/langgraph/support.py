"""Helpers for the LangGraph backend tests: one embedded Postgres per session, a
benchmark run with an optional SIGKILL of the worker, and the evidence it left."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from backends.base import BackendEnv, ExternalServices
from backends.langgraph.queue import TABLE as CLAIM_TABLE
from harness.measure import read_rows
from harness.platform.local import LocalPlatform
from harness.postgres import backend_dsn, postgres_components, wait_ready
from harness.results import ResultsDir
from harness.runner import BenchmarkRun
from harness.scenario import load_scenario, resolve_scenario_path

KILL_POLL_S = 0.02
KILL_WAIT_S = 60.0  # bounded: the kill condition must come true within this

Rows = list[dict[str, Any]]
KillCondition = Callable[[Rows, Path], bool]  # (measurement rows, backend workdir)
ExternalFor = Callable[[str], ExternalServices]

# Runs long enough to be killed mid-way; every verify passes, so the expected work
# per run is exactly `steps` LLM calls and `steps` tool executions.
KILL_SCENARIO: dict[str, Any] = {
    "runs": 6,
    "steps": 10,
    "load": {"concurrency": 3},
    "verify": {"failure_probability": 0.0},
    "llm": {"latency": {"distribution": "constant", "ms": 10}},
    "tool_latency": {"distribution": "constant", "ms": 5},
    "deadline_s": 60,
}


@contextmanager
def postgres_server(workdir: Path) -> Iterator[str]:
    """One embedded Postgres (harness.postgres) for every test that needs one."""
    env = BackendEnv(
        scenario=load_scenario("smoke"),
        scenario_path=resolve_scenario_path("smoke"),
        bench_id="langgraph-tests",
        llm_url="http://127.0.0.1:9/v1",
        tools_url="http://127.0.0.1:9",
        workdir=workdir,
        measurements_dir=workdir / "measurements",
    )
    with LocalPlatform(workdir) as platform:
        for spec in postgres_components(env):
            platform.start(spec)
        dsn = backend_dsn(env)
        wait_ready(dsn)
        yield dsn


def worker_name(backend: str) -> str:
    variant = backend.partition(":")[2].partition("?")[0]
    return f"langgraph-{variant}-worker-0"


@dataclass
class Outcome:
    """What one benchmark run left behind."""

    results: ResultsDir
    backend: str
    killed_at: float | None = None
    rows_at_kill: Rows = field(default_factory=list)

    @property
    def summary(self) -> dict[str, Any]:
        summary: dict[str, Any] = self.results.read_json("summary.json")[self.backend]
        return summary

    def table(self, name: str) -> pd.DataFrame:
        return pd.read_parquet(self.results.path / f"{name}.parquet")

    @property
    def runs(self) -> pd.DataFrame:
        return self.table("runs").set_index("run_id")

    def manifest_details(self) -> dict[str, Any]:
        details: dict[str, dict[str, Any]] = self.results.read_json("manifest.json")[
            "backend_details"
        ]
        return details[self.backend]

    def committed_before_kill(self) -> dict[str, set[int]]:
        """run -> steps whose commit row (durable acknowledgement) existed at the kill."""
        done: dict[str, set[int]] = {}
        for row in self.rows_at_kill:
            if row["phase"] == "commit" and row["outcome"] == "ok":
                done.setdefault(row["run_id"], set()).add(int(row["step"]))
        return done

    def acted_before_kill(self) -> Counter[str]:
        """run -> tool calls completed before the kill."""
        return _per_run(self.rows_at_kill, "act")

    def reasoned_before_kill(self) -> Counter[str]:
        return _per_run(self.rows_at_kill, "reason")


async def run_bench(
    scenario: Path,
    backend: str,
    out: Path,
    external: ExternalServices | None = None,
    kill_when: KillCondition | None = None,
    may_not_kill: bool = False,
) -> Outcome:
    """Run the scenario on one backend; with `kill_when`, SIGKILL its worker once the
    measurement rows satisfy it (the platform restarts the worker). The condition must
    come true, unless `may_not_kill` (then `killed_at` says whether it did)."""
    bench = BenchmarkRun(scenario, [backend], out, external=external or ExternalServices())
    outcome_box: dict[str, Any] = {}

    async def killer() -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + KILL_WAIT_S
        while loop.time() < deadline:
            await asyncio.sleep(KILL_POLL_S)
            if bench.platform is None or bench.results is None:
                continue
            workdir = bench.results.backend_dir(backend)
            rows = read_rows(workdir / "measurements")
            assert kill_when is not None
            if kill_when(rows, workdir):
                outcome_box["killed_at"] = time.time()
                bench.platform.signal(worker_name(backend), signal.SIGKILL)
                outcome_box["rows"] = rows
                return

    task = asyncio.create_task(killer()) if kill_when is not None else None
    results = await bench.execute()
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if not may_not_kill:
            assert "killed_at" in outcome_box, "the kill condition never came true"
    return Outcome(results, backend, outcome_box.get("killed_at"), outcome_box.get("rows", []))


def _per_run(rows: Rows, phase: str) -> Counter[str]:
    return Counter(r["run_id"] for r in rows if r["phase"] == phase and r["outcome"] == "ok")


def mid_run_with_commits(steps: int) -> KillCondition:
    """Some run has acknowledged at least two steps and is not finished."""

    def condition(rows: Rows, _: Path) -> bool:
        return any(2 <= n < steps for n in _per_run(rows, "commit").values())

    return condition


def mid_run_without_commits(acts: int = 3) -> KillCondition:
    """Some run has executed `acts` tool calls and acknowledged nothing (exit mode)."""

    def condition(rows: Rows, _: Path) -> bool:
        commits = _per_run(rows, "commit")
        return any(n >= acts and not commits[r] for r, n in _per_run(rows, "act").items())

    return condition


def acknowledgement_behind_by(steps: int) -> KillCondition:
    """Some run has executed (verified) `steps` more steps than it has acknowledged."""

    def condition(rows: Rows, _: Path) -> bool:
        commits = _per_run(rows, "commit")
        verified = Counter(
            r["run_id"]
            for r in rows
            if r["phase"] == "verify" and r.get("extra", {}).get("verified")
        )
        return any(n - commits[r] >= steps for r, n in verified.items())

    return condition


class FinishedAndBusy:
    """Kill condition: the claim table says some run completed (the worker is done with
    it) while another run is mid-way; remembers which runs had completed."""

    def __init__(self, claims_file: str, acts: int = 3) -> None:
        self.claims_file = claims_file
        self.acts = acts
        self.finished: set[str] = set()

    def completed_runs(self, workdir: Path) -> set[str]:
        path = workdir / self.claims_file
        if not path.exists():
            return set()
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            try:
                rows = db.execute(
                    f"SELECT run_id FROM {CLAIM_TABLE} WHERE status = 'completed'"
                ).fetchall()
            except sqlite3.OperationalError:  # not created yet
                return set()
        return {str(r[0]) for r in rows}

    def __call__(self, rows: Rows, workdir: Path) -> bool:
        finished = self.completed_runs(workdir)
        busy = [r for r, n in _per_run(rows, "act").items() if n >= self.acts and r not in finished]
        if finished and busy:
            self.finished = finished
            return True
        return False
