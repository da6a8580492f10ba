"""Scaling figures from a sweep: throughput against concurrency (knee marked), and what a
step costs as the history grows, per backend.

Built on `matplotlib.figure.Figure` (never pyplot) in the report's style and colours,
so they render headless and the report can embed them as they are: each function takes
the sweep's cell table (sweep.parquet) and returns a Figure, or None without data.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from harness.report.figures import backend_colours, style

__all__ = [
    "KNEE_FRACTION",
    "cost_figure",
    "find_knee",
    "plot_sweep",
    "throughput_figure",
]

KNEE_FRACTION = 0.9  # the knee: the least concurrency reaching this share of peak throughput
MARKERS = ("o", "s", "^", "D", "v", "P", "X")


def find_knee(concurrency: list[int], throughput: list[float]) -> int | None:
    """The least concurrency whose throughput reaches KNEE_FRACTION of the peak: past it,
    more runs in flight buy less than 10 % more throughput (and only add latency)."""
    points = [(c, t) for c, t in zip(concurrency, throughput, strict=True) if t == t]
    if not points:
        return None
    peak = max(t for _, t in points)
    return min(c for c, t in points if t >= KNEE_FRACTION * peak)


def _ok(cells: pd.DataFrame) -> pd.DataFrame:
    if cells.empty or "status" not in cells:
        return cells
    return cells[cells["status"] == "ok"]


def throughput_figure(cells: pd.DataFrame) -> Figure | None:
    """Committed steps per second against runs in flight, one line per backend and
    history length (steps per run), the knee of each line starred."""
    cells = _ok(cells).dropna(subset=["steps_per_s"])
    if cells.empty:
        return None
    colours = backend_colours(sorted(cells["backend"].unique()))
    lengths = sorted(cells["steps"].unique())
    figure = Figure(figsize=(8.0, 4.2), layout="constrained")
    axes: Axes = figure.subplots()
    for (backend, steps), group in cells.groupby(["backend", "steps"]):
        group = group.sort_values("concurrency")
        x, y = list(group["concurrency"]), [float(v) for v in group["steps_per_s"]]
        marker = MARKERS[lengths.index(steps) % len(MARKERS)]
        colour = colours[str(backend)]
        axes.plot(x, y, marker=marker, color=colour, label=f"{backend}, {steps} steps")
        knee = find_knee([int(c) for c in x], y)
        if knee is not None and len(x) > 1:
            axes.plot(
                [knee],
                [y[x.index(knee)]],
                marker="*",
                markersize=15,
                color=colour,
                markeredgecolor="white",
                linestyle="none",
            )
    axes.set_xscale("log", base=2)
    axes.set_xticks(sorted(cells["concurrency"].unique()))
    axes.get_xaxis().set_major_formatter("{x:g}")
    axes.set_yscale("log")
    axes.get_yaxis().set_major_formatter("{x:g}")
    axes.set_xlabel("runs in flight (concurrency)")
    axes.set_ylabel("committed steps per second")
    axes.set_title(f"Throughput vs concurrency (★ knee: {KNEE_FRACTION:.0%} of peak)")
    axes.legend(loc="center left", bbox_to_anchor=(1.01, 0.5))
    return figure


def cost_figure(cells: pd.DataFrame) -> Figure | None:
    """Per-step cost against history length at the sweep's lowest concurrency (so the
    history, not contention, drives it): orchestration overhead p50 and p99, and the
    persisted bytes per step (snapshots and full-state checkpoints grow with history)."""
    cells = _ok(cells)
    if cells.empty:
        return None
    lowest = cells.loc[cells.groupby("backend")["concurrency"].idxmin(), ["backend", "concurrency"]]
    cells = cells.merge(lowest, on=["backend", "concurrency"])
    colours = backend_colours(sorted(cells["backend"].unique()))
    figure = Figure(figsize=(11.0, 4.0), layout="constrained")
    overhead, size = figure.subplots(1, 2)
    for backend, group in cells.groupby("backend"):
        group = group.sort_values("steps")
        colour = colours[str(backend)]
        x = group["steps"]  # the agent's history; each backend counts its own events
        overhead.plot(x, group["overhead_p50_ms"], marker="o", color=colour, label=f"{backend} p50")
        overhead.plot(
            x,
            group["overhead_p99_ms"],
            marker="o",
            color=colour,
            linestyle="--",
            alpha=0.6,
            label=f"{backend} p99",
        )
        if group["bytes_per_step"].notna().any() and (group["bytes_per_step"] > 0).any():
            size.plot(x, group["bytes_per_step"], marker="s", color=colour, label=str(backend))
    for axes in (overhead, size):
        axes.set_xscale("log")
        axes.set_xlabel("history length (steps per run)")
        axes.get_xaxis().set_major_formatter("{x:g}")
    overhead.set_ylabel("orchestration overhead per step (ms)")
    overhead.set_title("Step overhead vs history length")
    overhead.legend(loc="best")
    size.set_ylabel("persisted bytes per step")
    size.set_yscale("log")
    size.set_title("State size vs history length")
    if size.get_legend_handles_labels()[0]:
        size.legend(loc="best")
    return figure


def plot_sweep(sweep_dir: Path) -> list[Path]:
    """Render a sweep directory's figures next to its sweep.parquet; returns the files."""
    cells = pd.read_parquet(sweep_dir / "sweep.parquet")
    written = []
    with style():
        for name, build in (("throughput", throughput_figure), ("cost", cost_figure)):
            figure = build(cells)
            if figure is None:
                continue
            path = sweep_dir / f"sweep-{name}.png"
            figure.savefig(path)
            written.append(path)
    return written
