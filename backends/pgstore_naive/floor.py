"""pgstore-naive's raw floors: its row overwrite per step, and the one-row insert.

`pgstore-naive` (the backend's own floor): one JSONB row per run holding the whole run
state, overwritten with one committed UPDATE after each step, as pgstore-naive does;
no status column, heartbeat or claim. `postgres-insert` is Postgres's one-row
committed insert (see `backends.pgstore.floor`). Same server, the floor's own schema.

Run as `python -m backends.pgstore_naive.floor --json --scenario F ...`.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from backends.base import BackendEnv, FloorProgram
from backends.baseline.floor import (
    Samples,
    Services,
    add_common_arguments,
    plain_step,
)
from backends.pgstore.floor import DSN_ENV, floor_dsn, run_pooled_floor
from harness.scenario import Scenario

__all__ = ["floor_programs", "main"]

INSERT = "INSERT INTO floor_runs (run_id, state) VALUES (%s, %s)"
OVERWRITE = "UPDATE floor_runs SET state = %s, updated_at = clock_timestamp() WHERE run_id = %s"


def floor_programs(backend: Any, env: BackendEnv) -> list[FloorProgram]:
    dsn = {DSN_ENV: floor_dsn(env)}
    return [
        FloorProgram("pgstore-naive", "backends.pgstore_naive.floor", (), dsn),
        FloorProgram("postgres-insert", "backends.pgstore.floor", ("--mode", "insert"), dsn),
    ]


async def _run(
    svc: Services, conn: AsyncConnection[Any], scenario: Scenario, run_id: str, samples: Samples
) -> None:
    requested = time.time()
    state: dict[str, Any] = {
        "run_id": run_id,
        "status": "running",
        "steps": [],
        "final_answer": None,
    }
    await conn.execute(INSERT, (run_id, Jsonb(state)))
    for step in range(scenario.steps):
        done = await plain_step(svc, run_id, step)
        if step == 0:
            samples.start(run_id, requested, done.started)
        state["steps"].append(done.record)
        if done.move == "abort":
            state["status"] = "aborted"
        elif step == scenario.steps - 1:
            state["status"] = "completed"
        await conn.execute(OVERWRITE, (Jsonb(state), run_id))
        samples.step(run_id, step, done.started, time.time(), done.service_ms)
        if done.move == "abort":
            return


async def _floor(args: argparse.Namespace) -> None:
    await run_pooled_floor(args, "pgstore-naive", _run)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="durabench raw floor: pgstore-naive")
    add_common_arguments(parser)
    asyncio.run(_floor(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
