"""The baseline's raw floor, and the plain step every other floor is built from.

A floor is a standalone program that performs durabench's step shape directly, with
nothing of the harness in its loop (no `harness.agent`, no Recorder, no claim queue):
per step one `POST /v1/chat/completions` to the simulated LLM, one tool call with the
idempotency key `run/step/attempt`, the verify check, then the backend's durable write
done the plain SDK way. The baseline's write is an append to a list in memory.

Each floor runs `--runs` runs of the scenario's steps, `--concurrency` in flight, and
prints JSON: per-step samples (wall time from the reason request to the end of the
durable write, time inside the LLM and tool as the services report it, and the
overhead, their difference) and per-run start latency (from asking for the run to its
first phase). The run ids are the benchmark's tasks with a `~floor` trial suffix, so
the simulated services answer exactly what they answer the benchmark's runs.

Run as `python -m backends.baseline.floor --json --scenario F --llm-url U --tools-url U`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from backends.base import BackendEnv, FloorProgram
from harness.scenario import Scenario, load_scenario
from harness.services.common import SERVICE_TIME_HEADER
from harness.services.llm import MARKER
from harness.workload import (
    TRIAL_SEPARATOR,
    Decision,
    Move,
    idempotency_key,
    next_move,
    verify_output,
)

__all__ = [
    "FLOOR_SUFFIX",
    "FloorStep",
    "Samples",
    "Services",
    "add_common_arguments",
    "call_llm",
    "call_tool",
    "closed_loop",
    "emit",
    "floor_programs",
    "floor_run_ids",
    "main",
    "plain_step",
    "quantiles",
]

FLOOR_SUFFIX = f"{TRIAL_SEPARATOR}floor"  # run-000001~floor: the task of run-000001


def floor_programs(backend: object, env: BackendEnv) -> list[FloorProgram]:
    """The baseline has one floor: the plain loop with state in memory."""
    return [FloorProgram("baseline", "backends.baseline.floor")]


# -- the services ------------------------------------------------------------------


@dataclass
class Services:
    """The simulated LLM and tool service, reached with one plain aiohttp session."""

    scenario: Scenario
    http: aiohttp.ClientSession
    llm_url: str
    tools_url: str
    _tools: list[dict[str, Any]] = field(default_factory=list)

    def tool_specs(self) -> list[dict[str, Any]]:
        if not self._tools:
            properties = {
                "item": {"type": "string"},
                "quantity": {"type": "integer"},
                "amount_cents": {"type": "integer"},
                "counterparty": {"type": "string"},
            }
            self._tools = [
                {
                    "type": "function",
                    "function": {
                        "name": name,
                        "parameters": {"type": "object", "properties": properties},
                    },
                }
                for name in self.scenario.tools
            ]
        return self._tools


async def _post(http: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> tuple[Any, float]:
    async with http.post(url, json=body) as response:
        if response.status != 200:
            raise RuntimeError(f"{url} answered {response.status}: {await response.text()}")
        return await response.json(), float(response.headers.get(SERVICE_TIME_HEADER, 0.0))


async def call_llm(svc: Services, run_id: str, step: int, attempt: int) -> tuple[Decision, float]:
    """One chat completion, the request durabench's reason phase sends; (decision, service ms)."""
    prompt = {
        MARKER: {"run_id": run_id, "step": step, "attempt": attempt},
        "task": f"{svc.scenario.name}: choose the tool for step {step}",
    }
    body = {
        "model": svc.scenario.llm.model,
        "messages": [
            {"role": "system", "content": "You are a procurement agent. Call exactly one tool."},
            {"role": "user", "content": json.dumps(prompt)},
        ],
        "tools": svc.tool_specs(),
        "tool_choice": "required",
    }
    data, service_ms = await _post(svc.http, f"{svc.llm_url}/chat/completions", body)
    message = data["choices"][0]["message"]
    call = message["tool_calls"][0]["function"]
    decision = Decision(call["name"], json.loads(call["arguments"]), message.get("content") or "")
    return decision, service_ms


async def call_tool(
    svc: Services, run_id: str, step: int, attempt: int, decision: Decision
) -> tuple[dict[str, Any], float]:
    """One tool execution with the stable key `run/step/attempt`; (output, service ms)."""
    body = {
        "run_id": run_id,
        "step": step,
        "attempt": attempt,
        "idempotency_key": idempotency_key(run_id, step, attempt),
        "arguments": decision.arguments,
    }
    data, service_ms = await _post(svc.http, f"{svc.tools_url}/tools/{decision.tool}", body)
    output: dict[str, Any] = data["output"]
    return output, service_ms


@dataclass
class FloorStep:
    """One step done plainly: its record (as durabench's StepRecord dict), the policy's
    last move, when it started and the time spent inside the services."""

    record: dict[str, Any]
    move: Move
    started: float
    service_ms: float


async def plain_step(svc: Services, run_id: str, step: int) -> FloorStep:
    """Reason, then act and verify until the scenario's verify policy commits or aborts."""
    started = time.time()
    decision, service_ms = await call_llm(svc, run_id, step, 1)
    verdicts: list[bool] = []
    attempt = 1
    while True:
        output, tool_ms = await call_tool(svc, run_id, step, attempt, decision)
        service_ms += tool_ms
        verified = verify_output(decision, output)
        verdicts.append(verified)
        move = next_move(svc.scenario.verify, verified, attempt)
        if move in ("commit", "abort"):
            break
        attempt += 1
        if move == "replan":
            decision, llm_ms = await call_llm(svc, run_id, step, attempt)
            service_ms += llm_ms
    record = {
        "index": step,
        "tool": decision.tool,
        "arguments": decision.arguments,
        "thought": decision.thought,
        "output": output,
        "verdicts": verdicts,
        "attempts": attempt,
    }
    return FloorStep(record, move, started, service_ms)


# -- measurements ------------------------------------------------------------------


@dataclass
class Samples:
    """Per-step samples and per-run start latencies, collected outside the loop."""

    steps: list[dict[str, Any]] = field(default_factory=list)
    starts: list[dict[str, Any]] = field(default_factory=list)

    def step(self, run_id: str, step: int, start: float, end: float, service_ms: float) -> None:
        step_ms = (end - start) * 1000.0
        self.steps.append(
            {
                "run_id": run_id,
                "step": step,
                "step_ms": round(step_ms, 4),
                "service_ms": round(service_ms, 4),
                "overhead_ms": round(step_ms - service_ms, 4),
            }
        )

    def start(self, run_id: str, requested: float, first_phase: float) -> None:
        self.starts.append(
            {"run_id": run_id, "start_latency_ms": round((first_phase - requested) * 1000.0, 4)}
        )


def quantiles(values: list[float]) -> dict[str, float | None]:
    """p50/p95/p99 by linear interpolation (pandas' default), None when empty."""
    out: dict[str, float | None] = {}
    ordered = sorted(values)
    for q in (0.5, 0.95, 0.99):
        if not ordered:
            out[f"p{int(q * 100)}"] = None
            continue
        pos = q * (len(ordered) - 1)
        low = int(pos)
        high = min(low + 1, len(ordered) - 1)
        out[f"p{int(q * 100)}"] = round(
            ordered[low] + (ordered[high] - ordered[low]) * (pos - low), 4
        )
    return out


def emit(program: str, args: argparse.Namespace, samples: Samples, wall_s: float) -> None:
    """The floor's JSON on stdout: samples and their percentiles."""
    result = {
        "program": program,
        "runs": args.runs,
        "concurrency": args.concurrency,
        "wall_s": round(wall_s, 4),
        "steps_per_s": round(len(samples.steps) / wall_s, 3) if wall_s > 0 else None,
        "step_ms": quantiles([s["step_ms"] for s in samples.steps]),
        "overhead_ms": quantiles([s["overhead_ms"] for s in samples.steps]),
        "start_latency_ms": quantiles([s["start_latency_ms"] for s in samples.starts]),
        "samples": samples.steps,
        "starts": samples.starts,
    }
    if args.json:
        print(json.dumps(result, separators=(",", ":")), flush=True)
    else:
        brief = {k: v for k, v in result.items() if k not in ("samples", "starts")}
        print(json.dumps(brief, indent=2), flush=True)


# -- driving -----------------------------------------------------------------------


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output (samples)")
    parser.add_argument("--scenario", required=True)
    parser.add_argument("--llm-url", required=True, help="OpenAI-compatible base URL (…/v1)")
    parser.add_argument("--tools-url", required=True)
    parser.add_argument("--runs", type=int, default=0, help="default: the scenario's runs")
    parser.add_argument("--concurrency", type=int, default=0, help="default: the scenario's")


def floor_run_ids(scenario: Scenario, runs: int) -> list[str]:
    """The benchmark's tasks as floor trials, fresh per invocation (`run-000000~floor-1a2b3c`):
    the same answers, and no idempotency key the tool ledger has seen before."""
    tag = uuid.uuid4().hex[:6]
    return [f"run-{i:06d}{FLOOR_SUFFIX}-{tag}" for i in range(runs)]


def resolve_counts(args: argparse.Namespace, scenario: Scenario) -> None:
    args.runs = args.runs or scenario.runs
    args.concurrency = args.concurrency or scenario.load.concurrency or args.runs


async def closed_loop(
    ids: list[str], concurrency: int, one: Callable[[str], Awaitable[None]]
) -> float:
    """Every run, `concurrency` in flight (the benchmark's closed loop); the wall time."""
    limit = asyncio.Semaphore(concurrency)

    async def guarded(run_id: str) -> None:
        async with limit:
            await one(run_id)

    began = time.time()
    await asyncio.gather(*(guarded(r) for r in ids))
    return time.time() - began


def open_http() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, limit_per_host=0))


async def _baseline(args: argparse.Namespace) -> None:
    scenario = load_scenario(args.scenario)
    resolve_counts(args, scenario)
    samples = Samples()
    memory: dict[str, list[dict[str, Any]]] = {}
    async with open_http() as http:
        svc = Services(scenario, http, args.llm_url, args.tools_url)

        async def one(run_id: str) -> None:
            requested = time.time()
            steps = memory.setdefault(run_id, [])
            for step in range(scenario.steps):
                done = await plain_step(svc, run_id, step)
                if step == 0:
                    samples.start(run_id, requested, done.started)
                steps.append(done.record)  # the baseline's "durable write"
                samples.step(run_id, step, done.started, time.time(), done.service_ms)
                if done.move == "abort":
                    return

        wall = await closed_loop(floor_run_ids(scenario, args.runs), args.concurrency, one)
    emit("baseline", args, samples, wall)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="durabench raw floor: baseline (memory)")
    add_common_arguments(parser)
    asyncio.run(_baseline(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
