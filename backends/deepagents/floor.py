"""Deep Agents' raw floor: the same deep agent as a plain program on the same LangGraph
saver and durability mode.

`create_deep_agent` with the backend's model settings (LangChain's `ChatOpenAI` on the
chat-completions API, pointed at the simulated provider, on a plain `httpx2` client),
its instructions and one LangChain tool per scenario tool with the backend's arguments
schema (an act against the tool service with the stable key `run/step/attempt`, the
verify check, `ToolException` for a verdict that asks to retry or re-plan), compiled
with LangGraph's own saver for the backend's variant (`AsyncSqliteSaver` on a file of
its own next to the backend's, `AsyncPostgresSaver.from_conn_string` on the same server
in the floor's schema), and invoked once per run with the task prompt and the backend's
durability mode. No claim table, no worker process, no Recorder, no measured transport.

A step starts when the model request whose answer calls its tool goes out (the
backend's `reason` row starts there), and ends once both the saver's `aput` of the
first checkpoint holding its closing tool result returned (the checkpoint of the
superstep the tool ran in, `langgraph_step`) and the agent's next model request went
out: the instant the backend's `commit` row takes (its measured transport sees that
request, which in `sync` follows the put). In `sync` that is the next request; between
the put and it, Deep Agents prepares the next model call (its middleware, the prompt),
about 7 ms a step on this machine, which a step ending at the put would leave out of
the floor while the backend's step counts it. In `exit` a step ends at the final put.
The only instruments are an `httpx2` event hook (request times, service time) and a
saver subclass noting when that put returned.

Run as `python -m backends.deepagents.floor --json --variant sqlite --durability sync ...`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
)
from langgraph.types import Durability

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
from backends.langgraph.floor import DSN_ENV, open_saver
from harness.scenario import Scenario, load_scenario
from harness.services.common import SERVICE_TIME_HEADER

__all__ = ["DSN_ENV", "Notes", "floor_programs", "main", "program_name"]


def program_name(variant: str, durability: str | None) -> str:
    return f"deepagents:{variant}?durability={durability or 'default'}"


def floor_programs(backend: Any, env: BackendEnv) -> list[FloorProgram]:
    """This floor on the backend's saver and durability mode first, then LangGraph's floor
    on the same (what the framework costs over a hand-written graph)."""
    from backends.langgraph import floor as langgraph_floor

    variant = str(backend.variant)
    args = ["--variant", variant, "--durability", backend.durability or ""]
    extra: dict[str, str] = {}
    if variant == "sqlite":
        args += ["--sqlite-path", str(env.workdir / "floor-deepagents.sqlite")]
    elif variant == "postgres":
        from backends.pgstore.floor import floor_dsn

        extra[DSN_ENV] = floor_dsn(env)
    own = FloorProgram(program_name(variant, backend.durability), __name__, tuple(args), extra)
    return [own, *langgraph_floor.floor_programs(backend, env)]


@dataclass
class Notes:
    """What the instruments noted, per (run, step): when it started, when its closing
    checkpoint was stored, time inside the services; and per thread the steps whose
    closing tool result awaits its checkpoint (step, the superstep the tool ran in)."""

    started: dict[tuple[str, int], float] = field(default_factory=dict)
    stored: dict[tuple[str, int], float] = field(default_factory=dict)
    answered: dict[tuple[str, int], float] = field(default_factory=dict)  # closing tool result
    asked: dict[str, list[float]] = field(default_factory=dict)  # model requests per run
    service_ms: dict[tuple[str, int], float] = field(default_factory=dict)
    closing: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    requests: dict[int, float] = field(default_factory=dict)

    def add_service(self, key: tuple[str, int], ms: float) -> None:
        self.service_ms[key] = self.service_ms.get(key, 0.0) + ms

    def ended(self, key: tuple[str, int]) -> float | None:
        """When the step's closing checkpoint was stored and the agent asked the model
        again after its closing tool result, whichever came later (None: not stored)."""
        stored = self.stored.get(key)
        if stored is None:
            return None
        answered = self.answered.get(key, stored)
        later = [t for t in self.asked.get(key[0], []) if t >= answered]
        return max(stored, min(later)) if later else stored


def timed(saver_class: type[BaseCheckpointSaver[Any]], notes: Notes) -> type[Any]:
    """`saver_class` noting when the put holding a step's closing tool result returned."""

    class Timed(saver_class):  # type: ignore[misc,valid-type]
        async def aput(
            self,
            config: RunnableConfig,
            checkpoint: Checkpoint,
            metadata: CheckpointMetadata,
            new_versions: ChannelVersions,
        ) -> RunnableConfig:
            result = await super().aput(config, checkpoint, metadata, new_versions)
            now = time.time()
            thread_id = str(config["configurable"]["thread_id"])
            superstep = int(metadata.get("step", -1))
            waiting = notes.closing.get(thread_id, [])
            for step, ran_in in list(waiting):
                if ran_in <= superstep:
                    notes.stored.setdefault((thread_id, step), now)
                    waiting.remove((step, ran_in))
            return cast(RunnableConfig, result)

    return Timed


def _tools(scenario: Scenario, svc_box: list[Services], notes: Notes) -> list[Any]:
    """The backend's tools (name, description, arguments), acting on the tool service."""
    from langchain_core.tools import StructuredTool, ToolException

    from backends.deepagents.agent import ToolArguments
    from harness.services.conversation import Verdict, verdict_text
    from harness.workload import Decision, next_move, verify_output

    def make(name: str) -> StructuredTool:
        async def call(
            item: str,
            quantity: int,
            amount_cents: int,
            counterparty: str,
            step: int,
            attempt: int,
            config: RunnableConfig,
        ) -> str:
            arguments = {
                "item": item,
                "quantity": quantity,
                "amount_cents": amount_cents,
                "counterparty": counterparty,
            }
            run_id = str(config["configurable"]["run_id"])
            decision = Decision(name, arguments, "")
            output, ms = await call_tool(svc_box[0], run_id, step, attempt, decision)
            notes.add_service((run_id, step), ms)
            verified = verify_output(decision, output)
            move = next_move(scenario.verify, verified, attempt)
            text = verdict_text(Verdict(step, attempt, verified, move, output))
            if move in ("retry_act", "replan"):
                raise ToolException(text)
            superstep = int((config.get("metadata") or {}).get("langgraph_step", 0))
            notes.closing.setdefault(run_id, []).append((step, superstep))
            notes.answered[(run_id, step)] = time.time()
            return text

        return StructuredTool.from_function(
            coroutine=call,
            name=name,
            description=f"The {name} tool.",
            args_schema=ToolArguments,
            handle_tool_error=True,
        )

    return [make(name) for name in scenario.tools]


def _http_client(notes: Notes) -> Any:
    """A plain `httpx2` client noting when each model request went out, and for the step
    its answer calls a tool for, that start and the provider's service time."""
    import httpx2
    from langgraph.config import get_config

    async def on_request(request: httpx2.Request) -> None:
        sent = notes.requests[id(request)] = time.time()
        notes.asked.setdefault(str(get_config()["configurable"]["run_id"]), []).append(sent)

    async def on_response(response: httpx2.Response) -> None:
        sent = notes.requests.pop(id(response.request), None)
        run_id = str(get_config()["configurable"]["run_id"])
        await response.aread()
        calls = json.loads(response.content)["choices"][0]["message"].get("tool_calls") or []
        if sent is None or not calls:
            return  # the closing answer
        step = int(json.loads(calls[0]["function"]["arguments"])["step"])
        notes.started.setdefault((run_id, step), sent)
        notes.add_service((run_id, step), float(response.headers.get(SERVICE_TIME_HEADER, 0.0)))

    hooks: dict[str, list[Callable[..., Any]]] = {
        "request": [on_request],
        "response": [on_response],
    }
    return httpx2.AsyncClient(timeout=600.0, event_hooks=hooks)


def build_agent(
    args: argparse.Namespace, scenario: Scenario, tools: list[Any], http: Any, saver: Any
) -> Any:
    from deepagents import create_deep_agent
    from langchain_openai import ChatOpenAI

    from backends.deepagents.agent import INSTRUCTIONS

    model = ChatOpenAI(
        model=scenario.llm.model,
        base_url=args.llm_url,
        api_key="durabench",
        use_responses_api=False,
        http_async_client=http,
        max_retries=8,
    )
    return create_deep_agent(
        model=model, tools=tools, system_prompt=INSTRUCTIONS, checkpointer=saver
    )


async def _floor(args: argparse.Namespace) -> None:
    from backends.langgraph.graph import thread_config
    from harness.services.conversation import task_prompt

    scenario = load_scenario(args.scenario)
    resolve_counts(args, scenario)
    notes = Notes()
    samples = Samples()
    durability = cast(Durability, args.durability) if args.durability else None
    svc_box: list[Services] = []
    model_http = _http_client(notes)
    async with open_http() as http, open_saver(args, lambda cls: timed(cls, notes)) as saver:
        svc_box.append(Services(scenario, http, args.llm_url, args.tools_url))
        tools = _tools(scenario, svc_box, notes)
        agent = build_agent(args, scenario, tools, model_http, saver)

        async def one(run_id: str) -> None:
            requested = time.time()
            config = thread_config(run_id, scenario)
            config["configurable"] = {**config.get("configurable", {}), "run_id": run_id}
            prompt = task_prompt(scenario.name, scenario.steps, run_id)
            opening = {"messages": [{"role": "user", "content": prompt}]}
            await agent.ainvoke(opening, config, durability=durability)
            samples.start(run_id, requested, notes.started[(run_id, 0)])
            for step in range(scenario.steps):
                key = (run_id, step)
                end = notes.ended(key)
                if end is not None:
                    samples.step(run_id, step, notes.started[key], end, notes.service_ms[key])

        wall = await closed_loop(floor_run_ids(scenario, args.runs), args.concurrency, one)
    await model_http.aclose()
    emit(program_name(args.variant, args.durability), args, samples, wall)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="durabench raw floor: Deep Agents")
    add_common_arguments(parser)
    parser.add_argument("--variant", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--durability", default="", help="exit | async | sync; empty: default")
    parser.add_argument("--sqlite-path", default="floor-deepagents.sqlite")
    asyncio.run(_floor(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
