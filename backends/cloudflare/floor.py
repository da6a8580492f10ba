"""Cloudflare's raw floor: the step shape as a plain Workflow (src/floor.js) on the same
local runtime the benchmark ran on (the session's wrangler dev, its persist directory).

Per step three `step.do`s (reason: one chat completion; act: one tool call with the
key `run/step/attempt`; verify) with the runtime's default step config: no measurement
rows, no crash points, no transient retries, no long-poll routes of durabench's in its
loop. The Workflow times itself (a step from its reason call to the moment verify's
`step.do` handed back its persisted output) and returns the timings; this program only
creates the instances through the Worker's create route, waits for each to complete
(the same long-poll route the backend's `wait` uses, so both load the runtime alike)
and reads the timings back.
Start latency runs from the create request to the first reason call.

Run as `python -m backends.cloudflare.floor --json --scenario F ... --runtime-url U`.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from backends.base import BackendEnv, FloorProgram
from backends.baseline.floor import (
    Samples,
    add_common_arguments,
    closed_loop,
    emit,
    floor_run_ids,
    resolve_counts,
)
from backends.cloudflare.client import LocalApi
from backends.cloudflare.settings import FLOOR, TERMINAL_STATUSES, instance_id
from harness.errors import BackendError
from harness.scenario import load_scenario

__all__ = ["floor_programs", "main"]

ROWS_PROGRAM = "cloudflare+rows"
WAIT_MS = 2000  # the same long-poll the backend's `wait` uses: no status polling load


def floor_programs(backend: Any, env: BackendEnv) -> list[FloorProgram]:
    """The session's runtime (the local variant only: a deployed Worker has no floor here)."""
    if getattr(backend, "account", None) is not None:
        return []
    url = ("--runtime-url", backend.runtime_url)
    return [
        FloorProgram("cloudflare", "backends.cloudflare.floor", url),
        # the same Workflow writing the adapter's five console rows per step: what the
        # measurement channel through wrangler's log costs, apart from the adapter
        FloorProgram(ROWS_PROGRAM, "backends.cloudflare.floor", (*url, "--rows")),
    ]


async def _floor(args: argparse.Namespace) -> None:
    scenario = load_scenario(args.scenario)
    resolve_counts(args, scenario)
    api = LocalApi(args.runtime_url)
    samples = Samples()
    try:

        async def one(run_id: str) -> None:
            spec = {
                "run_id": run_id,
                "steps": scenario.steps,
                "on_failure": scenario.verify.on_failure,
                "max_attempts": scenario.verify.max_attempts,
                "rows": args.rows,
            }
            instance = instance_id("floor", run_id)
            requested = time.time()
            await api.create(FLOOR, instance, spec)
            while True:
                snapshot = await api.wait(FLOOR, instance, WAIT_MS)
                if snapshot.status in TERMINAL_STATUSES:
                    break
            if snapshot.status != "complete" or not isinstance(snapshot.output, dict):
                raise BackendError(f"floor instance {instance}: {snapshot.status} {snapshot.error}")
            timings = snapshot.output["timings"]
            if timings:
                samples.start(run_id, requested, float(timings[0]["start"]))
            for t in timings:
                samples.step(
                    run_id,
                    int(t["step"]),
                    float(t["start"]),
                    float(t["end"]),
                    float(t["service_ms"]),
                )

        wall = await closed_loop(floor_run_ids(scenario, args.runs), args.concurrency, one)
    finally:
        await api.close()
    emit(ROWS_PROGRAM if args.rows else "cloudflare", args, samples, wall)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="durabench raw floor: Cloudflare Workflows")
    add_common_arguments(parser)
    parser.add_argument("--runtime-url", required=True, help="the session's wrangler dev")
    parser.add_argument(
        "--rows", action="store_true", help="also write the adapter's console rows per step"
    )
    asyncio.run(_floor(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
