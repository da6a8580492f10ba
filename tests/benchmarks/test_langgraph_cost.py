"""What LangGraph's checkpointing costs per step, and how its state grows with steps.

Per-step overhead: one `durabench` run of the same zero-latency scenario on the
baseline and on every saver and durability mode, one run at a time (concurrency 1),
so a step's time is the orchestration and persistence cost alone. Two figures per
backend, from the worker-side phase rows:

- `wall_ms`: a run's wall time (first phase start to last row) per step, minus the
  time spent inside the LLM and tool services; `vs_baseline_ms` subtracts the
  baseline's. This is what a step costs in throughput.
- `ack_ms`: the checker's step overhead (step start to its `commit` row, minus service
  time), i.e. how long until the step is acknowledged durable. For `exit` that is
  the end of the run.

State bloat: runs of 5, 20 and 50 steps; the store's own bytes and checkpoint count
per run (`inspect`), for the SQLite and Postgres savers.

Run with `python -m pytest tests/benchmarks/test_langgraph_cost.py --benchmark-enable -s`;
the figures are printed and stored in each benchmark's extra info.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from backends.base import ExternalServices
from harness.runner import BenchmarkRun
from tests.backends.langgraph.support import postgres_server
from tests.conftest import ScenarioFactory

pytestmark = pytest.mark.integration

SAVERS = ("memory", "sqlite", "postgres")
MODES = ("exit", "async", "sync")
OVERHEAD_BACKENDS = ["baseline"] + [f"langgraph:{s}?durability={m}" for s in SAVERS for m in MODES]
RUNS, STEPS = 8, 20  # measured (--benchmark-enable)
CHECK_RUNS, CHECK_STEPS = 2, 5  # run once as a test (benchmarks disabled): behaviour only
BLOAT_STEPS = (5, 20, 50)
BLOAT_BACKENDS = ["langgraph:sqlite", "langgraph:postgres"]


@pytest.fixture(scope="module")
def pg_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with postgres_server(tmp_path_factory.mktemp("langgraph-bench-pg")) as dsn:
        yield dsn


def zero_latency(write_scenario: ScenarioFactory, name: str, **overrides: Any) -> Path:
    return write_scenario(
        name,
        **{
            "load": {"concurrency": 1},
            "thought_bytes": 256,
            "verify": {"failure_probability": 0.0},
            "llm": {"latency": {"distribution": "constant", "ms": 0}},
            "tool_latency": {"distribution": "constant", "ms": 0},
            "deadline_s": 120,
            **overrides,
        },
    )


def per_step_figures(steps: pd.DataFrame, summary: dict[str, Any]) -> pd.DataFrame:
    """Per backend: median over runs of (run span - service time) / steps, and the
    checker's acknowledgement overhead."""
    rows = []
    for backend, group in steps.groupby("backend"):
        per_run = group.groupby("run_id").agg(
            start=("start", "min"),
            end=("end", "max"),
            service=("service_ms", "sum"),
            steps=("step", "nunique"),
        )
        wall = ((per_run["end"] - per_run["start"]) * 1000 - per_run["service"]) / per_run["steps"]
        ack = summary[str(backend)]["overhead_ms"]
        rows.append(
            {
                "backend": backend,
                "wall_ms": round(float(wall.median()), 3),
                "ack_ms_p50": ack["p50"],
                "ack_ms_p95": ack["p95"],
                "integrity": summary[str(backend)]["integrity"],
            }
        )
    baseline = next(float(r["wall_ms"]) for r in rows if r["backend"] == "baseline")
    table = pd.DataFrame(rows).set_index("backend")
    table["vs_baseline_ms"] = (table["wall_ms"] - baseline).round(3)
    table["x_baseline"] = (table["wall_ms"] / baseline).round(2)
    return table


def test_langgraph_overhead_per_step_for_every_saver_and_mode(
    benchmark: Any, write_scenario: ScenarioFactory, pg_dsn: str, tmp_path: Path
) -> None:
    runs, steps = (CHECK_RUNS, CHECK_STEPS) if benchmark.disabled else (RUNS, STEPS)
    path = zero_latency(write_scenario, "overhead.yaml", runs=runs, steps=steps)
    outcome: dict[str, Any] = {}

    def one_run() -> None:
        bench = BenchmarkRun(
            path, OVERHEAD_BACKENDS, tmp_path / "r", external=ExternalServices(pg_dsn=pg_dsn)
        )
        results = asyncio.run(bench.execute())
        outcome["table"] = per_step_figures(
            pd.read_parquet(results.path / "steps.parquet"), results.read_json("summary.json")
        )

    benchmark.pedantic(one_run, rounds=1, iterations=1)

    table: pd.DataFrame = outcome["table"]
    print("\n" + table.to_string())
    assert set(table.index) == set(OVERHEAD_BACKENDS)
    assert (table["integrity"] == 1.0).all()
    benchmark.extra_info["per_step"] = table.reset_index().to_dict(orient="records")


def test_langgraph_state_grows_with_the_number_of_steps(
    benchmark: Any, write_scenario: ScenarioFactory, pg_dsn: str, tmp_path: Path
) -> None:
    curve: list[dict[str, Any]] = []
    per_length = 1 if benchmark.disabled else 2

    def all_lengths() -> None:
        for steps in BLOAT_STEPS:
            path = zero_latency(
                write_scenario, f"bloat-{steps}.yaml", runs=per_length, steps=steps, deadline_s=300
            )
            bench = BenchmarkRun(
                path,
                BLOAT_BACKENDS,
                tmp_path / f"r{steps}",
                external=ExternalServices(pg_dsn=pg_dsn),
            )
            results = asyncio.run(bench.execute())
            runs = pd.read_parquet(results.path / "runs.parquet")
            for backend, group in runs.groupby("backend"):
                assert group["passed"].all()
                size = float(group["bytes_persisted"].mean())
                checkpoints = float(group["history_length"].mean())
                curve.append(
                    {
                        "backend": backend,
                        "steps": steps,
                        "bytes_per_run": round(size),
                        "checkpoints_per_run": round(checkpoints),
                        "bytes_per_checkpoint": round(size / checkpoints),
                        "bytes_per_step": round(size / steps),
                    }
                )

    benchmark.pedantic(all_lengths, rounds=1, iterations=1)

    table = pd.DataFrame(curve).set_index(["backend", "steps"])
    print("\n" + table.to_string())
    benchmark.extra_info["bloat"] = table.reset_index().to_dict(orient="records")
    for backend in BLOAT_BACKENDS:
        mine = {int(c["steps"]): c for c in curve if c["backend"] == backend}
        per_checkpoint = [int(mine[n]["bytes_per_checkpoint"]) for n in BLOAT_STEPS]
        per_run = [int(mine[n]["bytes_per_run"]) for n in BLOAT_STEPS]
        # every checkpoint stores the whole history: bytes per checkpoint grow with steps,
        # so bytes per run grow faster than the number of steps
        assert per_checkpoint == sorted(per_checkpoint), per_checkpoint
        assert per_run[-1] > BLOAT_STEPS[-1] / BLOAT_STEPS[0] * per_run[0], per_run
