"""pgstore's raw floors: its fenced appends per step, an unfenced event log, and
Postgres's one-row committed insert.

`pgstore` (the backend's own floor): the statements pgstore itself runs per step, sent
directly with psycopg on the same server and tables (`backends.pgstore.store`): the run
started and leased once, then one fenced APPEND (lease and token checked, sequence
allocated, events inserted, one statement) after reason, after act, and after verify with
the step's `step_committed` (and `run_completed` after the last step). No worker, no claim
loop, no fold, no heartbeats, no measurement rows: the ratio to it is the adapter's cost.

`event-log`: the same events as plain committed INSERTs, with no lease or fencing token:
what an event log on Postgres costs at the least (the difference is fencing's price).

`postgres-insert` (the absolute floor): one committed single-row INSERT per step.

All run in their own schema (`floor_<bench id>`), on one autocommit connection per
run in flight, with the server's durability settings (fsync, synchronous_commit on).
The DSN comes from `DURABENCH_FLOOR_DSN`, never the command line.

Run as `python -m backends.pgstore.floor --json --mode fenced|events|insert --scenario F`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from backends.base import BackendEnv, FloorProgram
from backends.baseline.floor import (
    Samples,
    Services,
    add_common_arguments,
    call_llm,
    call_tool,
    closed_loop,
    emit,
    floor_run_ids,
    open_http,
    plain_step,
    resolve_counts,
)
from backends.pgstore import store
from backends.pgstore.fold import Event
from harness.scenario import Scenario, load_scenario
from harness.workload import next_move, verify_output

__all__ = ["DSN_ENV", "floor_dsn", "floor_programs", "main", "open_floor_pool"]

DSN_ENV = "DURABENCH_FLOOR_DSN"
DEFAULT_LEASE_S = 10.0  # pgstore's default `lease_s`
WORK_CHANNEL = "durabench_floor_work"  # START's notification; nobody listens
DONE_CHANNEL = "durabench_floor_done"
LEASE = """
UPDATE runs SET status = 'leased', token = token + 1, worker = 'floor',
    lease_until = clock_timestamp() + %(lease)s * interval '1 second'
WHERE run_id = %(run)s RETURNING token
"""

DDL = """
CREATE TABLE IF NOT EXISTS floor_events (
    run_id text NOT NULL, seq integer NOT NULL, type text NOT NULL,
    step integer, attempt integer, payload jsonb NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (run_id, seq)
);
CREATE TABLE IF NOT EXISTS floor_steps (
    run_id text NOT NULL, step integer NOT NULL, payload jsonb NOT NULL,
    PRIMARY KEY (run_id, step)
);
CREATE TABLE IF NOT EXISTS floor_runs (
    run_id text PRIMARY KEY, state jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
)
"""
EVENT = (
    "INSERT INTO floor_events (run_id, seq, type, step, attempt, payload)"
    " VALUES (%s, %s, %s, %s, %s, %s)"
)
STEP = "INSERT INTO floor_steps (run_id, step, payload) VALUES (%s, %s, %s)"


def floor_dsn(env: BackendEnv) -> str:
    """The session's server (embedded or --pg-dsn) in the floor's own schema."""
    from harness.postgres import backend_dsn, create_schema, schema_for, with_search_path

    schema = schema_for(env, "floor")
    server = backend_dsn(env)
    create_schema(server, schema)
    return with_search_path(server, schema)


def floor_programs(backend: Any, env: BackendEnv) -> list[FloorProgram]:
    dsn = {DSN_ENV: floor_dsn(env)}
    lease = ("--lease-s", str(getattr(backend, "lease_s", DEFAULT_LEASE_S)))
    return [
        FloorProgram("pgstore", "backends.pgstore.floor", ("--mode", "fenced", *lease), dsn),
        FloorProgram("event-log", "backends.pgstore.floor", ("--mode", "events"), dsn),
        FloorProgram("postgres-insert", "backends.pgstore.floor", ("--mode", "insert"), dsn),
    ]


@asynccontextmanager
async def open_floor_pool(count: int) -> AsyncIterator[asyncio.Queue[AsyncConnection[Any]]]:
    """`count` autocommit connections (one per run in flight), tables created."""
    dsn = os.environ.get(DSN_ENV)
    if not dsn:
        raise SystemExit(f"error: set {DSN_ENV} to the floor's DSN")
    conns = [await AsyncConnection.connect(dsn, autocommit=True) for _ in range(count)]
    try:
        for statement in filter(str.strip, (DDL + ";" + store.DDL).split(";")):
            await conns[0].execute(statement)
        free: asyncio.Queue[AsyncConnection[Any]] = asyncio.Queue()
        for conn in conns:
            free.put_nowait(conn)
        yield free
    finally:
        for conn in conns:
            await conn.close()


async def _events_run(
    svc: Services, conn: AsyncConnection[Any], scenario: Scenario, run_id: str, samples: Samples
) -> None:
    """pgstore's events, unfenced: an event INSERT committed after every phase."""
    seq = 0

    async def append(kind: str, step: int, attempt: int, payload: dict[str, Any]) -> None:
        nonlocal seq
        seq += 1
        await conn.execute(EVENT, (run_id, seq, kind, step, attempt, Jsonb(payload)))

    requested = time.time()
    await conn.execute(EVENT, (run_id, 0, "run_started", None, None, Jsonb({})))
    for step in range(scenario.steps):
        started = time.time()
        if step == 0:
            samples.start(run_id, requested, started)
        decision, service_ms = await call_llm(svc, run_id, step, 1)
        await append("reason", step, 1, {"decision": decision.__dict__})
        attempt, verdicts = 1, []
        while True:
            output, tool_ms = await call_tool(svc, run_id, step, attempt, decision)
            service_ms += tool_ms
            await append(
                "act", step, attempt, {"key": f"{run_id}/{step}/{attempt}", "output": output}
            )
            verified = verify_output(decision, output)
            verdicts.append(verified)
            move = next_move(scenario.verify, verified, attempt)
            if move in ("commit", "abort"):
                break
            await append("verify", step, attempt, {"verified": verified})
            attempt += 1
            if move == "replan":
                decision, llm_ms = await call_llm(svc, run_id, step, attempt)
                service_ms += llm_ms
                await append("reason", step, attempt, {"decision": decision.__dict__})
        # verify and step_committed in one transaction, as pgstore appends them
        async with conn.transaction():
            await append("verify", step, attempt, {"verified": verified})
            await append("step_committed", step, attempt, {"attempts": attempt})
        samples.step(run_id, step, started, time.time(), service_ms)
        if move == "abort":
            return


async def _fenced_run(
    svc: Services,
    conn: AsyncConnection[Any],
    scenario: Scenario,
    run_id: str,
    samples: Samples,
    lease_s: float,
) -> None:
    """pgstore's own statements: started and leased once, a fenced append per phase."""

    async def append(*events: Event) -> None:
        await store.append(conn, run_id, token, list(events), lease_s=lease_s,
                           done_channel=DONE_CHANNEL)  # fmt: skip

    requested = time.time()
    await store.start_run(conn, run_id, {}, WORK_CHANNEL)
    cursor = await conn.execute(LEASE, {"run": run_id, "lease": lease_s})
    row = await cursor.fetchone()
    assert row is not None, f"{run_id} was not started"
    token = int(row[0])
    for step in range(scenario.steps):
        started = time.time()
        if step == 0:
            samples.start(run_id, requested, started)
        decision, service_ms = await call_llm(svc, run_id, step, 1)
        await append(Event("reason", step, 1, {"decision": decision.__dict__}))
        attempt = 1
        while True:
            key = f"{run_id}/{step}/{attempt}"
            output, tool_ms = await call_tool(svc, run_id, step, attempt, decision)
            service_ms += tool_ms
            await append(Event("act", step, attempt, {"key": key, "output": output}))
            verified = verify_output(decision, output)
            move = next_move(scenario.verify, verified, attempt)
            if move in ("commit", "abort"):
                break
            await append(Event("verify", step, attempt, {"verified": verified}))
            attempt += 1
            if move == "replan":
                decision, llm_ms = await call_llm(svc, run_id, step, attempt)
                service_ms += llm_ms
                await append(Event("reason", step, attempt, {"decision": decision.__dict__}))
        closing = [
            Event("verify", step, attempt, {"verified": verified}),
            Event("step_committed", step, attempt, {"attempts": attempt}),
        ]
        if move == "abort":
            closing.append(Event("run_aborted"))
        elif step == scenario.steps - 1:
            closing.append(Event("run_completed"))
        await append(*closing)
        samples.step(run_id, step, started, time.time(), service_ms)
        if move == "abort":
            return


async def _insert_run(
    svc: Services, conn: AsyncConnection[Any], scenario: Scenario, run_id: str, samples: Samples
) -> None:
    """The absolute floor: the step record as one committed row."""
    requested = time.time()
    for step in range(scenario.steps):
        done = await plain_step(svc, run_id, step)
        if step == 0:
            samples.start(run_id, requested, done.started)
        await conn.execute(STEP, (run_id, step, Jsonb(done.record)))
        samples.step(run_id, step, done.started, time.time(), done.service_ms)
        if done.move == "abort":
            return


RunDriver = Callable[
    [Services, AsyncConnection[Any], Scenario, str, Samples], Coroutine[Any, Any, None]
]


async def run_pooled_floor(args: argparse.Namespace, program: str, drive: RunDriver) -> None:
    """Drive the floor's runs at its concurrency, each on a pooled connection of its own
    while it runs, and print the figures under `program`'s name."""
    scenario = load_scenario(args.scenario)
    resolve_counts(args, scenario)
    samples = Samples()
    async with open_http() as http, open_floor_pool(args.concurrency) as free:
        svc = Services(scenario, http, args.llm_url, args.tools_url)

        async def one(run_id: str) -> None:
            conn = await free.get()
            try:
                await drive(svc, conn, scenario, run_id, samples)
            finally:
                free.put_nowait(conn)

        wall = await closed_loop(floor_run_ids(scenario, args.runs), args.concurrency, one)
    emit(program, args, samples, wall)


async def _floor(args: argparse.Namespace) -> None:
    if args.mode == "fenced":
        lease_s = args.lease_s

        async def fenced(
            svc: Services, conn: AsyncConnection[Any], scenario: Scenario, run_id: str,
            samples: Samples,
        ) -> None:  # fmt: skip
            await _fenced_run(svc, conn, scenario, run_id, samples, lease_s)

        await run_pooled_floor(args, "pgstore", fenced)
    elif args.mode == "events":
        await run_pooled_floor(args, "event-log", _events_run)
    else:
        await run_pooled_floor(args, "postgres-insert", _insert_run)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="durabench raw floor: pgstore / Postgres insert")
    add_common_arguments(parser)
    parser.add_argument("--mode", choices=("fenced", "events", "insert"), default="fenced")
    parser.add_argument("--lease-s", type=float, default=DEFAULT_LEASE_S)
    asyncio.run(_floor(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
