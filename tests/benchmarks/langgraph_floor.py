"""The LangGraph floor: the RAV step shape written directly against LangGraph, no durabench.

What a user's own program would be: one process, one LangGraph `StateGraph` (reason →
act → verify per step, `history` grown with `operator.add` by the step's thought, tool
call and tool output), LangGraph's own saver (`AsyncSqliteSaver.from_conn_string`, or
`AsyncPostgresSaver` on one connection as `from_conn_string` opens it), and N threads
driven with `ainvoke(..., durability=MODE)` at concurrency C. The nodes make the same
HTTP calls as durabench's agent (the simulated LLM's chat completion, the tool service
with the stable idempotency key `run/step/attempt`). Nothing of the harness is in the
loop: no recorder, no claim table, no worker process, no harness imports.

The one addition is a clock on the saver: `aput` notes when the first checkpoint that
holds each step was stored, so the floor reports the same figures as durabench's
`steps.parquet` (a step = its reason start → that checkpoint stored; overhead = that
minus the time the services report they spent). For `exit` the checkpoint is the one
put when the invocation ends.

Run as `python -m tests.benchmarks.langgraph_floor --saver sqlite --durability async
--llm-url http://127.0.0.1:P/v1 --tools-url http://127.0.0.1:Q --threads 8
--concurrency 1 --steps 10 --sqlite-path /tmp/floor.sqlite --out floor.json`
(Postgres: `--saver postgres --schema S` with the DSN in $LANGGRAPH_FLOOR_DSN). With
`--scenario F --workdir D` instead of the URLs it starts the two services itself.
The JSON holds every step's timings and the summary (`summary()` below).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import operator
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypedDict, cast

import aiohttp
import aiosqlite
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
)
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Durability
from psycopg import AsyncConnection
from psycopg.rows import dict_row

__all__ = ["FloorConfig", "FloorResult", "main", "run_floor", "services", "summary"]

DSN_ENV = "LANGGRAPH_FLOOR_DSN"
SERVICE_TIME_HEADER = "x-durabench-service-ms"  # what the simulated services report
DEFAULT_TOOLS = ("get_quotes", "post_ledger_entry", "reserve_budget", "search_supplier")
READY_TIMEOUT_S = 30.0
SYSTEM_PROMPT = "You are a procurement agent. Call exactly one tool."


class State(TypedDict):
    run_id: str
    step: int
    attempt: int
    decision: dict[str, Any] | None
    output: dict[str, Any] | None
    history: Annotated[list[dict[str, Any]], operator.add]
    status: str


@dataclass(frozen=True)
class FloorConfig:
    saver: str  # sqlite | postgres
    durability: str  # exit | async | sync
    llm_url: str
    tools_url: str
    threads: int
    concurrency: int
    steps: int
    run_prefix: str = "floor"
    tools: tuple[str, ...] = DEFAULT_TOOLS
    model: str = "durabench-sim-1"
    sqlite_path: str | None = None
    dsn: str | None = None
    schema: str | None = None


@dataclass
class FloorResult:
    config: dict[str, Any]
    elapsed_s: float = 0.0
    # per thread: ainvoke start/end; per step: reason start, service ms, durable at
    runs: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return summary(self.steps, self.runs, self.elapsed_s)


def _p(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def summary(
    steps: Sequence[dict[str, Any]], runs: Sequence[dict[str, Any]], elapsed_s: float
) -> dict[str, Any]:
    """The figures durabench reports for a backend, computed the same way: step =
    reason start → durable; overhead = step - service time; span per step = a run's
    first reason start → its last step durable, over steps."""
    durable = [s for s in steps if s.get("durable_at") is not None]
    step_ms = [(s["durable_at"] - s["start"]) * 1000 for s in durable]
    overhead_ms = [(s["durable_at"] - s["start"]) * 1000 - s["service_ms"] for s in durable]
    spans, busy = [], 0.0
    for run in runs:
        mine = [s for s in durable if s["run_id"] == run["run_id"]]
        if mine:
            span = max(s["durable_at"] for s in mine) - min(s["start"] for s in mine)
            spans.append(span * 1000 / len(mine))
            busy += span
    total = len(durable)
    window = (
        max(s["durable_at"] for s in durable) - min(s["start"] for s in durable) if durable else 0
    )
    return {
        "steps": total,
        "step_ms_p50": _p(step_ms, 0.5),
        "step_ms_p99": _p(step_ms, 0.99),
        "overhead_ms_p50": _p(overhead_ms, 0.5),
        "overhead_ms_p99": _p(overhead_ms, 0.99),
        "span_ms_per_step": round(statistics.median(spans), 3) if spans else None,
        "steps_per_s": round(total / elapsed_s, 1) if elapsed_s else None,
        # runs in flight on average (first reason to last durable step, over the window)
        "in_flight": round(busy / window, 2) if window else None,
    }


class Clock:
    """When the first checkpoint holding each step of a thread's history was stored
    (thread id -> one time per step), noted right after the saver's `aput` returned."""

    def __init__(self) -> None:
        self.durable_at: dict[str, list[float]] = {}

    def stored(self, config: RunnableConfig, checkpoint: Checkpoint) -> None:
        now = time.time()
        held = len(checkpoint["channel_values"].get("history") or ())
        stamps = self.durable_at.setdefault(str(config["configurable"]["thread_id"]), [])
        stamps.extend([now] * (held - len(stamps)))


class TimedSqliteSaver(AsyncSqliteSaver):
    clock: Clock

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        stored = await super().aput(config, checkpoint, metadata, new_versions)
        self.clock.stored(config, checkpoint)
        return stored


class TimedPostgresSaver(AsyncPostgresSaver):
    clock: Clock

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        stored = await super().aput(config, checkpoint, metadata, new_versions)
        self.clock.stored(config, checkpoint)
        return stored


@contextlib.asynccontextmanager
async def open_saver(config: FloorConfig, clock: Clock) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    """LangGraph's saver, opened as its `from_conn_string` does (with the clock)."""
    if config.saver == "sqlite":
        assert config.sqlite_path, "--sqlite-path is required for the sqlite saver"
        async with aiosqlite.connect(config.sqlite_path) as conn:
            sqlite_saver = TimedSqliteSaver(conn)
            sqlite_saver.clock = clock
            await sqlite_saver.setup()
            yield sqlite_saver
    elif config.saver == "postgres":
        assert config.dsn, f"the Postgres DSN goes in ${DSN_ENV}"
        options = f"-c search_path={config.schema}" if config.schema else ""
        if config.schema:
            async with await AsyncConnection.connect(config.dsn, autocommit=True) as admin:
                await admin.execute(f'CREATE SCHEMA IF NOT EXISTS "{config.schema}"')
        async with await AsyncConnection.connect(
            config.dsn, autocommit=True, prepare_threshold=0, row_factory=dict_row, options=options
        ) as conn:
            pg_saver = TimedPostgresSaver(conn)
            pg_saver.clock = clock
            await pg_saver.setup()
            yield pg_saver
    else:
        raise SystemExit(f"unknown saver {config.saver!r}: sqlite or postgres")


Rows = dict[tuple[str, int], dict[str, Any]]  # (run, step) -> that step's timings


def build_graph(
    config: FloorConfig, http: aiohttp.ClientSession
) -> tuple[StateGraph[State, None, State, State], Rows]:
    """The graph, and the timings its nodes fill in (service time summed per step)."""
    tool_specs = [
        {
            "type": "function",
            "function": {
                "name": name,
                "parameters": {
                    "type": "object",
                    "properties": {
                        "item": {"type": "string"},
                        "quantity": {"type": "integer"},
                        "amount_cents": {"type": "integer"},
                        "counterparty": {"type": "string"},
                    },
                },
            },
        }
        for name in config.tools
    ]
    rows: Rows = {}

    async def post(url: str, body: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
        async with http.post(url, json=body) as response:
            response.raise_for_status()
            row["service_ms"] += float(response.headers.get(SERVICE_TIME_HEADER, 0.0))
            data: dict[str, Any] = await response.json()
            return data

    async def reason(state: State) -> dict[str, Any]:
        run_id, step, attempt = state["run_id"], state["step"], state["attempt"]
        row = rows.setdefault(
            (run_id, step),
            {"run_id": run_id, "step": step, "start": time.time(), "service_ms": 0.0},
        )
        prompt = {
            "durabench": {"run_id": run_id, "step": step, "attempt": attempt},
            "task": f"floor: choose the tool for step {step}",
        }
        body = {
            "model": config.model,
            "messages": [
                {
                    "role": "system",
                    "content": "You are a procurement agent. Call exactly one tool.",
                },
                {"role": "user", "content": json.dumps(prompt)},
            ],
            "tools": tool_specs,
            "tool_choice": "required",
        }
        data = await post(f"{config.llm_url}/chat/completions", body, row)
        message = data["choices"][0]["message"]
        call = message["tool_calls"][0]["function"]
        decision = {
            "tool": call["name"],
            "arguments": json.loads(call["arguments"]),
            "thought": message.get("content") or "",
        }
        return {"decision": decision}

    async def act(state: State) -> dict[str, Any]:
        run_id, step, attempt = state["run_id"], state["step"], state["attempt"]
        decision = state["decision"] or {}
        body = {
            "run_id": run_id,
            "step": step,
            "attempt": attempt,
            "idempotency_key": f"{run_id}/{step}/{attempt}",
            "arguments": decision["arguments"],
        }
        data = await post(
            f"{config.tools_url}/tools/{decision['tool']}", body, rows[(run_id, step)]
        )
        return {"output": data["output"]}

    async def verify(state: State) -> dict[str, Any]:
        decision, output = state["decision"] or {}, state["output"] or {}
        if output.get("status") != "ok" or output.get("tool") != decision.get("tool"):
            raise RuntimeError(f"{state['run_id']} step {state['step']}: tool output rejected")
        step = state["step"]
        record = {"index": step, **decision, "output": output, "attempts": state["attempt"]}
        done = step + 1 >= config.steps
        return {
            "history": [record],
            "step": step + 1,
            "attempt": 1,
            "decision": None,
            "output": None,
            "status": "completed" if done else "running",
        }

    def after_verify(state: State) -> str:
        return END if state["status"] != "running" else "reason"

    builder: StateGraph[State, None, State, State] = StateGraph(State)
    builder.add_node("reason", reason)
    builder.add_node("act", act)
    builder.add_node("verify", verify)
    builder.add_edge(START, "reason")
    builder.add_edge("reason", "act")
    builder.add_edge("act", "verify")
    builder.add_conditional_edges("verify", after_verify, ["reason", END])
    return builder, rows


async def run_floor(config: FloorConfig) -> FloorResult:
    """Drive `threads` threads through the graph, `concurrency` at a time."""
    result = FloorResult(config={k: v for k, v in asdict(config).items() if k != "dsn"})
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
    clock = Clock()
    async with (
        aiohttp.ClientSession(connector=connector) as http,
        open_saver(config, clock) as saver,
    ):
        builder, rows = build_graph(config, http)
        graph = builder.compile(checkpointer=saver)
        durability = cast(Durability, config.durability)
        pending = [f"{config.run_prefix}-{i:06d}" for i in range(config.threads)]
        limit = config.steps * 3 + 10

        async def one(run_id: str) -> None:
            run: RunnableConfig = {
                "configurable": {"thread_id": run_id},
                "recursion_limit": limit,
            }
            start = time.time()
            state: State = {
                "run_id": run_id,
                "step": 0,
                "attempt": 1,
                "decision": None,
                "output": None,
                "history": [],
                "status": "running",
            }
            final = await graph.ainvoke(state, run, durability=durability)
            if final["status"] != "completed" or len(final["history"]) != config.steps:
                raise RuntimeError(f"{run_id} ended {final['status']}")
            result.runs.append({"run_id": run_id, "start": start, "end": time.time()})

        async def lane() -> None:
            while pending:
                await one(pending.pop(0))

        began = time.perf_counter()
        await asyncio.gather(*(lane() for _ in range(config.concurrency)))
        result.elapsed_s = time.perf_counter() - began
        for (run_id, step), row in sorted(rows.items()):
            stamps = clock.durable_at.get(run_id, [])
            row["durable_at"] = stamps[step] if step < len(stamps) else None
            result.steps.append(row)
    return result


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the service exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1.0):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url}: not healthy after {READY_TIMEOUT_S} s")


@contextlib.contextmanager
def services(scenario: Path, workdir: Path) -> Iterator[tuple[str, str]]:
    """The simulated LLM and the tool service for `scenario`, as their own processes;
    yields (llm base URL, tools URL)."""
    workdir.mkdir(parents=True, exist_ok=True)
    llm_port, tools_port = _free_port(), _free_port()
    python = sys.executable
    llm = ("harness.services.llm", "--call-log", workdir / "floor-llm.jsonl", llm_port)
    tools = ("harness.services.tools", "--ledger", workdir / "floor-ledger.sqlite", tools_port)
    commands = [
        [python, "-m", module, "--scenario", str(scenario), "--port", str(port), flag, str(file)]
        for module, flag, file, port in (llm, tools)
    ]
    processes = [subprocess.Popen(c, stdout=subprocess.DEVNULL) for c in commands]
    try:
        _wait_healthy(f"http://127.0.0.1:{llm_port}/health", processes[0])
        _wait_healthy(f"http://127.0.0.1:{tools_port}/health", processes[1])
        yield f"http://127.0.0.1:{llm_port}/v1", f"http://127.0.0.1:{tools_port}"
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="LangGraph floor: the RAV shape, no durabench")
    parser.add_argument("--saver", required=True, choices=("sqlite", "postgres"))
    parser.add_argument("--durability", required=True, choices=("exit", "async", "sync"))
    parser.add_argument("--llm-url", default="")
    parser.add_argument("--tools-url", default="")
    parser.add_argument("--scenario", type=Path, help="start the services for this scenario")
    parser.add_argument("--workdir", type=Path, default=Path("."))
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--tools", default=",".join(DEFAULT_TOOLS))
    parser.add_argument("--run-prefix", default="floor")
    parser.add_argument("--sqlite-path", default=None)
    parser.add_argument("--schema", default=None)
    parser.add_argument("--out", type=Path, help="write the JSON here (default: stdout)")
    args = parser.parse_args(argv)

    def config(llm_url: str, tools_url: str) -> FloorConfig:
        return FloorConfig(
            saver=args.saver,
            durability=args.durability,
            llm_url=llm_url,
            tools_url=tools_url,
            threads=args.threads,
            concurrency=args.concurrency,
            steps=args.steps,
            run_prefix=args.run_prefix,
            tools=tuple(t for t in args.tools.split(",") if t),
            sqlite_path=args.sqlite_path or str(args.workdir / "floor.sqlite"),
            dsn=os.environ.get(DSN_ENV),
            schema=args.schema,
        )

    if args.scenario is not None:
        with services(args.scenario, args.workdir) as (llm_url, tools_url):
            result = asyncio.run(run_floor(config(llm_url, tools_url)))
    elif args.llm_url and args.tools_url:
        result = asyncio.run(run_floor(config(args.llm_url, args.tools_url)))
    else:
        parser.error("give --llm-url and --tools-url, or --scenario to start the services")
    text = json.dumps({**asdict(result), "summary": result.summary()}, default=str)
    if args.out is not None:
        args.out.write_text(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
