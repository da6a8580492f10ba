"""The per-call cost of MCP against plain HTTP, measured in one run on one machine.

The same act phase (`harness.agent.act`) calls the same tool service with zero tool
latency: plain HTTP (`POST /tools/{name}`), MCP answering with an SSE stream (the SDK's
default), and MCP answering with one JSON body. Rounds alternate between the three, so
a busy machine slows them alike. The figures (per-call p50/p95 in microseconds one call
at a time, calls per second with CONCURRENT calls in flight on one session, and the
ratios to HTTP) are in the benchmark's extra info and printed:

    python -m pytest tests/benchmarks/test_mcp_cost.py --benchmark-enable -s

By default (benchmarks disabled) it runs one short round, as a test of its behaviour.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import aiohttp
import pytest

from harness.agent import AgentContext, act
from harness.measure import Recorder
from harness.platform.local import LocalPlatform
from harness.runner import service_specs
from harness.scenario import Scenario, ToolTransport, load_scenario
from harness.workload import decide, idempotency_key
from tests.conftest import ScenarioFactory

pytestmark = pytest.mark.integration
pytest.importorskip("mcp")

CALLS_PER_ROUND = 200
ROUNDS = 5
CONCURRENT = 16
TRANSPORTS = ("http", "mcp-sse", "mcp-json")


@dataclass(frozen=True)
class Door:
    """One way to reach a tool service."""

    name: str
    scenario: Scenario
    tools_url: str

    def context(self, http: aiohttp.ClientSession, rows: Path) -> AgentContext:
        """One worker's context: one HTTP session, and one MCP session once used."""
        return AgentContext(
            scenario=self.scenario,
            http=http,
            llm_url="http://127.0.0.1:9/v1",  # unused: only act runs
            tools_url=self.tools_url,
            recorder=Recorder(rows, backend="bench", worker=self.name),
        )


@pytest.fixture
def doors(write_scenario: ScenarioFactory, tmp_path: Path) -> Iterator[list[Door]]:
    """Two tool services (SSE and JSON MCP answers), reached three ways."""
    urls: dict[str, str] = {}
    with LocalPlatform(tmp_path) as platform:
        for mode in ("sse", "json"):
            path = write_scenario(
                f"{mode}.yaml",
                tools={"transport": "mcp", "mcp_responses": mode},
                verify={"failure_probability": 0.0},
            )
            scenario = load_scenario(path)
            workdir = tmp_path / mode
            workdir.mkdir()
            for spec in service_specs(scenario, path, workdir):
                if spec.role == "tools":
                    handle = platform.start(replace(spec, name=f"tools-{mode}"))
                    urls[mode] = f"http://127.0.0.1:{handle.spec.port}"

        def door(name: str, transport: Literal["http", "mcp"], mode: str) -> Door:
            update = {"tool_transport": ToolTransport(transport=transport)}
            return Door(name, scenario.model_copy(update=update), urls[mode])

        yield [
            door("http", "http", "sse"),
            door("mcp-sse", "mcp", "sse"),
            door("mcp-json", "mcp", "json"),
        ]


async def _round(ctx: AgentContext, first_run: int, calls: int) -> tuple[list[float], float]:
    """`calls` acts one at a time (their latencies, µs), then `calls` with CONCURRENT in
    flight (calls per second)."""
    latencies = []
    for i in range(calls):
        run_id = f"run-{first_run + i:06d}"
        decision = decide(ctx.scenario, run_id, 0, 1)
        began = time.perf_counter()
        await act(ctx, run_id, 0, 1, decision, idempotency_key(run_id, 0, 1))
        latencies.append((time.perf_counter() - began) * 1e6)
    limit = asyncio.Semaphore(CONCURRENT)

    async def one(i: int) -> None:
        run_id = f"run-{first_run + calls + i:06d}"
        decision = decide(ctx.scenario, run_id, 0, 1)
        async with limit:
            await act(ctx, run_id, 0, 1, decision, idempotency_key(run_id, 0, 1))

    began = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(calls)))
    return latencies, calls / (time.perf_counter() - began)


async def _measure(
    doors: list[Door], rounds: int, calls: int, rows: Path
) -> dict[str, dict[str, float]]:
    samples: dict[str, list[float]] = {d.name: [] for d in doors}
    rates: dict[str, list[float]] = {d.name: [] for d in doors}
    async with aiohttp.ClientSession() as http:
        contexts = [d.context(http, rows / d.name) for d in doors]
        try:
            for i, ctx in enumerate(contexts):  # warm up: connections and sessions open
                await _round(ctx, 900_000 + i * 10_000, 5)
            for r in range(rounds):
                for i, (door, ctx) in enumerate(zip(doors, contexts, strict=True)):
                    first = (r * len(doors) + i) * 2 * calls
                    latencies, rate = await _round(ctx, first, calls)
                    samples[door.name] += latencies
                    rates[door.name].append(rate)
        finally:
            for ctx in contexts:
                ctx.recorder.close()
                if ctx.scenario.tool_transport.transport == "mcp":
                    await ctx.mcp_tools().aclose()
    figures: dict[str, dict[str, float]] = {}
    for name, values in samples.items():
        cuts = statistics.quantiles(values, n=20)
        figures[name] = {
            "p50_us": round(statistics.median(values), 1),
            "p95_us": round(cuts[18], 1),
            "calls_per_s_concurrent": round(statistics.median(rates[name]), 1),
        }
    base = figures["http"]
    for name in figures:
        figures[name]["p50_vs_http"] = round(figures[name]["p50_us"] / base["p50_us"], 2)
        figures[name]["throughput_vs_http"] = round(
            figures[name]["calls_per_s_concurrent"] / base["calls_per_s_concurrent"], 2
        )
    return figures


def test_mcp_per_call_cost_against_plain_http(
    benchmark: Any, doors: list[Door], tmp_path: Path
) -> None:
    enabled = not benchmark.disabled
    rounds, calls = (ROUNDS, CALLS_PER_ROUND) if enabled else (1, 10)
    figures: dict[str, dict[str, float]] = {}

    def run() -> None:
        figures.update(asyncio.run(_measure(doors, rounds, calls, tmp_path / "rows")))

    benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info.update(figures)
    print("\nper-call cost, act phase, zero tool latency:")
    for name, values in figures.items():
        print(f"  {name:9s} {values}")
    assert set(figures) == set(TRANSPORTS)
    assert all(v["p50_us"] > 0 and v["calls_per_s_concurrent"] > 0 for v in figures.values())
