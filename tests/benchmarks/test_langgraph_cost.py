"""How LangGraph's state grows with the number of steps (state bloat).

Runs of 5, 20 and 50 steps; the store's own bytes and checkpoint count per run
(`inspect`), for the SQLite and Postgres savers. What the adapter costs against
LangGraph itself (its raw floor, `backends/langgraph/floor.py`, for every saver and
durability mode) is measured by `tests/benchmarks/test_floor_ratios.py`.

Run with `python -m pytest tests/benchmarks/test_langgraph_cost.py --benchmark-enable -s`;
the figures are printed and stored in the benchmark's extra info.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from backends.base import ExternalServices
from harness.postgres import EmbeddedServer
from harness.runner import BenchmarkRun
from tests.conftest import ScenarioFactory

pytestmark = pytest.mark.integration

BLOAT_STEPS = (5, 20, 50)
BLOAT_BACKENDS = ["langgraph:sqlite", "langgraph:postgres"]


@pytest.fixture
def pg_dsn(pg_server: EmbeddedServer) -> str:
    return pg_server.dsn


def zero_latency(write_scenario: ScenarioFactory, name: str, **overrides: Any) -> Path:
    return write_scenario(
        name,
        **{
            "load": {"concurrency": 1},
            "workers": 1,
            "thought_bytes": 256,
            "verify": {"failure_probability": 0.0},
            "llm": {"latency": {"distribution": "constant", "ms": 0}},
            "tool_latency": {"distribution": "constant", "ms": 0},
            "deadline_s": 120,
            **overrides,
        },
    )


@pytest.mark.slow
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
