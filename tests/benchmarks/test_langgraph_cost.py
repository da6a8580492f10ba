"""What durabench's LangGraph adapter costs against LangGraph itself, and how state grows.

Fidelity: for every saver (sqlite, postgres) x durability mode (exit, async, sync) x
concurrency (1, 8), the same zero-latency workload (10 steps, 256-byte thoughts, one
worker) runs through `durabench` and through the floor (`langgraph_floor.py`: the
same graph, saver, mode and service calls in a plain LangGraph program), interleaved
in the same session, several rounds. Both report the same figures, from the same
definitions (`steps.parquet` for the adapter, the floor's own clock for the floor):

- `step` p50: a step's reason start -> the saver stored the first checkpoint holding
  it (the `commit` row). For `async` that includes the put queue LangGraph keeps
  behind execution; for `exit` it is the end of the invocation.
- `overhead` p50: step minus the time the LLM and tool services report they spent.
- `span`: a run's first reason start -> its last step stored, per step.

The printed table holds, per cell, the median over rounds of each figure and of the
ratio adapter / floor (measured in the same round), with the rounds' min..max: the
ratio is the result, not a timed assertion. Run with
`python -m pytest tests/benchmarks/test_langgraph_cost.py --benchmark-enable -s`;
the figures are also stored in the benchmark's extra info. With benchmarks disabled
(the default test run) one tiny cell per saver checks that both sides run and report.

State bloat: runs of 5, 20 and 50 steps; the store's own bytes and checkpoint count
per run (`inspect`), for the SQLite and Postgres savers.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from backends.base import ExternalServices
from harness.evaluate import step_table
from harness.runner import BenchmarkRun
from tests.backends.langgraph.support import postgres_server
from tests.benchmarks.langgraph_floor import DSN_ENV
from tests.conftest import ScenarioFactory

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SAVERS = ("sqlite", "postgres")
MODES = ("exit", "async", "sync")
CONCURRENCY = (1, 8)
STEPS = 10
RUNS_PER_LANE = {1: 8, 8: 3}  # runs per concurrency lane: 8 at c=1, 24 at c=8
ROUNDS = 3  # measured (--benchmark-enable); each round runs every cell on both sides
CHECK = {"mode": "async", "concurrency": 2, "runs": 2, "steps": 3}  # benchmarks disabled
FIGURES = ("step_ms_p50", "overhead_ms_p50", "span_ms_per_step")
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
            "workers": 1,
            "thought_bytes": 256,
            "verify": {"failure_probability": 0.0},
            "llm": {"latency": {"distribution": "constant", "ms": 0}},
            "tool_latency": {"distribution": "constant", "ms": 0},
            "deadline_s": 120,
            **overrides,
        },
    )


def adapter_figures(scenario: Path, backend: str, out: Path, pg_dsn: str) -> dict[str, Any]:
    """One `durabench` run of one backend; the floor's figures from its steps.parquet."""
    bench = BenchmarkRun(scenario, [backend], out, external=ExternalServices(pg_dsn=pg_dsn))
    results = asyncio.run(bench.execute())
    steps = pd.read_parquet(results.path / "steps.parquet")
    summary = results.read_json("summary.json")[backend]
    table = step_table(steps)
    spans = []
    for _, run in steps.groupby("run_id"):
        commits = run[(run["phase"] == "commit") & (run["outcome"] == "ok")]
        span_ms = (commits["end"].max() - run["start"].min()) * 1000
        spans.append(span_ms / commits["step"].nunique())
    return {
        "step_ms_p50": float(table["step_ms"].median()),
        "overhead_ms_p50": float(table["overhead_ms"].median()),
        "span_ms_per_step": statistics.median(spans),
        "steps_per_s": summary["steps_per_s"],
        "steps": len(table),
        "integrity": summary["integrity"],
    }


def floor_figures(
    scenario: Path,
    saver: str,
    mode: str,
    concurrency: int,
    runs: int,
    steps: int,
    workdir: Path,
    pg_dsn: str,
) -> dict[str, Any]:
    """The floor program for the same cell, as its own process with its own services."""
    workdir.mkdir(parents=True, exist_ok=True)
    out = workdir / "floor.json"
    argv = [
        sys.executable,
        "-m",
        "tests.benchmarks.langgraph_floor",
        "--saver",
        saver,
        "--durability",
        mode,
        "--scenario",
        str(scenario),
        "--workdir",
        str(workdir),
        "--threads",
        str(runs),
        "--concurrency",
        str(concurrency),
        "--steps",
        str(steps),
        "--schema",
        f"floor_{workdir.name}",
        "--out",
        str(out),
    ]
    env = {**os.environ, DSN_ENV: pg_dsn, "PYTHONPATH": str(REPO)}
    subprocess.run(argv, check=True, cwd=REPO, env=env, timeout=600)
    summary: dict[str, Any] = json.loads(out.read_text())["summary"]
    return summary


def one_cell(
    write_scenario: ScenarioFactory,
    tmp_path: Path,
    pg_dsn: str,
    saver: str,
    mode: str,
    concurrency: int,
    runs: int,
    steps: int,
    round_: int,
) -> dict[str, Any]:
    """Floor and adapter for one cell, the order alternating between rounds."""
    name = f"{saver}-{mode}-c{concurrency}-r{round_}"
    scenario = zero_latency(
        write_scenario,
        f"{name}.yaml",
        runs=runs,
        steps=steps,
        load={"concurrency": concurrency},
    )
    backend = f"langgraph:{saver}?durability={mode}"
    sides: dict[str, dict[str, Any]] = {}
    for side in ("floor", "adapter") if round_ % 2 == 0 else ("adapter", "floor"):
        if side == "floor":
            sides[side] = floor_figures(
                scenario,
                saver,
                mode,
                concurrency,
                runs,
                steps,
                tmp_path / f"floor_{name.replace('-', '_')}",
                pg_dsn,
            )
        else:
            sides[side] = adapter_figures(scenario, backend, tmp_path / name, pg_dsn)
    row: dict[str, Any] = {"saver": saver, "mode": mode, "c": concurrency, "round": round_}
    for figure in (*FIGURES, "steps_per_s"):
        floor, adapter = sides["floor"][figure], sides["adapter"][figure]
        row[f"floor_{figure}"], row[f"adapter_{figure}"] = floor, adapter
        row[f"x_{figure}"] = adapter / floor if floor else float("nan")
    row["adapter_integrity"] = sides["adapter"]["integrity"]
    row["floor_steps"], row["adapter_steps"] = sides["floor"]["steps"], sides["adapter"]["steps"]
    return row


def fidelity_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Per cell: medians over rounds, and each ratio's min..max over rounds."""
    frame = pd.DataFrame(rows)
    grouped = frame.groupby(["saver", "mode", "c"])
    table = grouped.median(numeric_only=True).drop(columns="round")
    for figure in ("step_ms_p50", "overhead_ms_p50"):
        low, high = grouped[f"x_{figure}"].min(), grouped[f"x_{figure}"].max()
        table[f"x_{figure}_range"] = low.round(2).astype(str) + ".." + high.round(2).astype(str)
    columns = [
        "floor_step_ms_p50",
        "adapter_step_ms_p50",
        "x_step_ms_p50",
        "x_step_ms_p50_range",
        "floor_overhead_ms_p50",
        "adapter_overhead_ms_p50",
        "x_overhead_ms_p50",
        "x_overhead_ms_p50_range",
        "floor_span_ms_per_step",
        "adapter_span_ms_per_step",
        "x_span_ms_per_step",
        "floor_steps_per_s",
        "adapter_steps_per_s",
    ]
    return table[columns].round(3)


def test_the_adapter_costs_what_langgraph_costs_for_every_saver_and_mode(
    benchmark: Any, write_scenario: ScenarioFactory, pg_dsn: str, tmp_path: Path
) -> None:
    rows: list[dict[str, Any]] = []
    if benchmark.disabled:
        cells = [(s, str(CHECK["mode"]), int(CHECK["concurrency"])) for s in SAVERS]
        rounds, steps = 1, int(CHECK["steps"])
    else:
        cells = [(s, m, c) for s in SAVERS for m in MODES for c in CONCURRENCY]
        rounds, steps = ROUNDS, STEPS

    def measure() -> None:
        for round_ in range(rounds):
            for saver, mode, concurrency in cells:
                runs = int(CHECK["runs"]) if benchmark.disabled else RUNS_PER_LANE[concurrency]
                if not benchmark.disabled:
                    runs *= concurrency
                rows.append(
                    one_cell(
                        write_scenario,
                        tmp_path,
                        pg_dsn,
                        saver,
                        mode,
                        concurrency,
                        runs,
                        steps,
                        round_,
                    )
                )

    benchmark.pedantic(measure, rounds=1, iterations=1)

    table = fidelity_table(rows)
    with pd.option_context("display.width", 250, "display.max_columns", 20):
        print("\n" + table.to_string())
    benchmark.extra_info["fidelity"] = table.reset_index().to_dict(orient="records")
    benchmark.extra_info["rounds"] = rows
    # behaviour, not timing: both sides ran every step of every run, the adapter kept
    # full integrity, and every figure is a positive number
    assert all(r["adapter_integrity"] == 1.0 for r in rows)
    assert all(r["floor_steps"] == r["adapter_steps"] for r in rows), rows
    for row in rows:
        for figure in FIGURES:
            assert row[f"floor_{figure}"] > 0 and row[f"adapter_{figure}"] > 0, (figure, row)


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
