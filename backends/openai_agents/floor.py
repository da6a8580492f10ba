"""The OpenAI Agents SDK on Temporal's raw floor: the framework's own program, then the
hand-written Temporal floor (so a summary shows both ratios: to its own floor, the
adapter's fidelity; to the Temporal floor, what the framework costs over a hand-written
workflow).

The program: the agent run with `Runner.run` in one workflow per run on the session's
Temporal server, the client and worker with Temporal's `OpenAIAgentsPlugin` (its data
converter, the model activity on the simulated provider) in this one process
(backends/openai_agents/floor_workflow.py; what the framework floors share and how a
step is timed: backends/framework/floor.py). Tracing is off (no traffic leaves loopback).

Run as `python -m backends.openai_agents.floor --json --address H:P --scenario F ...`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from datetime import timedelta
from typing import Any

from backends.base import BackendEnv, FloorProgram
from backends.baseline.floor import add_common_arguments, resolve_counts

__all__ = ["PROGRAM", "floor_programs", "main"]

PROGRAM = "openai-agents:temporal"


def floor_programs(backend: Any, env: BackendEnv) -> list[FloorProgram]:
    """The framework's floor first, then the hand-written Temporal floor (same server)."""
    from backends.temporal import floor as temporal_floor

    hand_written = temporal_floor.floor_programs(backend, env)
    if not hand_written:
        return []  # no plain-gRPC server to run on (the Temporal floor's rule)
    own = FloorProgram(PROGRAM, __name__, hand_written[0].args)
    return [own, *hand_written]


async def _floor(args: argparse.Namespace) -> None:
    os.environ["OPENAI_AGENTS_DISABLE_TRACING"] = "1"
    from agents import set_tracing_disabled
    from temporalio.openai_agents import ModelActivityParameters, OpenAIAgentsPlugin

    from backends.framework.floor import FloorParts, drive, noting_client
    from backends.framework.runtime import WorkerRuntime, configure
    from backends.openai_agents.agent import model_provider
    from backends.temporal.backend import DEFAULT_HEARTBEAT_S
    from harness.scenario import load_scenario

    set_tracing_disabled(True)
    scenario = load_scenario(args.scenario)
    resolve_counts(args, scenario)
    # the adapter's activity settings: the scenario's deadline, the default heartbeat
    runtime = configure(
        WorkerRuntime(
            scenario,
            args.llm_url,
            heartbeat_s=min(DEFAULT_HEARTBEAT_S, scenario.deadline_s),
            start_to_close_s=scenario.deadline_s,
        )
    )
    from backends.openai_agents.floor_workflow import (
        TOOL_ACTIVITIES,
        WORKFLOW,
        FloorInput,
        OpenAIAgentsFloorWorkflow,
    )
    from backends.openai_agents.workflow import RETRY

    plugin = OpenAIAgentsPlugin(
        model_params=ModelActivityParameters(
            start_to_close_timeout=timedelta(seconds=runtime.start_to_close_s),
            heartbeat_timeout=timedelta(seconds=runtime.heartbeat_s),
            retry_policy=RETRY,
        ),
        model_provider=model_provider(runtime, noting_client()),
    )
    max_attempts = scenario.verify.max_attempts
    parts = FloorParts(
        program=PROGRAM,
        workflow=WORKFLOW,
        workflows=[OpenAIAgentsFloorWorkflow],
        plugins=[plugin],
        start_input=lambda run_id: FloorInput(run_id, scenario.name, scenario.steps, max_attempts),
        activities=list(TOOL_ACTIVITIES.values()),
    )
    await drive(args, scenario, parts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="durabench raw floor: the OpenAI Agents SDK on Temporal"
    )
    add_common_arguments(parser)
    parser.add_argument("--address", required=True)
    parser.add_argument("--namespace", default="default")
    asyncio.run(_floor(parser.parse_args(argv)))
    # the Temporal SDK's native threads and interpreter finalization (temporalio/sdk-python#300,
    # as in backends/temporal/floor.py): the figures are flushed, end without finalizing
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
