"""What the raw floors of the framework-on-Temporal backends share (the programs:
backends/pydantic_ai/floor.py, backends/openai_agents/floor.py).

Each floor is the framework's own program on the session's Temporal server: the
adapter's agent definition, the integration's plugin, one workflow per run, a worker and
a client in this one process (as the temporal floor, backends/temporal/floor.py). What
the framework does not do itself is done plainly: the tool body acts against the tool
service with the stable key and runs the verify check (`act_plainly`); no Recorder, no
measured transport, no query, no hooks in the agent run.

A step is timed as the adapter times it: from the model request that reasons it to the
first model request whose conversation carries its committing verdict (the framework has
then recorded the tool activity's result and moved on; the adapter writes its `commit`
row there). The only instrument is an event hook on the model client noting each
request's send time, body and the service time its answer reports; the requests are
read (`infer_position`, as the simulated provider reads them) after the run.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx2

from backends.baseline.floor import (
    Samples,
    Services,
    call_tool,
    closed_loop,
    emit,
    floor_run_ids,
    open_http,
)
from harness.scenario import Scenario
from harness.services.common import SERVICE_TIME_HEADER
from harness.services.conversation import Verdict, business_arguments, infer_position
from harness.workload import Decision, next_move, verify_output

__all__ = [
    "NOTES",
    "FloorNotes",
    "FloorParts",
    "act_plainly",
    "drive",
    "noting_client",
    "record_samples",
]

HTTP_TIMEOUT_S = 600.0


@dataclass
class FloorNotes:
    """What the floor notes while it runs: each model request's send time, body and the
    service time of its answer; the tool service's time per (run, step)."""

    services: Services | None = None
    requests: list[list[Any]] = field(default_factory=list)  # [sent epoch s, body, service ms]
    pending: dict[int, list[Any]] = field(default_factory=dict)
    tool_ms: dict[tuple[str, int], float] = field(default_factory=dict)


NOTES = FloorNotes()  # this process's (the module is passed through the sandbox)


async def _sent(request: httpx2.Request) -> None:
    entry = [time.time(), request.content, 0.0]
    NOTES.requests.append(entry)
    NOTES.pending[id(request)] = entry


async def _answered(response: httpx2.Response) -> None:
    entry = NOTES.pending.pop(id(response.request), None)
    if entry is not None:
        entry[2] = float(response.headers.get(SERVICE_TIME_HEADER, 0.0))


def noting_client() -> httpx2.AsyncClient:
    """A plain `httpx2` client for the model, noting each request (the floor's instrument)."""
    hooks: dict[str, list[Callable[..., Any]]] = {"request": [_sent], "response": [_answered]}
    return httpx2.AsyncClient(timeout=HTTP_TIMEOUT_S, event_hooks=hooks)


async def act_plainly(run_id: str, tool: str, arguments: dict[str, Any]) -> Verdict:
    """One act with the key `run/step/attempt`, the verify check and the policy's move."""
    svc = NOTES.services
    if svc is None:
        raise RuntimeError("floor: a tool ran before the floor set its services")
    step, attempt = int(arguments["step"]), int(arguments["attempt"])
    decision = Decision(tool, business_arguments(arguments), "")
    output, service_ms = await call_tool(svc, run_id, step, attempt, decision)
    key = (run_id, step)
    NOTES.tool_ms[key] = NOTES.tool_ms.get(key, 0.0) + service_ms
    verified = verify_output(decision, output)
    move = next_move(svc.scenario.verify, verified, attempt)
    return Verdict(step, attempt, verified, move, output)


def record_samples(
    scenario: Scenario, notes: FloorNotes, requested: dict[str, float], samples: Samples
) -> None:
    """Per-step samples and start latencies from the noted requests (after the run)."""
    starts: dict[tuple[str, int], float] = {}
    ends: dict[tuple[str, int], float] = {}
    llm_ms: dict[tuple[str, int], float] = {}
    for sent, body, service_ms in notes.requests:
        try:
            position = infer_position(scenario, json.loads(body)["messages"])
        except (ValueError, KeyError, TypeError):
            continue  # not a tagged conversation
        last = position.last
        if last is not None and last.move == "commit":
            key = (position.run_id, last.step)
            ends[key] = min(ends.get(key, sent), sent)
        if position.kind in ("final", "aborted"):
            continue  # the closing answer is no step's reason (nor the adapter's)
        key = (position.run_id, position.step)
        starts[key] = min(starts.get(key, sent), sent)
        llm_ms[key] = llm_ms.get(key, 0.0) + service_ms
    for key in sorted(ends):
        if key not in starts:
            continue
        service_ms = llm_ms.get(key, 0.0) + notes.tool_ms.get(key, 0.0)
        samples.step(key[0], key[1], starts[key], ends[key], service_ms)
    for run_id, at in requested.items():
        if (run_id, 0) in starts:
            samples.start(run_id, at, starts[(run_id, 0)])


@dataclass(frozen=True)
class FloorParts:
    """What one framework's floor registers and starts."""

    program: str
    workflow: str  # the workflow type started per run
    workflows: Sequence[type]
    plugins: Sequence[Any]
    start_input: Callable[[str], Any]  # run id -> the workflow's input
    activities: Sequence[Any] = ()


async def drive(args: argparse.Namespace, scenario: Scenario, parts: FloorParts) -> None:
    """Every run as one workflow, `args.concurrency` in flight; the samples on stdout."""
    from temporalio.client import Client
    from temporalio.worker import Worker

    client = await Client.connect(
        args.address, namespace=args.namespace, plugins=list(parts.plugins)
    )
    queue = f"durabench-floor-{uuid.uuid4().hex[:12]}"
    requested: dict[str, float] = {}
    async with open_http() as http:
        NOTES.services = Services(scenario, http, args.llm_url, args.tools_url)
        worker = Worker(
            client,
            task_queue=queue,
            workflows=list(parts.workflows),
            activities=list(parts.activities),
        )

        async def one(run_id: str) -> None:
            requested[run_id] = time.time()
            handle = await client.start_workflow(
                parts.workflow, parts.start_input(run_id), id=f"{queue}-{run_id}", task_queue=queue
            )
            await handle.result()

        async with worker:
            wall = await closed_loop(floor_run_ids(scenario, args.runs), args.concurrency, one)
    samples = Samples()
    record_samples(scenario, NOTES, requested, samples)
    emit(parts.program, args, samples, wall)
