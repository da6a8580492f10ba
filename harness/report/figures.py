"""The report's figures: one style, the Okabe-Ito palette, units on every axis.

Figures are built on `matplotlib.figure.Figure` directly (never pyplot), so they render
headless with Agg and never touch a notebook's or a GUI's global state. Every function
returns None when its data is absent; the caller says so in words.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator

from harness.report.metrics import BASELINE_BACKEND

__all__ = [
    "KIND_STYLE",
    "OKABE_ITO",
    "backend_colours",
    "bloat_figure",
    "breakdown_figure",
    "integrity_figure",
    "latency_cdf_figure",
    "recovery_figure",
    "style",
    "timeline_figure",
    "to_png",
    "wasted_figure",
]

OKABE_ITO = {
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "purple": "#CC79A7",
    "black": "#000000",
}
_C = OKABE_ITO
BACKEND_ORDER = (
    _C["blue"],
    _C["vermillion"],
    _C["green"],
    _C["purple"],
    _C["orange"],
    _C["sky_blue"],
)
# one colour (and, past the palette, a hatch) per fault kind, the same in every figure
KIND_STYLE: dict[str, tuple[str, str]] = {
    "kill": (_C["vermillion"], ""),
    "evict": (_C["orange"], ""),
    "pause": (_C["sky_blue"], ""),
    "restart": (_C["green"], ""),
    "outage": (_C["purple"], ""),
    "network": (_C["blue"], ""),
    "llm": (_C["yellow"], ""),
    "tool": ("#999999", ""),
    "deploy": (_C["black"], "//"),
    "crash_point": (_C["vermillion"], "xx"),
}
COMPONENT_COLOURS = {"llm": _C["sky_blue"], "tool": _C["orange"], "overhead": _C["vermillion"]}
STYLE: dict[Any, Any] = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "figure.dpi": 100,
    "savefig.dpi": 110,
    "savefig.bbox": "tight",
}


@contextmanager
def style() -> Iterator[None]:
    """The report's rc settings; figures are built and rendered inside it."""
    with matplotlib.rc_context(STYLE):
        yield


def to_png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    with style():
        figure.savefig(buffer, format="png")
    return buffer.getvalue()


def backend_colours(backends: Sequence[str]) -> dict[str, str]:
    """Stable colours: the baseline is black, the others take the palette in order."""
    others = [b for b in backends if b != BASELINE_BACKEND]
    colours = {b: BACKEND_ORDER[i % len(BACKEND_ORDER)] for i, b in enumerate(others)}
    colours[BASELINE_BACKEND] = _C["black"]
    return colours


def kind_style(kind: str) -> tuple[str, str]:
    if kind in KIND_STYLE:
        return KIND_STYLE[kind]
    palette = list(OKABE_ITO.values())
    return palette[sum(map(ord, kind)) % len(palette)], ".."


def _plain_log(axis: Any) -> None:
    """A log axis labelled 1, 10, 100 rather than 10^0; over spans of less than about
    two decades the 2s and 5s between are labelled too."""

    def minor(value: float, _: object) -> str:
        low, high = axis.get_view_interval()
        return f"{value:g}" if low > 0 and high / low < 300 else ""

    axis.set_major_locator(LogLocator(base=10))
    axis.set_minor_locator(LogLocator(base=10, subs=(2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(FuncFormatter(minor))


def _grid(count: int, width: float = 4.6, height: float = 3.4) -> tuple[Figure, list[Axes]]:
    cols = min(3, count)
    rows = (count + cols - 1) // cols
    figure = Figure(figsize=(width * cols, height * rows), layout="constrained")
    axes = figure.subplots(rows, cols, squeeze=False).ravel().tolist()
    for extra in axes[count:]:
        extra.set_visible(False)
    return figure, axes[:count]


def integrity_figure(matrix: pd.DataFrame, labels: pd.DataFrame | None = None) -> Figure | None:
    """Heatmap backend x fault class of integrity (0..1), every cell labelled (with
    `labels`: the rate, its interval and n, or `inconclusive`, hatched grey)."""
    if matrix.empty:
        return None
    with style():
        rows, cols = matrix.shape
        tall = labels is not None
        figure = Figure(
            figsize=(2.2 + 1.7 * cols, 1.0 + (0.95 if tall else 0.55) * rows),
            layout="constrained",
        )
        ax = figure.subplots()
        values = matrix.to_numpy(dtype=float)
        image = ax.imshow(
            np.ma.masked_invalid(values), cmap="cividis", vmin=0, vmax=1, aspect="auto"
        )
        ax.set_xticks(range(cols), [str(c) for c in matrix.columns], rotation=20, ha="right")
        ax.set_yticks(range(rows), [str(r) for r in matrix.index])
        ax.grid(False)
        for (i, j), value in np.ndenumerate(values):
            label = labels.iloc[i, j] if labels is not None else None
            if isinstance(label, str):
                text = label
            else:
                text = "not run" if np.isnan(value) else f"{value:.3f}"
            if isinstance(label, str) and label.startswith("inconclusive"):
                ax.add_patch(
                    Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor="#dddddd", hatch="//", lw=0)
                )
            colour = "white" if not np.isnan(value) and value < 0.55 else "black"
            ax.text(j, i, text, ha="center", va="center", color=colour, fontsize=8)
        figure.colorbar(image, ax=ax, label="integrity among exposed runs")
        ax.set_xlabel("fault class (scenario)")
        ax.set_ylabel("backend")
    return figure


def latency_cdf_figure(per_step: pd.DataFrame, colours: dict[str, str]) -> Figure | None:
    """Per fault class, the CDF of step latency (solid) and orchestration overhead
    (dashed) per backend, log-scale ms. Non-positive values cannot sit on a log axis
    and are left out of the curve (never out of the tables)."""
    if per_step.empty:
        return None
    classes = list(dict.fromkeys(per_step["fault_class"]))
    handles: dict[str, Any] = {}
    with style():
        figure, axes = _grid(len(classes))
        for ax, fault_class in zip(axes, classes, strict=True):
            mine = per_step[per_step["fault_class"] == fault_class]
            for backend in dict.fromkeys(mine["backend"]):
                rows = mine[mine["backend"] == backend]
                for column, dash, label in (
                    ("step_ms", "-", f"{backend} step"),
                    ("overhead_ms", "--", f"{backend} overhead"),
                ):
                    values = np.sort(rows[column].to_numpy(dtype=float))
                    values = values[values > 0]
                    if values.size:
                        cdf = np.arange(1, values.size + 1) / values.size
                        (line,) = ax.step(
                            values,
                            cdf,
                            where="post",
                            color=colours.get(backend),
                            linestyle=dash,
                            label=label,
                            linewidth=1.4,
                        )
                        handles.setdefault(label, line)
            ax.set_xscale("log")
            _plain_log(ax.xaxis)
            ax.set_ylim(0, 1.02)
            ax.set_title(str(fault_class))
            ax.set_xlabel("per-step time (ms, log scale)")
            ax.set_ylabel("fraction of committed steps")
        if len(classes) == 1:
            axes[0].legend(loc="upper left")
        else:  # one legend for every panel, below them
            figure.legend(
                list(handles.values()), list(handles), loc="outside lower center", ncols=4
            )
    return figure


def breakdown_figure(latency: pd.DataFrame) -> Figure | None:
    """Where a committed step's time goes, on average: LLM, tool, orchestration."""
    if latency.empty:
        return None
    means = latency.pivot_table(
        index=["fault_class", "backend"], columns="component", values="mean", sort=False
    )
    with style():
        figure = Figure(figsize=(8, 0.9 + 0.42 * len(means)), layout="constrained")
        ax = figure.subplots()
        labels = [f"{b} · {fc}" for fc, b in means.index]
        left = np.zeros(len(means))
        for component in ("llm", "tool", "overhead"):
            widths = means.get(component, pd.Series(0.0, index=means.index)).to_numpy(dtype=float)
            ax.barh(
                labels,
                widths,
                left=left,
                color=COMPONENT_COLOURS[component],
                label={
                    "llm": "inside the LLM",
                    "tool": "inside the tool service",
                    "overhead": "orchestration overhead",
                }[component],
            )
            left += widths
        ax.invert_yaxis()
        ax.set_xlabel("mean time per committed step (ms)")
        ax.legend(loc="lower right")
    return figure


def timeline_figure(
    title: str,
    rate: pd.DataFrame,
    steps: pd.DataFrame,
    windows: pd.DataFrame,
    colour: str,
) -> Figure | None:
    """Jepsen-style: committed steps/s (top) and each step's latency (bottom) over the
    run, with every fault's window shaded in its kind's colour."""
    if rate.empty and steps.empty:
        return None
    with style():
        figure = Figure(figsize=(10, 5.2), layout="constrained")
        top, bottom = figure.subplots(2, 1, sharex=True)
        if not rate.empty:
            top.bar(
                rate["t_s"], rate["per_s"], width=rate["width_s"], align="edge", color="#444444"
            )
        if not steps.empty:
            bottom.scatter(
                steps["t_s"], steps["step_ms"], s=6, color=colour, alpha=0.6, linewidths=0
            )
            bottom.set_yscale("log")
            _plain_log(bottom.yaxis)
        horizon = float(
            max(
                rate["t_s"].max() + rate["width_s"].max() if not rate.empty else 0,
                steps["t_s"].max() if not steps.empty else 0,
                1e-3,
            )
        )
        seen: dict[str, Patch] = {}
        for window in windows.to_dict("records"):
            if window["start_s"] is None or pd.isna(window["start_s"]):
                continue
            kind = str(window["kind"])
            fill, hatch = kind_style(kind)
            start = float(window["start_s"])
            end = window["end_s"]
            for ax in (top, bottom):
                if end is None or pd.isna(end) or float(end) - start < horizon * 0.005:
                    ax.axvline(start, color=fill, linewidth=2.2, alpha=0.9)
                else:
                    ax.axvspan(
                        start,
                        float(end),
                        facecolor=fill,
                        alpha=0.28,
                        hatch=hatch,
                        edgecolor=fill,
                        linewidth=0,
                    )
            seen.setdefault(kind, Patch(facecolor=fill, alpha=0.5, hatch=hatch, label=kind))
        top.set_ylabel("committed steps/s")
        bottom.set_ylabel("step latency (ms, log)")
        bottom.set_xlabel("time since the backend's first step (s)")
        top.set_title(title)
        if seen:
            top.legend(handles=list(seen.values()), title="fault", loc="upper right")
    return figure


def recovery_figure(times: pd.DataFrame, colours: dict[str, str]) -> Figure | None:
    """Recovery time of each affected run (dots) per fault kind and backend; runs that
    never committed again are counted above the axis."""
    if times.empty:
        return None
    groups = list(times.groupby(["fault_class", "kind", "backend"], sort=False))
    with style():
        figure = Figure(figsize=(max(5.0, 1.3 * len(groups) + 2), 3.8), layout="constrained")
        ax = figure.subplots()
        rng = np.random.default_rng(0)  # jitter only: the same picture every time
        for x, ((_, _, backend), group) in enumerate(groups):
            values = pd.to_numeric(group["recovery_ms"], errors="coerce")
            done = values.dropna().to_numpy(dtype=float)
            if done.size:
                ax.scatter(
                    x + rng.uniform(-0.15, 0.15, done.size),
                    done,
                    s=14,
                    color=colours.get(str(backend)),
                    alpha=0.8,
                )
                ax.hlines(np.median(done), x - 0.3, x + 0.3, color="#444444", linewidth=2)
            lost = int(values.isna().sum())
            if lost:
                ax.annotate(
                    f"{lost} never\nrecovered",
                    (x, 1.0),
                    xycoords=("data", "axes fraction"),
                    ha="center",
                    va="top",
                    fontsize=8,
                    color=_C["vermillion"],
                )
        several = len({fc for (fc, _, _), _ in groups}) > 1
        ax.set_xticks(
            range(len(groups)),
            [
                f"{k}\n{b}" + (f"\n{str(fc).split(' (')[0]}" if several else "")
                for (fc, k, b), _ in groups
            ],
        )
        ax.set_xlim(-0.6, len(groups) - 0.4)
        ax.set_ylabel("fault start → next committed step (ms)")
        ax.set_xlabel("fault kind and backend (bar: median)")
    return figure


def wasted_figure(wasted: pd.DataFrame, colours: dict[str, str]) -> Figure | None:
    """Work done beyond the oracle's, per fault class and backend."""
    if wasted.empty:
        return None
    with style():
        figure = Figure(figsize=(10, 0.9 + 0.42 * len(wasted)), layout="constrained")
        left, right = figure.subplots(1, 2, sharey=True)
        labels = [
            f"{b} · {fc}" for fc, b in zip(wasted["fault_class"], wasted["backend"], strict=True)
        ]
        bar_colours = [colours.get(str(b), "#444444") for b in wasted["backend"]]
        left.barh(labels, wasted["wasted_llm_calls"], color=bar_colours)
        right.barh(labels, wasted["wasted_tool_executions"], color=bar_colours)
        left.invert_yaxis()
        for ax in (left, right):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        left.set_xlabel("extra LLM calls (count)")
        right.set_xlabel("extra tool executions (count)")
    return figure


def bloat_figure(runs: pd.DataFrame, colours: dict[str, str]) -> Figure | None:
    """Per run: persisted bytes and history length against the steps it persisted."""
    if runs.empty:
        return None
    with style():
        figure = Figure(figsize=(10, 3.8), layout="constrained")
        left, right = figure.subplots(1, 2)
        for backend in dict.fromkeys(runs["backend"]):
            mine = runs[runs["backend"] == backend]
            colour = colours.get(str(backend))
            size = pd.to_numeric(mine["bytes_persisted"], errors="coerce")
            history = pd.to_numeric(mine["history_length"], errors="coerce")
            left.scatter(
                mine["steps_persisted"], size, s=14, color=colour, label=str(backend), alpha=0.8
            )
            right.scatter(
                mine["steps_persisted"], history, s=14, color=colour, label=str(backend), alpha=0.8
            )
        for ax in (left, right):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        left.set_xlabel("steps persisted (count)")
        left.set_ylabel("bytes persisted per run (bytes)")
        right.set_xlabel("steps persisted (count)")
        right.set_ylabel("history length (entries)")
        left.legend(loc="upper left")
    return figure
