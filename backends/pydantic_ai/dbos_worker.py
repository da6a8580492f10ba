"""The Pydantic AI on DBOS worker: the DBOS backend's executor process
(`backends.dbos.worker`: the run's system schema, the shared queue, its slot as the
executor id, recovery of its PENDING workflows when it restarts), registering the
Pydantic AI workflow instead of the hand-written one.

Run as `python -m backends.pydantic_ai.dbos_worker ...` (`WorkerArgs`, `DbosWorkerOptions`),
the system database DSN in `$DURABENCH_WORKER_DSN`.
"""

from __future__ import annotations

from backends.dbos.worker import DbosWorkerOptions, main
from backends.framework.runtime import WorkerRuntime, configure
from backends.workercli import WorkerArgs
from harness.agent import AgentContext

__all__ = ["bind_agent"]


def bind_agent(args: WorkerArgs[DbosWorkerOptions], ctx: AgentContext) -> None:
    """Configure the framework runtime, then build the agent and register its workflow."""
    from backends.dbos import crashpoints
    from backends.pydantic_ai import dbos_workflow

    dbos_workflow.register(configure(WorkerRuntime(ctx.scenario, args.llm_url, ctx=ctx)))
    if ctx.recorder.failpoints is not None:
        crashpoints.install(ctx.recorder)


if __name__ == "__main__":
    main(bind=bind_agent, description="durabench Pydantic AI on DBOS worker")
