"""The Pydantic AI on Temporal worker: `backends.framework.temporal_worker` with the
Pydantic AI workflow and the integration's `PydanticAIPlugin` (its Pydantic payload
converter, sandbox pass-throughs, and the agent's activities from
`__pydantic_ai_agents__`).

Run as `python -m backends.pydantic_ai.worker ...` (`WorkerArgs`, `FrameworkWorkerOptions`).
"""

from __future__ import annotations

from backends.framework.runtime import WorkerRuntime
from backends.framework.temporal import FrameworkWorkerOptions
from backends.framework.temporal_worker import WorkerParts, main

__all__ = ["build"]


def build(runtime: WorkerRuntime, options: FrameworkWorkerOptions) -> WorkerParts:
    from pydantic_ai.durable_exec.temporal import PydanticAIPlugin

    from backends.pydantic_ai.workflow import PydanticAIAgentWorkflow

    del runtime, options  # the agent reads the runtime at import
    return WorkerParts(workflows=[PydanticAIAgentWorkflow], plugins=[PydanticAIPlugin()])


if __name__ == "__main__":
    main(build, "durabench Pydantic AI on Temporal worker")
