"""Raw floors: each backend's step shape written directly against its SDK, run on the
same servers, in the same session, as the benchmark.

A backend names its floor programs (`backends.base.HasFloor`; built-in backends in
their `floor.py`, listed by `BUILTIN_BACKENDS[...].floor`), its own floor first. While
a backend's session is open (its server and store running, the simulated LLM and tool
service up), `record_floor` runs each program as a subprocess at the scenario's
concurrency and appends its per-step samples to `floors.parquet`; `summarize` then
reports each backend's step cost and overhead as a ratio to its own floor. A benchmark
runs the floors once before its runs and once after (BEFORE_PASS, AFTER_PASS).
`durabench floor` (`FloorRun`, harness/floor_run.py) does only that: the same servers,
no benchmark load.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from backends.base import (
    BUILTIN_BACKENDS,
    Backend,
    BackendEnv,
    FloorProgram,
    HasFloor,
)
from harness.errors import DurabenchError
from harness.results import ResultsDir
from harness.scenario import Scenario

__all__ = [
    "AFTER_PASS",
    "BEFORE_PASS",
    "FLOOR_TABLE",
    "ONLY_PASS",
    "FloorError",
    "floor_programs_for",
    "floor_rows",
    "read_floors",
    "record_floor",
    "run_program",
]

FLOOR_TABLE = "floors"
# `run --with-floor` brackets the benchmark's runs with a floor pass before and one after:
# a floor that always ran second (warmer disk, bigger database) would bias every ratio
# one way, and the two passes' spread is the floor's own noise, reported with the ratio.
BEFORE_PASS, AFTER_PASS, ONLY_PASS = "before", "after", "only"
FLOOR_TIMEOUT_S = 900.0
STDERR_TAIL = 2000


class FloorError(DurabenchError):
    """A floor program failed or printed no result."""


def floor_programs_for(name: str, backend: Backend, env: BackendEnv) -> list[FloorProgram]:
    """The floors of `backend` (run under `name`, e.g. 'langgraph:sqlite?durability=sync')."""
    if isinstance(backend, HasFloor):
        return backend.floor_programs(env)
    family = name.partition("?")[0].partition(":")[0]
    builtin = BUILTIN_BACKENDS.get(family)
    if builtin is None or not builtin.floor:
        return []
    module = importlib.import_module(builtin.floor)
    programs: list[FloorProgram] = module.floor_programs(backend, env)
    return programs


def _argv(program: FloorProgram, env: BackendEnv, runs: int, concurrency: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        program.module,
        "--json",
        "--scenario",
        str(env.scenario_path),
        "--llm-url",
        env.llm_url,
        "--tools-url",
        env.tools_url,
        "--runs",
        str(runs),
        "--concurrency",
        str(concurrency),
        *program.args,
    ]


async def run_program(
    program: FloorProgram, env: BackendEnv, runs: int, concurrency: int, log: Path | None = None
) -> dict[str, Any]:
    """Run one floor program to completion; its parsed JSON result."""
    argv = _argv(program, env, runs, concurrency)
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **program.env},
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), FLOOR_TIMEOUT_S)
    except BaseException:
        process.kill()
        await process.wait()
        raise
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_bytes(f"$ {shlex.join(argv)}\n".encode() + stderr)
    text = stdout.decode(errors="replace").strip()
    if process.returncode != 0 or not text:
        tail = stderr.decode(errors="replace")[-STDERR_TAIL:]
        raise FloorError(
            f"floor {program.name} ({program.module}) exited {process.returncode}: {tail}"
        )
    try:
        result: dict[str, Any] = json.loads(text.splitlines()[-1])
    except json.JSONDecodeError as exc:
        raise FloorError(f"floor {program.name}: no JSON result ({exc}): {text[-500:]}") from None
    return result


def floor_rows(
    backend: str,
    program: FloorProgram,
    own: bool,
    result: dict[str, Any],
    floor_pass: str = ONLY_PASS,
) -> list[dict[str, Any]]:
    """floors.parquet rows: one per step sample; a run's start latency on its step 0."""
    starts = {s["run_id"]: s["start_latency_ms"] for s in result.get("starts", [])}
    return [
        {
            "backend": backend,
            "program": program.name,
            "own": own,
            "floor_pass": floor_pass,
            "concurrency": int(result.get("concurrency") or 0),
            "floor_wall_s": float(result.get("wall_s") or 0.0),
            **sample,
            "start_latency_ms": starts.get(sample["run_id"]) if sample["step"] == 0 else None,
        }
        for sample in result.get("samples", [])
    ]


async def record_floor(
    session: Any,
    runs: int | None = None,
    concurrency: int | None = None,
    floor_pass: str = ONLY_PASS,
) -> list[dict[str, Any]]:
    """Run every floor of an open `BackendSession` and append the rows to floors.parquet,
    marked with `floor_pass` (`before` or `after` the benchmark's runs, or `only`)."""
    scenario: Scenario = session.scenario
    runs = runs or scenario.runs
    concurrency = concurrency or scenario.load.concurrency or runs
    programs = floor_programs_for(session.name, session.backend, session.env)
    rows: list[dict[str, Any]] = []
    for index, program in enumerate(programs):
        log = session.env.workdir / "logs" / f"floor-{index}-{floor_pass}.log"
        result = await run_program(program, session.env, runs, concurrency, log)
        rows += floor_rows(session.name, program, index == 0, result, floor_pass)
    session.results.append_table(FLOOR_TABLE, rows)
    return rows


def read_floors(results: ResultsDir) -> pd.DataFrame:
    path = results.path / f"{FLOOR_TABLE}.parquet"
    return pd.read_parquet(path) if path.exists() else pd.DataFrame()
