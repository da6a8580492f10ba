"""What the Restate tests share: the fast-retry backend name, waiting for progress, and
what a run left behind."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from harness.measure import read_rows
from harness.runner import BenchmarkRun

__all__ = [
    "BACKEND",
    "POLL_S",
    "WAIT_S",
    "act_in_flight",
    "commits_reach",
    "persisted",
    "rows_of",
]

BACKEND = "restate"
POLL_S = 0.02
WAIT_S = 60.0  # bound on waiting for the progress that triggers a fault


def persisted(results_path: Path) -> list[dict[str, Any]]:
    lines = (results_path / "persisted.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def rows_of(bench: BenchmarkRun, backend: str) -> list[dict[str, Any]]:
    if bench.platform is None or bench.results is None:
        return []
    return read_rows(bench.results.backend_dir(backend) / "measurements")


async def commits_reach(bench: BenchmarkRun, backend: str, count: int) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while loop.time() < deadline:
        await asyncio.sleep(POLL_S)
        if sum(1 for r in rows_of(bench, backend) if r["phase"] == "commit") >= count:
            return
    raise AssertionError(f"fewer than {count} commits after {WAIT_S}s")


def act_in_flight(rows: list[dict[str, Any]]) -> str | None:
    """The worker holding an act that was invoked (its `invoke` row is written before
    the tool call) and has not completed, if any."""
    acts = [r for r in rows if r["phase"] == "act"]
    invoked = {(r["run_id"], r["step"], r["attempt"]): r["worker"] for r in acts}
    for r in rows:
        if r["phase"] == "act" and r["outcome"] != "invoke":
            invoked.pop((r["run_id"], r["step"], r["attempt"]), None)
    return next(iter(invoked.values()), None)
