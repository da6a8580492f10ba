"""Scaling sweeps: one scenario over a grid of concurrency x steps, per backend.

Each cell is an ordinary `BenchmarkRun` of a derived scenario (the base scenario with
`load.concurrency` and `steps` overridden, written into the sweep directory, since
workers and services load the scenario from its path), so each cell is judged like any
run and keeps its own results directory. The sweep records per cell the throughput
(steps/s, runs/s), step latency and orchestration overhead percentiles, persisted bytes
and history length, and integrity.

```
sweep-<time>-<scenario>/  manifest.json  sweep.json  sweep.parquet
                          sweep-throughput.png  sweep-cost.png
                          scenarios/<scenario>-c<C>-s<S>.yaml
                          cells/<results dirs>
```
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from harness.errors import DurabenchError
from harness.results import collect_environment
from harness.runner import BenchmarkRun
from harness.scenario import load_scenario, parse_scenario, resolve_scenario_path

__all__ = [
    "RUNS_PER_SLOT",
    "SweepCell",
    "SweepResult",
    "derive_scenario",
    "parse_grid",
    "run_sweep",
]

RUNS_PER_SLOT = 2  # default runs per cell: this many per concurrency slot (at least `runs`)


@dataclass
class SweepCell:
    """One backend at one (concurrency, steps) point."""

    backend: str
    concurrency: int
    steps: int
    runs: int
    status: str = "pending"  # ok | failed (harness error)
    results: str | None = None
    error: str | None = None
    wall_s: float | None = None
    completed: int | None = None
    integrity: float | None = None
    steps_per_s: float | None = None
    runs_per_s: float | None = None
    step_p50_ms: float | None = None
    step_p95_ms: float | None = None
    step_p99_ms: float | None = None
    overhead_p50_ms: float | None = None
    overhead_p95_ms: float | None = None
    overhead_p99_ms: float | None = None
    bytes_per_step: float | None = None
    persisted_bytes_mean: float | None = None
    history_length_mean: float | None = None


@dataclass
class SweepResult:
    path: Path
    cells: list[SweepCell]

    @property
    def failed(self) -> list[SweepCell]:
        return [c for c in self.cells if c.status != "ok"]


def parse_grid(text: str, what: str) -> list[int]:
    """`1,4,16` -> [1, 4, 16]; one clear error for anything else."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise DurabenchError(f"--{what} must be comma-separated integers, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise DurabenchError(f"--{what} needs positive integers, got {text!r}")
    return sorted(set(values))


def derive_scenario(base: Path, concurrency: int, steps: int, runs: int, directory: Path) -> Path:
    """The base scenario with this cell's load and size, validated, written to `directory`."""
    data = yaml.safe_load(base.read_text())
    data["load"] = {"concurrency": concurrency}
    data["steps"] = steps
    data["runs"] = runs
    data["name"] = f"{data['name']}-c{concurrency}-s{steps}"[:64]
    path = directory / f"{data['name']}.yaml"
    parse_scenario(data, str(path))  # a cell that cannot run fails before any cell starts
    directory.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _fill(cell: SweepCell, summary: dict[str, Any], runs: pd.DataFrame) -> None:
    cell.wall_s = summary["wall_s"]
    cell.completed = summary["completed"]
    cell.integrity = summary["integrity"]
    cell.steps_per_s = summary["steps_per_s"]
    wall = summary["wall_s"] or 0.0
    cell.runs_per_s = round(summary["completed"] / wall, 3) if wall > 0 else None
    for kind in ("p50", "p95", "p99"):
        setattr(cell, f"step_{kind}_ms", summary["step_latency_ms"][kind])
        setattr(cell, f"overhead_{kind}_ms", summary["overhead_ms"][kind])
    cell.bytes_per_step = summary["bytes_per_step"]
    persisted = pd.to_numeric(runs["bytes_persisted"], errors="coerce").dropna()
    history = pd.to_numeric(runs["history_length"], errors="coerce").dropna()
    cell.persisted_bytes_mean = round(float(persisted.mean()), 2) if len(persisted) else None
    cell.history_length_mean = round(float(history.mean()), 2) if len(history) else None


def _write(result: SweepResult) -> None:
    rows = [asdict(c) for c in result.cells]
    tmp = result.path / ".sweep.json.tmp"
    tmp.write_text(json.dumps({"cells": rows}, indent=2) + "\n")
    tmp.replace(result.path / "sweep.json")
    pd.DataFrame(rows).to_parquet(result.path / "sweep.parquet", index=False)


async def run_sweep(
    scenario: str | Path,
    backends: list[str],
    concurrency: list[int],
    steps: list[int],
    out_root: Path,
    *,
    runs: int | None = None,
    on_cell: Callable[[SweepCell], None] | None = None,
    bench_options: dict[str, Any] | None = None,
    figure: bool = True,
) -> SweepResult:
    """Run every (backend, steps, concurrency) cell; a cell that crashes is recorded, not
    fatal. `runs` per cell defaults to max(scenario runs, RUNS_PER_SLOT x concurrency)."""
    base = resolve_scenario_path(scenario)
    base_scenario = load_scenario(base)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    path = out_root / f"sweep-{stamp}-{base_scenario.name}"
    cells_dir = path / "cells"
    cells_dir.mkdir(parents=True)
    plan: list[tuple[int, int, Path, int]] = []
    for s in steps:
        for c in concurrency:
            n = runs if runs is not None else max(base_scenario.runs, RUNS_PER_SLOT * c)
            plan.append((c, s, derive_scenario(base, c, s, n, path / "scenarios"), n))
    manifest = {
        "scenario": str(base),
        "backends": backends,
        "concurrency": concurrency,
        "steps": steps,
        "runs": runs,
        "environment": collect_environment(),
        "started_at": time.time(),
    }
    (path / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
    result = SweepResult(path, [])
    for backend in backends:
        for c, s, cell_scenario, n in plan:
            cell = SweepCell(backend, c, s, n)
            result.cells.append(cell)
            bench = BenchmarkRun(cell_scenario, [backend], cells_dir, **(bench_options or {}))
            try:
                results = await bench.execute()
                _fill(cell, results.read_json("summary.json")[backend], results.read_table("runs"))
                cell.status = "ok"
            except DurabenchError as exc:
                cell.status, cell.error = "failed", str(exc)[:1000]
            except Exception as exc:  # one broken cell must not hide the others
                cell.status, cell.error = "failed", f"{type(exc).__name__}: {exc}"[:1000]
            if bench.results is not None:
                cell.results = str(bench.results.path.relative_to(path))
            _write(result)
            if on_cell is not None:
                on_cell(cell)
    if figure and any(c.status == "ok" for c in result.cells):
        try:
            from harness.load.figures import plot_sweep
        except ImportError:  # matplotlib is optional: the tables are the result
            return result
        plot_sweep(path)
    return result
