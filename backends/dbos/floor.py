"""DBOS's raw floor: the step shape as a plain DBOS program.

One workflow per run, enqueued on a DBOS queue (the same polling interval and per-worker
concurrency as the backend's), reason, act and verify as `@DBOS.step`s (reason and act
with the same DBOS retry settings), the step record kept in the workflow's locals, on
the same Postgres server (a system schema of its own). DBOS runs in this one process,
which enqueues and executes, as in DBOS's own examples: no worker processes, no
DBOSClient, no measurement rows, no crash-point hooks.

Timing uses only what the program has anyway: a step starts when its reason step's
function starts and ends when the workflow gets verify's result back, which DBOS hands
over once it recorded that output (the step's last durable write). Start latency runs
from the enqueue call to the first reason step; a run's result is read every 50 ms, as
the backend's `wait` reads it.

Run as `python -m backends.dbos.floor --json --scenario F ...`, the system database URL
in `$DURABENCH_FLOOR_DSN`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from dataclasses import asdict
from typing import Any

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
    resolve_counts,
)
from backends.dbos.backend import WAIT_POLL_S
from backends.dbos.settings import RETRY_SETTINGS, sqlalchemy_url
from harness.scenario import VerifyPolicy, load_scenario
from harness.workload import Decision, next_move, verify_output

__all__ = ["DSN_ENV", "floor_programs", "main"]

DSN_ENV = "DURABENCH_FLOOR_DSN"
WORKFLOW = "durabench_floor"
QUEUE = "durabench_floor_runs"


def floor_programs(backend: Any, env: BackendEnv) -> list[FloorProgram]:
    """The session's Postgres (embedded or --pg-dsn), a system schema of the floor's own."""
    from harness.postgres import backend_dsn, schema_for

    schema = schema_for(env, "dbos_floor")
    args = ("--schema", schema, "--slots", str(backend.slots), "--poll-s", repr(backend.poll_s))
    dsn = {DSN_ENV: sqlalchemy_url(backend_dsn(env))}
    return [FloorProgram("dbos", "backends.dbos.floor", args, dsn)]


class _Floor:
    """The services and what the steps note for the samples (this process only)."""

    svc: Services | None = None
    started: dict[tuple[str, int], float] = {}  # noqa: RUF012 (one per process)
    service_ms: dict[tuple[str, int], float] = {}  # noqa: RUF012

    @classmethod
    def note(cls, run_id: str, step: int, ms: float) -> None:
        cls.service_ms[(run_id, step)] = cls.service_ms.get((run_id, step), 0.0) + ms


def _define() -> Any:
    """The floor's workflow and steps, registered with DBOS (before DBOS launches)."""
    from dbos import DBOS

    @DBOS.step(name="floor.reason", **RETRY_SETTINGS)
    async def reason(run_id: str, step: int, attempt: int) -> dict[str, Any]:
        assert _Floor.svc is not None
        _Floor.started.setdefault((run_id, step), time.time())
        decision, ms = await call_llm(_Floor.svc, run_id, step, attempt)
        _Floor.note(run_id, step, ms)
        return asdict(decision)

    @DBOS.step(name="floor.act", **RETRY_SETTINGS)
    async def act(run_id: str, step: int, attempt: int, decision: dict[str, Any]) -> Any:
        assert _Floor.svc is not None
        output, ms = await call_tool(_Floor.svc, run_id, step, attempt, Decision(**decision))
        _Floor.note(run_id, step, ms)
        return output

    @DBOS.step(name="floor.verify")
    async def verify(decision: dict[str, Any], output: dict[str, Any]) -> bool:
        return verify_output(Decision(**decision), output)

    @DBOS.workflow(name=WORKFLOW)
    async def floor_workflow(spec: dict[str, Any]) -> list[float]:
        run_id = spec["run_id"]
        policy = VerifyPolicy.model_validate(
            {"on_failure": spec["on_failure"], "max_attempts": spec["max_attempts"]}
        )
        ends: list[float] = []
        records: list[dict[str, Any]] = []
        for step in range(spec["steps"]):
            decision = await reason(run_id, step, 1)
            attempt, verdicts = 1, []
            while True:
                output = await act(run_id, step, attempt, decision)
                verified = await verify(decision, output)
                verdicts.append(verified)
                move = next_move(policy, verified, attempt)
                if move in ("commit", "abort"):
                    break
                attempt += 1
                if move == "replan":
                    decision = await reason(run_id, step, attempt)
            ends.append(time.time())
            records.append(
                {**decision, "index": step, "output": output, "verdicts": verdicts,
                 "attempts": attempt}
            )  # fmt: skip
            if move == "abort":
                break
        return ends

    return floor_workflow


async def _floor(args: argparse.Namespace) -> None:
    from dbos import DBOS, DBOSConfig

    from backends.dbos.worker import dbos_config

    scenario = load_scenario(args.scenario)
    resolve_counts(args, scenario)
    url = os.environ.get(DSN_ENV)
    if not url:
        raise SystemExit(f"error: set {DSN_ENV} to the floor's system database URL")
    workflow = _define()
    config: DBOSConfig = dbos_config(url, args.schema, f"floor-{uuid.uuid4().hex[:8]}")  # type: ignore[assignment]
    DBOS(config=config)
    DBOS.launch()
    samples = Samples()
    try:
        queue = await DBOS.register_queue_async(
            QUEUE, worker_concurrency=args.slots, polling_interval_sec=args.poll_s
        )
        async with open_http() as http:
            _Floor.svc = Services(scenario, http, args.llm_url, args.tools_url)

            async def one(run_id: str) -> None:
                spec = {
                    "run_id": run_id,
                    "steps": scenario.steps,
                    "on_failure": scenario.verify.on_failure,
                    "max_attempts": scenario.verify.max_attempts,
                }
                requested = time.time()
                handle = await queue.enqueue_async(workflow, spec)
                ends: list[float] = await handle.get_result(polling_interval_sec=WAIT_POLL_S)
                samples.start(run_id, requested, _Floor.started[(run_id, 0)])
                for step, end in enumerate(ends):
                    key = (run_id, step)
                    samples.step(
                        run_id, step, _Floor.started[key], end, _Floor.service_ms.get(key, 0.0)
                    )

            wall = await closed_loop(floor_run_ids(scenario, args.runs), args.concurrency, one)
    finally:
        await asyncio.to_thread(DBOS.destroy, workflow_completion_timeout_sec=0)
    emit("dbos", args, samples, wall)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="durabench raw floor: DBOS Transact")
    add_common_arguments(parser)
    parser.add_argument("--schema", required=True, help="the floor's DBOS system schema")
    parser.add_argument("--slots", type=int, default=64, help="the queue's worker_concurrency")
    parser.add_argument("--poll-s", type=float, default=0.1, help="the queue's polling interval")
    asyncio.run(_floor(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
