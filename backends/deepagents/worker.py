"""The Deep Agents worker: LangGraph's claim-table workers (`backends.langgraph`) driving a
deep agent instead of the hand-written graph.

A claimed thread starts with the task prompt, or resumes after a crash the way LangGraph
(and so Deep Agents) documents it: `ainvoke(None, config)` on the same `thread_id`, from
the last checkpoint. A thread is finished when its checkpointed conversation ends on the
model's closing answer (`fold_conversation` says completed or aborted).

Run as `python -m backends.deepagents.worker --variant V --scenario F ...`; the Postgres
DSN comes from the environment variable DURABENCH_LANGGRAPH_DSN.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, cast

import aiohttp
from aiohttp import web
from langchain_core.runnables import RunnableConfig
from langgraph.types import Durability

from backends.deepagents.agent import build_agent, chat_messages
from backends.framework.runtime import WorkerRuntime, configure
from backends.langgraph.graph import thread_config
from backends.langgraph.queue import Claim
from backends.langgraph.signals import FINISHED_ROUTE, WAKE_ROUTE, finished_handler
from backends.langgraph.variants import open_claims, open_saver
from backends.langgraph.worker import RUNNER_KEY, LangGraphWorkerOptions, ThreadRunner, _log, _wake
from backends.workercli import WorkerArgs
from harness.scenario import load_scenario
from harness.services.common import add_common_routes, run_app
from harness.services.conversation import fold_conversation, task_prompt

__all__ = ["DeepAgentRunner", "main"]

FINISHED = frozenset({"completed", "aborted"})


def run_config(thread_id: str, run_id: str, runner: ThreadRunner) -> RunnableConfig:
    config = thread_config(thread_id, runner.scenario)
    config["configurable"] = {**config.get("configurable", {}), "run_id": run_id}
    return config


@dataclass
class DeepAgentRunner(ThreadRunner):
    """Claims threads and drives each deep agent run until its closing answer."""

    async def _drive(self, claim: Claim) -> tuple[str | None, str | None]:
        config = run_config(claim.thread_id, claim.run_id, self)
        command: Any = None  # resume from the last checkpoint
        if claim.claims == 1:
            command = self._opening(claim.run_id)
        else:
            snapshot = await self.graph.aget_state(config)
            values: dict[str, Any] = dict(snapshot.values or {})
            if not values.get("messages"):
                command = self._opening(claim.run_id)
            elif not snapshot.next:
                status, error = self._final(values)
                if status in FINISHED:
                    return status, error
        result = await self.graph.ainvoke(command, config, durability=self.durability)
        return self._final(dict(result))

    def _opening(self, run_id: str) -> dict[str, Any]:
        prompt = task_prompt(self.scenario.name, self.scenario.steps, run_id)
        return {"messages": [{"role": "user", "content": prompt}]}

    def _final(self, values: dict[str, Any]) -> tuple[str, str | None]:  # type: ignore[override]
        messages = chat_messages(values.get("messages") or [])
        last = messages[-1] if messages else {}
        done = last.get("role") == "assistant" and not last.get("tool_calls")
        state = fold_conversation(
            self.scenario.verify,
            messages,
            finished=done,
            output=last.get("content") if done else None,
        )
        if state.status in FINISHED:
            return state.status, None
        return "failed", f"the agent stopped with status {state.status!r}"


def build_app(worker: WorkerArgs[LangGraphWorkerOptions]) -> web.Application:
    app = web.Application()
    add_common_routes(app)
    options = worker.options
    store = options.store()

    async def context(app: web.Application) -> AsyncIterator[None]:
        scenario = load_scenario(worker.scenario)
        runtime = configure(WorkerRuntime(scenario, worker.llm_url))
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
        async with aiohttp.ClientSession(connector=connector) as http:
            runtime.ctx = ctx = worker.agent_context(scenario, http)
            async with open_saver(store, ctx.recorder) as saver, open_claims(store) as claims:
                runner = DeepAgentRunner(
                    scenario=scenario,
                    graph=build_agent(runtime, saver),
                    saver=saver,
                    claims=claims,
                    ctx=ctx,
                    slot=worker.worker_id,
                    durability=cast(Durability, options.durability) if options.durability else None,
                    pin_waiting=False,
                )
                app[RUNNER_KEY] = runner
                serving = asyncio.create_task(runner.serve())
                _log(
                    f"{runner.owner} deep agent, {options.variant}, durability {options.durability}"
                )
                yield
                serving.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await serving
                with contextlib.suppress(Exception):
                    await claims.release_all(runner.owner)
                ctx.recorder.close()

    app.cleanup_ctx.append(context)
    app.router.add_post(WAKE_ROUTE, _wake)
    app.router.add_get(FINISHED_ROUTE, finished_handler(lambda: app[RUNNER_KEY].finished))
    return app


def main() -> None:
    args = WorkerArgs.parse(
        LangGraphWorkerOptions, description="durabench Deep Agents worker", needs_port=True
    )
    assert args.port is not None
    run_app(build_app(args), args.host, args.port)


if __name__ == "__main__":
    main()
