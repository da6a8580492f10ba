"""What the agent-framework backend tests share: a benchmark run through the runner with
real worker processes, a SIGKILL of the worker while a tool call is in flight, and crash
points at the shared phase boundaries (the effect applied but its activity or node not
recorded; a worker restarted between two steps).

What each framework's documentation promises, and so what the tests assert:
- Temporal (Pydantic AI, OpenAI Agents SDK): activities are at-least-once, the workflow
  replays its history on another worker; so every run reaches the oracle's state, a
  tool re-executed after a crash carries its first call's arguments (the same key), and
  the ledger applies each effect once.
- LangGraph checkpointers (Deep Agents): a resumed thread re-runs at most the node in
  flight (durability `sync`); its tool re-executes with the checkpointed call, same key.
"""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import pandas as pd

from backends.base import ExternalServices
from harness.measure import read_rows
from harness.results import ResultsDir
from harness.runner import BenchmarkRun

__all__ = [
    "CRASHES",
    "CRASH_SCENARIO",
    "KILL_SCENARIO",
    "deduplicated",
    "kill_mid_act",
    "run_with",
]

POLL_S = 0.02
REACH_S = 0.1  # from an act's invoke row to its request inside the tool service
KILL_WAIT_S = 60.0
# a tool call in flight long enough to be killed in it; no verify failures (a clean count)
KILL_SCENARIO: dict[str, Any] = {
    "runs": 4,
    "steps": 4,
    "load": {"concurrency": 4},
    "workers": 1,
    "verify": {"failure_probability": 0.0},
    "tool_latency": {"distribution": "constant", "ms": 400},
    "deadline_s": 60,
}
# one run in flight at a time, so each crash point kills exactly the run it names
CRASHES = [
    {"kind": "crash_point", "point": "after_act", "run": "run-000000", "step": 1},
    {"kind": "crash_point", "point": "after_commit", "run": "run-000001", "step": 1},
    {"kind": "crash_point", "point": "after_reason", "run": "run-000002", "step": 2},
]
CRASH_SCENARIO: dict[str, Any] = {
    "runs": 3,
    "steps": 3,
    "load": {"concurrency": 1},
    "workers": 1,
    "verify": {"failure_probability": 0.3, "on_failure": "replan", "max_attempts": 4},
    "deadline_s": 60,
    "faults": CRASHES,
}


def _act_in_flight(rows: list[dict[str, Any]]) -> bool:
    acts = [r for r in rows if r["phase"] == "act"]
    invoked = {(r["run_id"], r["step"], r["attempt"]) for r in acts if r["outcome"] == "invoke"}
    done = {(r["run_id"], r["step"], r["attempt"]) for r in acts if r["outcome"] != "invoke"}
    return bool(invoked - done)


async def kill_mid_act(bench: BenchmarkRun, backend: str, victim: str, after_commits: int) -> int:
    """SIGKILL `victim` once `after_commits` steps committed and an act is in flight;
    the platform restarts it (as a pod's controller would); returns its restarts."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + KILL_WAIT_S
    while True:
        assert loop.time() < deadline, "no act in flight to kill"
        await asyncio.sleep(POLL_S)
        if bench.platform is None or bench.results is None:
            continue
        rows = read_rows(bench.results.backend_dir(backend) / "measurements")
        commits = sum(1 for r in rows if r["phase"] == "commit")
        if commits >= after_commits and _act_in_flight(rows):
            break
    # the invoke row is written just before the request leaves: give it time to reach
    # the tool service (KILL_SCENARIO's calls take 400 ms), so the kill lands mid-call
    await asyncio.sleep(REACH_S)
    bench.platform.signal(victim, signal.SIGKILL)
    while loop.time() < deadline:
        await asyncio.sleep(POLL_S)
        if (restarts := bench.platform.component(victim).restarts) > 0:
            return restarts
    raise AssertionError(f"{victim} was not restarted")


async def run_with(
    scenario: Path, backend: str, out: Path, external: ExternalServices, during: Any = None
) -> tuple[ResultsDir, pd.DataFrame]:
    """The benchmark on one backend, `during(bench)` alongside; (results, runs table)."""
    bench = BenchmarkRun(scenario, [backend], out, external=external)
    task = asyncio.create_task(during(bench)) if during is not None else None
    results = await bench.execute()
    if task is not None:
        assert task.done(), "the benchmark ended before its fault happened"
        task.result()
    runs = pd.read_parquet(results.path / "runs.parquet")
    return results, runs[runs["backend"] == backend].set_index("run_id")


def deduplicated(runs: pd.DataFrame) -> int:
    """Executions the ledger recognised by their key and did not apply again."""
    return sum(
        int(json.loads(d)["effects_exactly_once"]["deduplicated_retries"])
        for d in runs["verdict_detail"]
    )
