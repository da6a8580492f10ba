"""Helpers for the Postgres state-store tests: run a benchmark and read what it left,
query a run's schema, and pause a worker until another one took its runs over."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from psycopg import AsyncConnection

from backends.base import ExternalServices
from backends.pgstore.backend_base import PostgresStoreBackend
from harness.measure import read_rows
from harness.postgres import with_search_path
from harness.results import ResultsDir
from harness.runner import BenchmarkRun

POLL_S = 0.02
PAUSE_WAIT_S = 60.0  # bounded: a paused worker's runs must be taken over within this

# Runs with enough latency to pause a worker mid-phase; verify retries still happen.
SLOW: dict[str, Any] = {
    "runs": 6,
    "steps": 12,
    "load": {"concurrency": 6},
    "workers": 2,
    "llm": {"latency": {"distribution": "constant", "ms": 30}},
    "tool_latency": {"distribution": "constant", "ms": 30},
    "deadline_s": 90,
}


@dataclass
class Outcome:
    """What one benchmark run on one backend left behind."""

    results: ResultsDir
    backend: str

    @property
    def summary(self) -> dict[str, Any]:
        summary: dict[str, Any] = self.results.read_json("summary.json")[self.backend]
        return summary

    def table(self, name: str) -> pd.DataFrame:
        frame = pd.read_parquet(self.results.path / f"{name}.parquet")
        return frame[frame["backend"] == self.backend] if "backend" in frame else frame

    @property
    def runs(self) -> pd.DataFrame:
        return self.table("runs").set_index("run_id")

    @property
    def details(self) -> dict[str, Any]:
        details: dict[str, dict[str, Any]] = self.results.read_json("manifest.json")[
            "backend_details"
        ]
        return details[self.backend]

    @property
    def rows(self) -> list[dict[str, Any]]:
        return read_rows(self.results.backend_dir(self.backend) / "measurements")

    @property
    def workdir(self) -> Path:
        return self.results.backend_dir(self.backend)

    def ledger(self, run_id: str, step: int) -> pd.DataFrame:
        ledger = self.table("ledger")
        return ledger[(ledger["run_id"] == run_id) & (ledger["step"] == step)]

    def report(self) -> str:
        """One line per run: what it persisted, repeated and wasted (printed on failure)."""
        lines = [f"{self.backend}: integrity {self.summary['integrity']}"]
        for run_id, row in self.runs.iterrows():
            failed = [
                v for v in ("state_match", "effects_exactly_once", "no_lost_step") if not row[v]
            ]
            lines.append(
                f"  {run_id}: {row['status']} llm {row['llm_calls']}/{row['llm_calls_expected']}"
                f" tools {row['tool_executions']} raw {row['tool_applied']} applied"
                f" /{row['tool_expected']} failed {failed}"
            )
        return "\n".join(lines)


async def run_bench(
    scenario: Path,
    backends: list[str],
    out: Path,
    pg_dsn: str | None = None,
    during: Callable[[BenchmarkRun], Coroutine[Any, Any, None]] | None = None,
) -> list[Outcome]:
    """Run a scenario; `during(bench)` runs alongside (a fault) and must finish."""
    bench = BenchmarkRun(scenario, backends, out, external=ExternalServices(pg_dsn=pg_dsn))
    task = asyncio.create_task(during(bench)) if during is not None else None
    try:
        results = await bench.execute()
    finally:
        unfinished = task is not None and not task.done()
        if task is not None and unfinished:
            task.cancel()
    assert not unfinished, "the benchmark ended before the fault it should suffer happened"
    if task is not None:
        task.result()  # re-raise the fault's own assertion, if any
    return [Outcome(results, name) for name in backends]


async def query(dsn: str, schema: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    async with await AsyncConnection.connect(
        with_search_path(dsn, schema), autocommit=True
    ) as conn:
        cursor = await conn.execute(sql.encode(), params or None)
        return list(await cursor.fetchall())


async def started_backend(bench: BenchmarkRun) -> PostgresStoreBackend:
    """The backend of a running benchmark, once its workers are up."""
    backend = bench.backends[0]
    assert isinstance(backend, PostgresStoreBackend)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + PAUSE_WAIT_S
    while bench.platform is None or not bench.platform.components("worker"):
        assert loop.time() < deadline, "the workers never started"
        await asyncio.sleep(POLL_S)
    return backend


async def pause_until_taken_over(bench: BenchmarkRun, dsn: str, table: str) -> dict[str, Any]:
    """SIGSTOP the worker holding the most runs past their second step, wait until every
    one of them was taken over by another worker (or had finished as it stopped),
    SIGCONT it. `table` is the queue table (`runs` or `agent_runs`)."""
    backend = await started_backend(bench)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + PAUSE_WAIT_S
    progressed = {  # a run past its second step (pgstore: a step is 3+ events)
        "runs": "status = 'leased' AND next_seq > 7",
        "agent_runs": "status = 'running' AND jsonb_array_length(state->'steps') >= 2",
    }[table]
    holders: dict[str, list[str]] = {}
    while not holders:
        assert loop.time() < deadline, "no worker ever held a run"
        await asyncio.sleep(POLL_S)
        try:
            for worker, run_id in await query(
                dsn, backend.schema, f"SELECT worker, run_id FROM {table} WHERE {progressed}"
            ):
                holders.setdefault(str(worker), []).append(str(run_id))
        except Exception:  # tables not created yet
            holders = {}
    worker, held = max(holders.items(), key=lambda item: len(item[1]))
    name = f"{backend.name}-{worker}"  # components are named <backend>-worker-<i>
    assert bench.platform is not None
    bench.platform.signal(name, signal.SIGSTOP)
    moved_sql = (
        f"SELECT count(*) FROM {table} WHERE run_id = ANY(%s) AND (worker <> %s OR status = 'done')"
    )
    try:
        while True:
            assert loop.time() < deadline, f"{held} were not taken over while {worker} slept"
            await asyncio.sleep(POLL_S)
            ((moved,),) = await query(dsn, backend.schema, moved_sql, held, worker)
            if moved == len(held):
                break
    finally:
        bench.platform.signal(name, signal.SIGCONT)
        resumed_at = time.time()
    taken = await query(
        dsn,
        backend.schema,
        f"SELECT run_id FROM {table} WHERE run_id = ANY(%s) AND worker <> %s",
        held,
        worker,
    )
    return {
        "worker": worker,
        "held": held,
        "taken": sorted(r for (r,) in taken),
        "schema": backend.schema,
        "resumed_at": resumed_at,
    }
