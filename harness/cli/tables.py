"""The console tables: a results summary (run, load, check) and the suite matrix."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from harness.cli.common import fmt, out

__all__ = ["print_fidelity", "print_floors", "print_matrix", "print_summary"]


def print_summary(summary: dict[str, dict[str, Any]]) -> None:
    table = Table(title="durabench results")
    for column in (
        "backend",
        "runs",
        "complete",
        "integrity",
        "anomalies",
        "steps/s",
        "step p50 ms",
        "step p99 ms",
        "overhead p50 ms",
        "overhead p99 ms",
    ):
        table.add_column(column, justify="left" if column in ("backend", "anomalies") else "right")
    for backend, s in summary.items():
        anomalies = ", ".join(f"{k}={v}" for k, v in s["anomalies"].items() if v) or "none"
        table.add_row(
            backend,
            str(s["runs"]),
            str(s["completed"]),
            f"{s['integrity']:.3f}",
            anomalies,
            fmt(s["steps_per_s"], 1),
            fmt(s["step_latency_ms"]["p50"]),
            fmt(s["step_latency_ms"]["p99"]),
            fmt(s["overhead_ms"]["p50"]),
            fmt(s["overhead_ms"]["p99"]),
        )
    out.print(table)
    print_fidelity(summary)


def _times(value: Any) -> str:
    return "-" if value is None else f"{value:.2f}x"


def print_fidelity(summary: dict[str, dict[str, Any]]) -> None:
    """Start latency, throughput (end to end and steady), and step p50 and overhead p50 as
    ratios to each backend's own raw floor and to the baseline, measured in the same run."""
    table = Table(title="start latency, throughput, cost against the raw floors (p50)")
    for column in (
        "backend",
        "start p50 ms",
        "start p99 ms",
        "steps/s",
        "steady steps/s",
        "step / floor",
        "overhead / floor",
        "step / baseline",
        "overhead / baseline",
    ):
        table.add_column(column, justify="left" if column == "backend" else "right")
    for backend, s in summary.items():
        start = s.get("start_latency_ms") or {}
        floor = s.get("floor") or {}
        table.add_row(
            backend,
            fmt(start.get("p50")),
            fmt(start.get("p99")),
            fmt(s.get("steps_per_s"), 1),
            fmt(s.get("steady_steps_per_s"), 1),
            _times(floor.get("step_vs_floor")),
            _times(floor.get("overhead_vs_floor")),
            _times(s.get("step_vs_baseline")),
            _times(s.get("overhead_vs_baseline")),
        )
    out.print(table)


def print_floors(figures: dict[str, dict[str, Any]]) -> None:
    """`durabench floor`: every floor program of every backend."""
    table = Table(title="raw floors")
    for column in (
        "backend",
        "floor",
        "concurrency",
        "samples",
        "steps/s",
        "start p50 ms",
        "step p50 ms",
        "step p99 ms",
        "overhead p50 ms",
        "overhead p99 ms",
    ):
        table.add_column(column, justify="left" if column in ("backend", "floor") else "right")
    for backend, programs in figures.items():
        for program, f in programs.items():
            table.add_row(
                backend,
                program,
                str(f["concurrency"]),
                str(f["samples"]),
                fmt(f["steps_per_s"], 1),
                fmt(f["start_latency_ms"]["p50"]),
                fmt(f["step_ms"]["p50"]),
                fmt(f["step_ms"]["p99"]),
                fmt(f["overhead_ms"]["p50"]),
                fmt(f["overhead_ms"]["p99"]),
            )
    out.print(table)


def print_matrix(cells: list[Any]) -> None:
    table = Table(title="chaos suite")
    for column in (
        "fault class",
        "backend",
        "integrity",
        "expected",
        "met",
        "anomalies",
        "recovery p50 ms",
        "recovery p99 ms",
        "wasted llm",
        "wasted tools",
        "overhead p50 ms",
    ):
        table.add_column(
            column, justify="left" if column in ("fault class", "backend") else "right"
        )
    for c in cells:
        met = "failed" if c.status == "failed" else {True: "yes", False: "NO", None: "-"}[c.met]
        table.add_row(
            c.fault_class,
            c.backend,
            fmt(c.integrity, 3),
            fmt(c.expected_integrity),
            met,
            fmt(c.anomalies),
            fmt(c.recovery_p50_ms, 0),
            fmt(c.recovery_p99_ms, 0),
            fmt(c.wasted_llm_calls),
            fmt(c.wasted_tool_executions),
            fmt(c.overhead_p50_ms),
        )
    out.print(table)
