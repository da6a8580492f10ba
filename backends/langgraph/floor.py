"""LangGraph's raw floor: the same graph, saver and durability mode, as a plain program.

A `StateGraph` with the same shape and state as durabench's (reason → act → verify,
verify looping back on a retry or a re-plan; `history` a list with the `operator.add`
reducer, so each checkpoint holds the whole history, the same state growth per step),
compiled with LangGraph's own saver for the backend's variant (`InMemorySaver`,
`AsyncSqliteSaver.from_conn_string` on a file of its own next to the backend's,
`AsyncPostgresSaver.from_conn_string` on the same server in the floor's schema), and
invoked once per run with the backend's durability mode (none given: LangGraph's
default). No claim table, no worker process, no Recorder.

A step ends, as in durabench, when the saver's `aput` of the first checkpoint holding
it returns; the only instrument is a subclass that notes that time.

Run as `python -m backends.langgraph.floor --json --variant sqlite --durability async ...`.
"""

from __future__ import annotations

import argparse
import asyncio
import operator
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any, TypedDict, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
)
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Durability

from backends.base import BackendEnv, FloorProgram
from backends.baseline.floor import (
    Samples,
    Services,
    add_common_arguments,
    call_llm,
    call_tool,
    closed_loop,
    emit,
    floor_run_ids,
    open_http,
    resolve_counts,
)
from harness.scenario import Scenario, load_scenario
from harness.workload import Decision, next_move, verify_output

__all__ = ["floor_programs", "main"]

DSN_ENV = "DURABENCH_FLOOR_DSN"


def floor_programs(backend: Any, env: BackendEnv) -> list[FloorProgram]:
    """The backend's saver and durability mode (its `variant` and `durability`)."""
    variant = str(backend.variant)
    args = ["--variant", variant, "--durability", backend.durability or ""]
    extra: dict[str, str] = {}
    if variant == "sqlite":
        args += ["--sqlite-path", str(env.workdir / "floor-langgraph.sqlite")]
    elif variant == "postgres":
        from backends.pgstore.floor import floor_dsn

        extra[DSN_ENV] = floor_dsn(env)
    mode = backend.durability or "default"
    return [FloorProgram(f"langgraph:{variant}?durability={mode}", __name__, tuple(args), extra)]


class State(TypedDict):
    run_id: str
    step: int
    attempt: int
    decision: dict[str, Any] | None
    output: dict[str, Any] | None
    verdicts: list[bool]
    move: str
    history: Annotated[list[dict[str, Any]], operator.add]
    status: str
    final_answer: str | None


class Acks:
    """When each step's first checkpoint was stored (thread, step) -> epoch s."""

    def __init__(self) -> None:
        self.stored: dict[tuple[str, int], float] = {}
        self.started: dict[tuple[str, int], float] = {}
        self.service_ms: dict[tuple[str, int], float] = {}


def timed(saver_class: type[BaseCheckpointSaver[Any]], acks: Acks) -> type[Any]:
    """`saver_class` noting when a put holding new history returned."""

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
            values = checkpoint["channel_values"]
            history: Sequence[dict[str, Any]] = values.get("history") or ()
            run_id = str(values.get("run_id", ""))
            for record in history:
                acks.stored.setdefault((run_id, int(record["index"])), now)
            return cast(RunnableConfig, result)

    return Timed


def build(scenario: Scenario, svc: Services, acks: Acks) -> StateGraph[State]:
    async def reason(state: State) -> dict[str, Any]:
        key = (state["run_id"], state["step"])
        acks.started.setdefault(key, time.time())
        decision, ms = await call_llm(svc, state["run_id"], state["step"], state["attempt"])
        acks.service_ms[key] = acks.service_ms.get(key, 0.0) + ms
        return {"decision": decision.__dict__}

    async def act(state: State) -> dict[str, Any]:
        key = (state["run_id"], state["step"])
        decision = Decision(**(state["decision"] or {}))
        output, ms = await call_tool(
            svc, state["run_id"], state["step"], state["attempt"], decision
        )
        acks.service_ms[key] = acks.service_ms.get(key, 0.0) + ms
        return {"output": output}

    async def verify(state: State) -> dict[str, Any]:
        decision, output = Decision(**(state["decision"] or {})), state["output"] or {}
        verified = verify_output(decision, output)
        verdicts = [*state["verdicts"], verified]
        move = next_move(scenario.verify, verified, state["attempt"])
        if move in ("retry_act", "replan"):
            return {"verdicts": verdicts, "attempt": state["attempt"] + 1, "move": move}
        record = {
            "index": state["step"], "tool": decision.tool, "arguments": decision.arguments,
            "thought": decision.thought, "output": output, "verdicts": verdicts,
            "attempts": state["attempt"],
        }  # fmt: skip
        update: dict[str, Any] = {
            "history": [record], "move": move, "step": state["step"] + 1, "attempt": 1,
            "verdicts": [], "decision": None, "output": None,
        }  # fmt: skip
        if move == "abort":
            update["status"] = "aborted"
        elif state["step"] == scenario.steps - 1:
            update["status"] = "completed"
        return update

    def after_verify(state: State) -> str:
        if state["move"] in ("retry_act", "replan"):
            return "act" if state["move"] == "retry_act" else "reason"
        return END if state["status"] != "running" else "reason"

    builder: StateGraph[State] = StateGraph(State)
    builder.add_node("reason", reason)
    builder.add_node("act", act)
    builder.add_node("verify", verify)
    builder.add_edge(START, "reason")
    builder.add_edge("reason", "act")
    builder.add_edge("act", "verify")
    builder.add_conditional_edges("verify", after_verify, ["act", "reason", END])
    return builder


@asynccontextmanager
async def open_saver(
    args: argparse.Namespace, instrument: Callable[[type[Any]], type[Any]]
) -> AsyncIterator[Any]:
    """LangGraph's own saver for `args.variant`, its class wrapped by `instrument` (the
    floor's timing subclass); shared by the Deep Agents floor."""
    if args.variant == "memory":
        yield instrument(InMemorySaver)()
    elif args.variant == "sqlite":
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        async with instrument(AsyncSqliteSaver).from_conn_string(args.sqlite_path) as saver:
            yield saver
    else:
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

        dsn = os.environ.get(DSN_ENV)
        if not dsn:
            raise SystemExit(f"error: set {DSN_ENV} to the floor's DSN")
        async with instrument(AsyncPostgresSaver).from_conn_string(dsn) as saver:
            await saver.setup()
            yield saver


async def _floor(args: argparse.Namespace) -> None:
    scenario = load_scenario(args.scenario)
    resolve_counts(args, scenario)
    acks = Acks()
    samples = Samples()
    durability = cast(Durability, args.durability) if args.durability else None
    limit = scenario.steps * scenario.verify.max_attempts * 3 + 10
    async with open_http() as http, open_saver(args, lambda cls: timed(cls, acks)) as saver:
        svc = Services(scenario, http, args.llm_url, args.tools_url)
        graph = build(scenario, svc, acks).compile(checkpointer=saver)

        async def one(run_id: str) -> None:
            requested = time.time()
            state: State = {
                "run_id": run_id, "step": 0, "attempt": 1, "decision": None, "output": None,
                "verdicts": [], "move": "", "history": [], "status": "running",
                "final_answer": None,
            }  # fmt: skip
            config: RunnableConfig = {
                "configurable": {"thread_id": run_id},
                "recursion_limit": limit,
            }
            final = await graph.ainvoke(state, config, durability=durability)
            samples.start(run_id, requested, acks.started[(run_id, 0)])
            for record in final["history"]:
                key = (run_id, int(record["index"]))
                end = acks.stored.get(key)
                if end is not None:
                    samples.step(run_id, key[1], acks.started[key], end, acks.service_ms[key])

        wall = await closed_loop(floor_run_ids(scenario, args.runs), args.concurrency, one)
    program = f"langgraph:{args.variant}?durability={args.durability or 'default'}"
    emit(program, args, samples, wall)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="durabench raw floor: LangGraph")
    add_common_arguments(parser)
    parser.add_argument("--variant", choices=("memory", "sqlite", "postgres"), default="sqlite")
    parser.add_argument("--durability", default="", help="exit | async | sync; empty: default")
    parser.add_argument("--sqlite-path", default="floor-langgraph.sqlite")
    asyncio.run(_floor(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
