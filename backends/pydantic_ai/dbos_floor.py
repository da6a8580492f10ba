"""Pydantic AI on DBOS's raw floor: the same agent as a plain program, the way Pydantic AI's
DBOS documentation writes it.

The agent of `backends.pydantic_ai.agent` (its tools, instructions, name and retry
budget) carries the `DBOSDurability` capability, with the same step settings as the
backend's, and `agent.run()` is awaited inside the program's own `@DBOS.workflow`, so
each model request is a DBOS step; the tool's I/O (the act against the tool service with
the stable key `run/step/attempt`, and the verify check) is one `@DBOS.step` the tool
awaits, as the backend's is, and a failed verify raises `ModelRetry` in workflow code.
The model is Pydantic AI's OpenAI chat model on a plain `httpx2` client pointed at the
simulated provider (the SDK's retries off, as the backend's). One workflow per run,
enqueued on a DBOS queue with the backend's `slots` and `poll_s`, DBOS in this one
process, on the same Postgres server in a system schema of the floor's own: no worker
processes, no DBOSClient, no Recorder, no measured transport, no crash-point hooks.

A step's instants are DBOS's own, read back after the run from the recorded steps
(`list_workflow_steps`): it starts when the model step whose answer calls the step's
tool starts, and ends when the model step after its committing tool step starts, the
instant the backend's `commit` row takes (its measured transport sees that request go
out once the tool step's output was recorded); the last step's end is the closing model
request. Time inside the services is what they report, noted by an `httpx2` response
hook (per DBOS step) and by the tool step.

Run as `python -m backends.pydantic_ai.dbos_floor --json --scenario F ...`, the system
database URL in `$DURABENCH_FLOOR_DSN`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from backends.base import BackendEnv, FloorProgram
from backends.baseline.floor import (
    Samples,
    Services,
    add_common_arguments,
    call_tool,
    closed_loop,
    emit,
    floor_run_ids,
    open_http,
    resolve_counts,
)
from harness.scenario import Scenario, load_scenario
from harness.services.common import SERVICE_TIME_HEADER

__all__ = ["DSN_ENV", "PROGRAM", "floor_programs", "main", "step_samples"]

DSN_ENV = "DURABENCH_FLOOR_DSN"
PROGRAM = "pydantic-ai:dbos"
WORKFLOW = "durabench_pydantic_ai_floor"
QUEUE = "durabench_pydantic_ai_floor_runs"
TOOL_STEP = "durabench_rav.floor_tool_call"
MODEL_STEP_MARK = "__model.request"  # in the integration's model step names


def floor_programs(backend: Any, env: BackendEnv) -> list[FloorProgram]:
    """This floor first (the session's Postgres, embedded or --pg-dsn, a system schema of
    the floor's own), then the hand-written DBOS floor (what the framework costs over it)."""
    from backends.dbos import floor as dbos_floor
    from backends.dbos.settings import sqlalchemy_url
    from harness.postgres import backend_dsn, schema_for

    schema = schema_for(env, "pai_dbos_floor")
    args = ("--schema", schema, "--slots", str(backend.slots), "--poll-s", repr(backend.poll_s))
    dsn = {DSN_ENV: sqlalchemy_url(backend_dsn(env))}
    return [FloorProgram(PROGRAM, __name__, args, dsn), *dbos_floor.floor_programs(backend, env)]


@dataclass
class Notes:
    """Time inside the services: per model step (workflow id, function id), per tool
    call (run, step)."""

    model_ms: dict[tuple[str, int], float] = field(default_factory=dict)
    tool_ms: dict[tuple[str, int], float] = field(default_factory=dict)


def _add(table: dict[tuple[str, int], float], key: tuple[str, int], ms: float) -> None:
    table[key] = table.get(key, 0.0) + ms


def step_samples(
    run_id: str, workflow_id: str, steps: Sequence[Any], notes: Notes, samples: Samples
) -> float | None:
    """The run's step samples from its recorded DBOS steps; its first model step's start
    (epoch s), None when nothing was recorded."""
    from pydantic_ai.messages import ModelResponse, ToolCallPart

    began: dict[int, float] = {}
    service: dict[int, float] = {}
    closing: tuple[int, float] | None = None  # the step a recorded verdict closed, and when
    first: float | None = None
    for info in sorted(steps, key=lambda s: int(s["function_id"])):
        name, output = str(info["function_name"]), info["output"]
        started = (info["started_at_epoch_ms"] or 0) / 1000.0
        if MODEL_STEP_MARK in name:
            first = started if first is None else first
            if closing is not None:
                step, _ = closing
                samples.step(run_id, step, began[step], started, service.get(step, 0.0))
                closing = None
            if not isinstance(output, ModelResponse):
                continue
            for part in output.parts:
                if isinstance(part, ToolCallPart):
                    step = int(part.args_as_dict()["step"])
                    began.setdefault(step, started)
                    ms = notes.model_ms.get((workflow_id, int(info["function_id"])), 0.0)
                    service[step] = service.get(step, 0.0) + ms
        elif name == TOOL_STEP and isinstance(output, dict):
            step = int(output["step"])
            service[step] = service.get(step, 0.0) + notes.tool_ms.pop((run_id, step), 0.0)
            if output["move"] in ("commit", "abort"):
                closing = (step, (info["completed_at_epoch_ms"] or 0) / 1000.0)
    if closing is not None:  # no model request after it (an abort's last)
        step, end = closing
        samples.step(run_id, step, began[step], end, service.get(step, 0.0))
    return first


def _define(scenario: Scenario, llm_url: str, svc_box: list[Services], notes: Notes) -> Any:
    """The agent, its tool step and the workflow, registered with DBOS (before it launches)."""
    import httpx2
    from dbos import DBOS
    from openai import AsyncOpenAI
    from pydantic_ai import Agent, FunctionToolset
    from pydantic_ai.durable_exec.dbos import DBOSDurability, StepConfig
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    from backends.dbos.settings import RETRY_SETTINGS
    from backends.pydantic_ai.agent import AGENT_NAME, INSTRUCTIONS, TOOLSET_ID, RunDeps, _tool
    from harness.services.conversation import Verdict, business_arguments, task_prompt
    from harness.workload import Decision, next_move, verify_output

    @DBOS.step(name=TOOL_STEP, **RETRY_SETTINGS)
    async def tool_step(
        run_id: str, tool: str, arguments: dict[str, Any], call_id: str
    ) -> dict[str, Any]:
        step, attempt = int(arguments["step"]), int(arguments["attempt"])
        decision = Decision(tool, business_arguments(arguments), "")
        output, ms = await call_tool(svc_box[0], run_id, step, attempt, decision)
        _add(notes.tool_ms, (run_id, step), ms)
        verified = verify_output(decision, output)
        move = next_move(scenario.verify, verified, attempt)
        verdict = Verdict(step, attempt, verified, move, output)
        return {"call_id": call_id, "tool": tool, **verdict.to_dict()}

    async def act(run_id: str, tool: str, arguments: dict[str, Any], call_id: str) -> Verdict:
        recorded = await tool_step(run_id, tool, arguments, call_id)
        return Verdict(
            int(recorded["step"]),
            int(recorded["attempt"]),
            bool(recorded["verified"]),
            recorded["move"],
            dict(recorded["output"]),
        )

    async def note_service_time(response: httpx2.Response) -> None:
        workflow_id, step_id = DBOS.workflow_id, DBOS.step_id
        if workflow_id is not None and step_id is not None:
            ms = float(response.headers.get(SERVICE_TIME_HEADER, 0.0))
            _add(notes.model_ms, (workflow_id, step_id), ms)

    http = httpx2.AsyncClient(timeout=600.0, event_hooks={"response": [note_service_time]})
    client = AsyncOpenAI(base_url=llm_url, api_key="durabench", http_client=http, max_retries=0)
    model = OpenAIChatModel(scenario.llm.model, provider=OpenAIProvider(openai_client=client))
    toolset = FunctionToolset[RunDeps](
        [_tool(name, act) for name in scenario.tools],
        id=TOOLSET_ID,
        max_retries=scenario.verify.max_attempts,
    )
    durability = DBOSDurability[RunDeps](model_step_config=StepConfig(**RETRY_SETTINGS))  # type: ignore[typeddict-item]
    agent = Agent(
        model,
        name=AGENT_NAME,
        instructions=INSTRUCTIONS,
        deps_type=RunDeps,
        output_type=str,
        toolsets=[toolset],
        capabilities=[durability],
    )

    @DBOS.workflow(name=WORKFLOW)
    async def floor_workflow(run_id: str) -> str:
        prompt = task_prompt(scenario.name, scenario.steps, run_id)
        result = await agent.run(prompt, deps=RunDeps(run_id))
        return result.output

    return floor_workflow


async def _floor(args: argparse.Namespace) -> None:
    from dbos import DBOS, DBOSConfig

    from backends.dbos.backend import WAIT_POLL_S
    from backends.dbos.worker import dbos_config

    scenario = load_scenario(args.scenario)
    resolve_counts(args, scenario)
    url = os.environ.get(DSN_ENV)
    if not url:
        raise SystemExit(f"error: set {DSN_ENV} to the floor's system database URL")
    notes = Notes()
    svc_box: list[Services] = []
    workflow = _define(scenario, args.llm_url, svc_box, notes)
    config: DBOSConfig = dbos_config(url, args.schema, f"floor-{uuid.uuid4().hex[:8]}")  # type: ignore[assignment]
    DBOS(config=config)
    DBOS.launch()
    samples = Samples()
    try:
        queue = await DBOS.register_queue_async(
            QUEUE, worker_concurrency=args.slots, polling_interval_sec=args.poll_s
        )
        async with open_http() as http:
            svc_box.append(Services(scenario, http, args.llm_url, args.tools_url))

            async def one(run_id: str) -> None:
                requested = time.time()
                handle = await queue.enqueue_async(workflow, run_id)
                await handle.get_result(polling_interval_sec=WAIT_POLL_S)
                workflow_id = handle.get_workflow_id()
                steps = await DBOS.list_workflow_steps_async(workflow_id)
                first = step_samples(run_id, workflow_id, steps, notes, samples)
                if first is not None:
                    samples.start(run_id, requested, first)

            wall = await closed_loop(floor_run_ids(scenario, args.runs), args.concurrency, one)
    finally:
        await asyncio.to_thread(DBOS.destroy, workflow_completion_timeout_sec=0)
    emit(PROGRAM, args, samples, wall)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="durabench raw floor: Pydantic AI on DBOS")
    add_common_arguments(parser)
    parser.add_argument("--schema", required=True, help="the floor's DBOS system schema")
    parser.add_argument("--slots", type=int, default=64, help="the queue's worker_concurrency")
    parser.add_argument("--poll-s", type=float, default=0.1, help="the queue's polling interval")
    asyncio.run(_floor(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
