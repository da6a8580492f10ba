"""Restate's raw floor: the step shape as a plain Restate program.

One workflow invocation per run on the same server durabench's runs used (the
session's embedded server, or the external one), one `ctx.run` per phase (reason, act,
verify), the step record written to the workflow's K/V state, as the SDK's examples
write them. The service runs in this one process on hypercorn, registered with the
admin API as its own deployment; each run is one ingress call that returns the
workflow's result. No worker processes, no measurement rows, no crash points.

Timing uses only what the program has anyway: a step starts when its reason action
starts and ends when verify's `ctx.run` returns to the handler (the server
acknowledged its journal entry). Start latency runs from the ingress call to the first
reason action.

Run as `python -m backends.restate.floor --json --ingress URL --admin URL --scenario F ...`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import socket
import time
import uuid
from typing import Any

import restate
from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config
from restate import RunOptions, WorkflowContext

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
from backends.restate.client import RestateClient, ServerAddress
from backends.restate.messages import service_name, step_key
from harness.platform.base import free_port
from harness.scenario import load_scenario
from harness.workload import Decision, next_move, verify_output

__all__ = ["FloorTimes", "floor_programs", "floor_workflow", "main"]

DICT = RunOptions[dict[str, Any]](type_hint=dict)
FLAG = RunOptions[bool](type_hint=bool)
SERVE_WAIT_S = 10.0


def floor_programs(backend: Any, env: BackendEnv) -> list[FloorProgram]:
    """The backend's server (embedded or external)."""
    address: ServerAddress | None = backend.address
    if address is None:
        return []
    args = ("--ingress", address.ingress_url, "--admin", address.admin_url)
    return [FloorProgram("restate", "backends.restate.floor", args)]


@dataclasses.dataclass
class FloorTimes:
    """Step starts and ends and service time, kept by this process outside the journal."""

    started: dict[tuple[str, int], float] = dataclasses.field(default_factory=dict)
    ended: dict[tuple[str, int], float] = dataclasses.field(default_factory=dict)
    service_ms: dict[tuple[str, int], float] = dataclasses.field(default_factory=dict)

    def note(self, run_id: str, step: int, service_ms: float) -> None:
        key = (run_id, step)
        self.service_ms[key] = self.service_ms.get(key, 0.0) + service_ms


def floor_workflow(name: str, svc: Services, times: FloorTimes) -> restate.Workflow:
    """The RAV loop as a workflow: three durable steps per step, the record in K/V."""
    workflow = restate.Workflow(name)
    policy = svc.scenario.verify

    @workflow.main()
    async def run(ctx: WorkflowContext, run_id: str) -> int:
        async def reason(step: int, attempt: int) -> dict[str, Any]:
            times.started.setdefault((run_id, step), time.time())
            decision, service_ms = await call_llm(svc, run_id, step, attempt)
            times.note(run_id, step, service_ms)
            return dataclasses.asdict(decision)

        async def act(step: int, attempt: int, decision: Decision) -> dict[str, Any]:
            output, service_ms = await call_tool(svc, run_id, step, attempt, decision)
            times.note(run_id, step, service_ms)
            return output

        async def verify(decision: Decision, output: dict[str, Any]) -> bool:
            return verify_output(decision, output)

        for step in range(svc.scenario.steps):
            decision = Decision(**await ctx.run_typed("reason", reason, DICT, step, 1))
            attempt, verdicts = 1, []
            while True:
                output = await ctx.run_typed("act", act, DICT, step, attempt, decision)
                verified = await ctx.run_typed("verify", verify, FLAG, decision, output)
                verdicts.append(verified)
                move = next_move(policy, verified, attempt)
                if move in ("commit", "abort"):
                    break
                attempt += 1
                if move == "replan":
                    data = await ctx.run_typed("reason", reason, DICT, step, attempt)
                    decision = Decision(**data)
            times.ended[(run_id, step)] = time.time()
            ctx.set(
                step_key(step),
                {"index": step, "tool": decision.tool, "arguments": decision.arguments,
                 "thought": decision.thought, "output": output, "verdicts": verdicts,
                 "attempts": attempt},
            )  # fmt: skip
            if move == "abort":
                return step + 1
        return svc.scenario.steps

    return workflow


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


async def _floor(args: argparse.Namespace) -> None:
    scenario = load_scenario(args.scenario)
    resolve_counts(args, scenario)
    tag = uuid.uuid4().hex[:8]
    name = service_name(tag, prefix="durabench_floor")
    times, samples = FloorTimes(), Samples()
    client = RestateClient(ServerAddress.of(args.ingress, args.admin))
    stop = asyncio.Event()
    port = free_port()
    async with open_http() as http:
        svc = Services(scenario, http, args.llm_url, args.tools_url)
        config = Config()
        config.bind = [f"127.0.0.1:{port}"]
        config.accesslog = None
        app = restate.app(services=[floor_workflow(name, svc, times)])
        server = asyncio.create_task(hypercorn_serve(app, config, shutdown_trigger=stop.wait))
        try:
            give_up = time.time() + SERVE_WAIT_S
            while not _listening(port) and time.time() < give_up:
                await asyncio.sleep(0.02)
            await client.register(f"http://127.0.0.1:{port}")

            async def one(run_id: str) -> None:
                requested = time.time()
                url = client.handler_url(name, run_id, "run")
                done = await client.request("POST", url, run_id, timeout_s=scenario.deadline_s)
                samples.start(run_id, requested, times.started[(run_id, 0)])
                for step in range(int(done)):
                    key = (run_id, step)
                    samples.step(
                        run_id, step, times.started[key], times.ended[key],
                        times.service_ms.get(key, 0.0),
                    )  # fmt: skip

            wall = await closed_loop(floor_run_ids(scenario, args.runs), args.concurrency, one)
        finally:
            stop.set()
            with contextlib.suppress(BaseException):
                await server
            await client.close()
    emit("restate", args, samples, wall)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="durabench raw floor: Restate")
    add_common_arguments(parser)
    parser.add_argument("--ingress", required=True, help="the server's ingress URL")
    parser.add_argument("--admin", required=True, help="the server's admin URL")
    asyncio.run(_floor(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
