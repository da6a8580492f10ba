"""The workload's Pydantic AI agent made durable with the `TemporalDurability` capability
(Pydantic AI's Temporal integration; the older `TemporalAgent` wrapper is deprecated in
favour of it): model requests and tool calls are its activities, with these timeouts and
retries. Built at import of the workflow module (Temporal needs it at the top level)."""

from __future__ import annotations

from datetime import timedelta

import httpx2
from pydantic_ai import Agent
from pydantic_ai.durable_exec.temporal import TemporalDurability
from temporalio.common import RetryPolicy
from temporalio.workflow import ActivityConfig

from backends.framework.runtime import WorkerRuntime
from backends.pydantic_ai.agent import Act, RunDeps, act_here, build_agent

__all__ = ["build_temporal_agent"]

RETRY_INITIAL_S = 0.2
RETRY_MAX_S = 2.0


def build_temporal_agent(
    runtime: WorkerRuntime, act: Act = act_here, http_client: httpx2.AsyncClient | None = None
) -> Agent[RunDeps, str]:
    """The agent with the integration's activity settings (`act`, `http_client`: as for
    `build_agent`; the raw floor gives its own)."""
    retry = RetryPolicy(
        initial_interval=timedelta(seconds=RETRY_INITIAL_S),
        maximum_interval=timedelta(seconds=RETRY_MAX_S),
    )
    config = ActivityConfig(
        start_to_close_timeout=timedelta(seconds=runtime.start_to_close_s),
        heartbeat_timeout=timedelta(seconds=runtime.heartbeat_s),
        retry_policy=retry,
    )
    return build_agent(runtime, TemporalDurability(activity_config=config), act, http_client)
