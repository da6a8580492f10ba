"""The console tables: a results summary (run, load, check) and the suite matrix."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from harness.cli.common import fmt, out
from harness.evaluate import floor_passes

__all__ = [
    "interval_text",
    "print_anomalies",
    "print_fidelity",
    "print_floors",
    "print_headline",
    "print_latency",
    "print_matrix",
    "print_results_headline",
    "print_summary",
    "print_work",
]


def _table(title: str, columns: list[str], left: tuple[str, ...] = ("backend",)) -> Table:
    """A table that stays readable in 80 columns and in CI logs: names fold onto a second
    line instead of being cut to `pgst…`, and numbers are never cut either."""
    table = Table(title=title)
    for column in columns:
        table.add_column(
            column,
            justify="left" if column in left else "right",
            overflow="fold",
            no_wrap=column not in left,  # figures stay whole; names give way first
        )
    return table


RESULT_STYLE = {
    "pass": "green",
    "fail": "bold red",
    "unknown": "yellow",
    "inconclusive": "yellow",
    "not applicable": "dim",
}


def interval_text(ci: dict[str, Any] | None) -> str:
    """`0.667 [0.094, 0.992]`, or `no evidence` with no run."""
    if not ci or not ci.get("n"):
        return "no evidence"
    return f"{ci['rate']:.3f} [{ci['lower']:.3f}, {ci['upper']:.3f}]"


def _result_text(result: str) -> str:
    label = "FAIL" if result == "fail" else result
    return f"[{RESULT_STYLE.get(result, '')}]{label}[/]" if result in RESULT_STYLE else label


def print_summary(summary: dict[str, dict[str, Any]]) -> None:
    """The results of one run: integrity with its interval and the result per backend,
    then anomalies, repeated work, and latency, each table readable in 80 columns."""
    table = _table(
        "integrity (95% exact interval)", ["backend", "runs", "exposed", "integrity", "result"]
    )
    for backend, s in summary.items():
        exposure = s.get("exposure")
        evidence = s.get("evidence") or s.get("integrity_ci")
        table.add_row(
            backend,
            str(s["runs"]),
            "-" if exposure is None else str(exposure["exposed_runs"]),
            interval_text(evidence) if evidence else f"{s['integrity']:.3f}",
            _result_text(str(s.get("result", "-"))),
        )
    out.print(table)
    out.print(
        "integrity: runs passing every verdict among the runs a fault exposed (all runs "
        "when the scenario has no faults), with its exact (Clopper-Pearson) interval",
        style="dim",
    )
    for backend, s in summary.items():
        if s.get("result") not in (None, "pass") and s.get("result_reason"):
            out.print(f"{backend}: {s['result']}: {s['result_reason']}", highlight=False)
        nothing = (s.get("exposure") or {}).get("exposing_nothing") or []
        if nothing:
            out.print(f"{backend}: exposed no run: {', '.join(nothing)}", highlight=False)
        first = (s.get("inspect_errors") or {}).get("first")
        if first:
            count = s["inspect_errors"]["runs"]
            out.print(
                f"{backend}: inspect failed for {count} runs (verdicts unknown): {first}",
                highlight=False,
            )
    print_anomalies(summary)
    print_work(summary)
    print_latency(summary)
    print_fidelity(summary)


def _anomaly_rows(s: dict[str, Any]) -> list[tuple[str, int]]:
    rows = [(v, n) for v, n in (s.get("anomalies") or {}).items() if n]
    unknown = [n for n in (s.get("unknown") or {}).values() if n]
    if unknown:  # one row: an unreadable run leaves every verdict unknown at once
        rows.append(("verdicts unknown (runs)", max(unknown)))
    stray = (s.get("stray_effects") or {}).get("run_ids") or 0
    if stray:
        rows.append(("stray_effects (run ids)", int(stray)))
    return rows


def print_anomalies(summary: dict[str, dict[str, Any]]) -> None:
    """One row per backend and anomaly (verdict failed or unknown, stray effects)."""
    rows = [(b, name, n) for b, s in summary.items() for name, n in _anomaly_rows(s)]
    if not rows:
        out.print("anomalies: none", style="dim")
        return
    table = _table("anomalies", ["backend", "anomaly", "runs"], left=("backend", "anomaly"))
    for backend, name, n in rows:
        table.add_row(backend, name, str(n))
    out.print(table)


def print_work(summary: dict[str, dict[str, Any]]) -> None:
    """Completed runs and the work done beyond the oracle's (repeated after faults)."""
    table = _table(
        "completed runs, repeated work beyond the oracle's",
        ["backend", "complete", "llm calls", "tool calls", "tokens", "acts unsure"],
    )
    for backend, s in summary.items():
        wasted = s.get("wasted") or {}
        table.add_row(
            backend,
            f"{s['completed']}/{s['runs']}",
            fmt(wasted.get("llm_calls")),
            fmt(wasted.get("tool_executions")),
            fmt(wasted.get("llm_tokens")),
            fmt(s.get("acts_indeterminate")),
        )
    out.print(table)


def print_latency(summary: dict[str, dict[str, Any]]) -> None:
    table = _table(
        "throughput and latency (ms)",
        ["backend", "steps/s", "step p50", "step p99", "overhead p50", "overhead p99"],
    )
    for backend, s in summary.items():
        table.add_row(
            backend,
            fmt(s["steps_per_s"], 1),
            fmt(s["step_latency_ms"]["p50"]),
            fmt(s["step_latency_ms"]["p99"]),
            fmt(s["overhead_ms"]["p50"]),
            fmt(s["overhead_ms"]["p99"]),
        )
    out.print(table)


def _times(value: Any) -> str:
    return "-" if value is None else f"{value:.2f}x"


def print_fidelity(summary: dict[str, dict[str, Any]]) -> None:
    """Start latency and steady throughput; then, when a floor or the baseline was
    measured in the same run, step p50 and overhead p50 as ratios to them."""
    table = _table(
        "start latency (ms), steady throughput",
        ["backend", "start p50", "start p99", "steady steps/s"],
    )
    for backend, s in summary.items():
        start = s.get("start_latency_ms") or {}
        table.add_row(
            backend,
            fmt(start.get("p50")),
            fmt(start.get("p99")),
            fmt(s.get("steady_steps_per_s"), 1),
        )
    out.print(table)
    ratios = [
        (b, s.get("floor") or {}, s)
        for b, s in summary.items()
        if s.get("floor") or s.get("step_vs_baseline") is not None
    ]
    if not ratios:
        return
    table = _table(
        "cost against the raw floors and the baseline (p50)",
        [
            "backend",
            "step/floor",
            "step/floor before / after",
            "overhead/floor",
            "services/floor",
            "step/base",
            "overhead/base",
        ],
    )
    table.caption = (
        "floor: the backend's own raw SDK program, run before and after the benchmark; "
        "services: the simulated LLM's and tools' own time per step; base: the baseline"
    )
    for backend, floor, s in ratios:
        table.add_row(
            backend,
            _times(floor.get("step_vs_floor")),
            floor_passes(floor) or "-",
            _times(floor.get("overhead_vs_floor")),
            _times(floor.get("service_vs_floor")),
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


def _cell_mark(c: Any) -> str:
    if c.status == "failed":
        return "harness failed"
    if c.inspect_errors:
        return "backend misbehaved"
    if c.inconclusive:
        return "INCONCLUSIVE"
    if c.result == "not applicable":
        return "n/a (skipped)"
    expected = "" if c.expected_integrity is None else f" >= {c.expected_integrity:g}"
    return {True: f"met{expected}", False: f"NOT MET{expected}", None: "-"}[c.met]


def _evidence(c: Any) -> str:
    rate = c.exposed_integrity if c.exposed_runs is not None else c.integrity
    if not c.evidence_n or c.evidence_lower is None or c.evidence_upper is None:
        return "-"
    return f"{rate:.3f} [{c.evidence_lower:.3f}, {c.evidence_upper:.3f}]"


def print_matrix(cells: list[Any]) -> None:
    """The suite matrix in two tables that fit 80 columns: the evidence per cell
    (integrity among exposed runs with its interval, the verdict against the
    expectation), then what the faults cost (recovery, repeated work)."""
    left = ("fault class", "backend", "verdict")
    table = _table(
        "chaos suite: integrity among exposed runs (95% exact interval)",
        ["fault class", "backend", "exposed", "integrity", "verdict"],
        left=left,
    )
    for c in cells:
        exposed = "-" if c.exposed_runs is None else f"{c.exposed_runs}/{c.runs}"
        table.add_row(c.fault_class, c.backend, exposed, _evidence(c), _cell_mark(c))
    out.print(table)
    table = _table(
        "chaos suite: what the faults cost",
        ["fault class", "backend", "anomalies", "recovery p99 ms", "wasted llm", "wasted tools"],
        left=left,
    )
    for c in cells:
        table.add_row(
            c.fault_class,
            c.backend,
            fmt(c.anomalies),
            fmt(c.recovery_p99_ms, 0),
            fmt(c.wasted_llm_calls),
            fmt(c.wasted_tool_executions),
        )
    out.print(table)


def print_headline(lines: list[str]) -> None:
    """The three lines a console summary ends with (harness/headline.py): the verdict,
    the worst cell (what it lost, how often, its interval), how to reproduce it."""
    style = "bold red" if lines and lines[0].startswith(("FAIL", "ERROR")) else "bold"
    out.print(lines[0], style=style, highlight=False, markup=False, soft_wrap=True)
    for line in lines[1:]:
        out.print(line, highlight=False, markup=False, soft_wrap=True)


def print_results_headline(path: Any) -> None:
    """The headline of one results directory (its summary.json and manifest)."""
    from pathlib import Path

    from harness.headline import headline_lines, outcomes_from_results

    print_headline(headline_lines(outcomes_from_results(Path(path))))
