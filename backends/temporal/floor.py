"""Temporal's raw floor: the step shape as a plain Temporal program.

One workflow per run on the same server durabench's runs used (the session's dev
server, its SQLite pragmas and lifted poll cap, or the external cluster), one activity
per phase (reason, act, verify), the step record kept in the workflow's state. The
worker and the client live in this one process, as in the SDK's samples; no heartbeats,
no queries, no measurement activity.

Timing uses only what the program has anyway: a step starts when its reason activity
starts (this process's clock) and ends at `workflow.now()` of the workflow task that
receives verify's result, the task that follows the result being recorded in the
history (the server's clock on the same host). Start latency runs from the call to
`start_workflow` to the first reason activity.

Run as `python -m backends.temporal.floor --json --address H:P --scenario F ...`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
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
    from harness.scenario import VerifyPolicy, load_scenario
    from harness.workload import Decision, next_move, verify_output

__all__ = ["FloorInput", "FloorWorkflow", "floor_programs", "main"]

WORKFLOW = "durabench-floor"


def floor_programs(backend: Any, env: BackendEnv) -> list[FloorProgram]:
    """The backend's server (embedded or external) and namespace."""
    settings = backend._settings
    if settings is None:
        return []
    args = ["--address", settings.address, "--namespace", settings.namespace]
    if settings.uses_tls:
        return []  # the floor speaks plain gRPC to the embedded server only
    return [FloorProgram("temporal", "backends.temporal.floor", tuple(args))]


@dataclass(frozen=True)
class FloorInput:
    run_id: str
    steps: int
    on_failure: str
    max_attempts: int
    timeout_s: float


@dataclass(frozen=True)
class Phase:
    run_id: str
    step: int
    attempt: int
    tool: str = ""
    arguments: dict[str, Any] | None = None
    thought: str = ""
    output: dict[str, Any] | None = None

    def decision(self) -> Decision:
        return Decision(self.tool, self.arguments or {}, self.thought)


class FloorActivities:
    """Reason, act and verify; service times and step starts go to this process's dicts."""

    def __init__(self, svc: Services) -> None:
        self.svc = svc
        self.started: dict[tuple[str, int], float] = {}
        self.service_ms: dict[tuple[str, int], float] = {}

    def _note(self, req: Phase, service_ms: float) -> None:
        key = (req.run_id, req.step)
        self.service_ms[key] = self.service_ms.get(key, 0.0) + service_ms

    @activity.defn(name="reason")
    async def reason(self, req: Phase) -> Decision:
        self.started.setdefault((req.run_id, req.step), time.time())
        decision, service_ms = await call_llm(self.svc, req.run_id, req.step, req.attempt)
        self._note(req, service_ms)
        return decision

    @activity.defn(name="act")
    async def act(self, req: Phase) -> dict[str, Any]:
        output, service_ms = await call_tool(
            self.svc, req.run_id, req.step, req.attempt, req.decision()
        )
        self._note(req, service_ms)
        return output

    @activity.defn(name="verify")
    async def verify(self, req: Phase) -> bool:
        return verify_output(req.decision(), req.output or {})


@workflow.defn(name=WORKFLOW)
class FloorWorkflow:
    """The RAV loop; returns when each step's verify result was received (epoch s)."""

    def __init__(self) -> None:
        self.steps: list[dict[str, Any]] = []

    @workflow.run
    async def run(self, spec: FloorInput) -> list[float]:
        policy = VerifyPolicy.model_validate(
            {"on_failure": spec.on_failure, "max_attempts": spec.max_attempts}
        )
        timeout = timedelta(seconds=spec.timeout_s)
        ends: list[float] = []
        for step in range(spec.steps):
            decision: Decision = await workflow.execute_activity(
                "reason", Phase(spec.run_id, step, 1), result_type=Decision,
                start_to_close_timeout=timeout,
            )  # fmt: skip
            attempt, verdicts = 1, []
            while True:
                phase = Phase(
                    spec.run_id, step, attempt, decision.tool, decision.arguments, decision.thought
                )
                output: dict[str, Any] = await workflow.execute_activity(
                    "act", phase, result_type=dict, start_to_close_timeout=timeout
                )
                verified: bool = await workflow.execute_activity(
                    "verify",
                    Phase(**{**phase.__dict__, "output": output}),
                    result_type=bool,
                    start_to_close_timeout=timeout,
                )
                verdicts.append(verified)
                move = next_move(policy, verified, attempt)
                if move in ("commit", "abort"):
                    break
                attempt += 1
                if move == "replan":
                    decision = await workflow.execute_activity(
                        "reason", Phase(spec.run_id, step, attempt), result_type=Decision,
                        start_to_close_timeout=timeout,
                    )  # fmt: skip
            ends.append(workflow.now().timestamp())
            self.steps.append(
                {"index": step, "tool": decision.tool, "arguments": decision.arguments,
                 "thought": decision.thought, "output": output, "verdicts": verdicts,
                 "attempts": attempt}
            )  # fmt: skip
            if move == "abort":
                break
        return ends


async def _floor(args: argparse.Namespace) -> None:
    from temporalio.client import Client
    from temporalio.worker import Worker

    scenario = load_scenario(args.scenario)
    resolve_counts(args, scenario)
    client = await Client.connect(args.address, namespace=args.namespace)
    queue = f"durabench-floor-{uuid.uuid4().hex[:12]}"
    samples = Samples()
    async with open_http() as http:
        acts = FloorActivities(Services(scenario, http, args.llm_url, args.tools_url))
        worker = Worker(
            client,
            task_queue=queue,
            workflows=[FloorWorkflow],
            activities=[acts.reason, acts.act, acts.verify],
        )

        async def one(run_id: str) -> None:
            requested = time.time()
            spec = FloorInput(
                run_id,
                scenario.steps,
                scenario.verify.on_failure,
                scenario.verify.max_attempts,
                scenario.deadline_s,
            )
            handle = await client.start_workflow(
                WORKFLOW, spec, id=f"{queue}-{run_id}", task_queue=queue, result_type=list
            )
            ends: list[float] = await handle.result()
            samples.start(run_id, requested, acts.started[(run_id, 0)])
            for step, end in enumerate(ends):
                key = (run_id, step)
                samples.step(run_id, step, acts.started[key], end, acts.service_ms.get(key, 0.0))

        async with worker:
            wall = await closed_loop(floor_run_ids(scenario, args.runs), args.concurrency, one)
    emit("temporal", args, samples, wall)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="durabench raw floor: Temporal")
    add_common_arguments(parser)
    parser.add_argument("--address", required=True)
    parser.add_argument("--namespace", default="default")
    args = parser.parse_args(argv)
    # as `python -m` this module is __main__; the workflow sandbox needs it by its name
    from backends.temporal import floor

    asyncio.run(floor._floor(args))
    # The SDK's Rust bridge keeps native threads that can take the GIL while the
    # interpreter finalizes: a SIGABRT ("PyGILState_Release ... finalizing",
    # temporalio/sdk-python#300) after the figures were printed. They are flushed: end
    # the process without finalizing.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
