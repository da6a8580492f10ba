"""The OpenAI Agents SDK on Temporal worker: `backends.framework.temporal_worker` with
the agent workflow, the tool activities, and Temporal's `OpenAIAgentsPlugin` (its
Pydantic data converter, the model activity on the simulated provider, the SDK's runner
overrides). Tracing to OpenAI's platform is disabled (no traffic leaves loopback).

Run as `python -m backends.openai_agents.worker ...` (`WorkerArgs`, `FrameworkWorkerOptions`).
"""

from __future__ import annotations

import os
from datetime import timedelta

from backends.framework.runtime import WorkerRuntime
from backends.framework.temporal import FrameworkWorkerOptions
from backends.framework.temporal_worker import WorkerParts, main

__all__ = ["build"]


def build(runtime: WorkerRuntime, options: FrameworkWorkerOptions) -> WorkerParts:
    os.environ["OPENAI_AGENTS_DISABLE_TRACING"] = "1"
    from agents import set_tracing_disabled
    from temporalio.common import RetryPolicy
    from temporalio.openai_agents import ModelActivityParameters, OpenAIAgentsPlugin

    from backends.openai_agents.agent import model_provider
    from backends.openai_agents.workflow import TOOL_ACTIVITIES, OpenAIAgentsWorkflow

    set_tracing_disabled(True)
    plugin = OpenAIAgentsPlugin(
        model_params=ModelActivityParameters(
            start_to_close_timeout=timedelta(seconds=options.start_to_close_s),
            heartbeat_timeout=timedelta(seconds=options.heartbeat_s),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(seconds=0.2), maximum_interval=timedelta(seconds=2)
            ),
        ),
        model_provider=model_provider(runtime),
    )
    return WorkerParts(
        workflows=[OpenAIAgentsWorkflow],
        plugins=[plugin],
        activities=list(TOOL_ACTIVITIES.values()),
    )


if __name__ == "__main__":
    main(build, "durabench OpenAI Agents SDK on Temporal worker")
