"""What faults did: their windows on the run's clock, committed throughput and step
latency over time, recovery times, and the work that was done twice.

Times on a timeline are seconds since the backend's first step started, so fault
windows (faults.parquet `actual_start`/`actual_end`) and commits share one axis.
"""

from __future__ import annotations

import pandas as pd

from harness.evaluate import recovery_table
from harness.report.load import Loaded, ResultSet
from harness.report.metrics import judged_runs

__all__ = [
    "TIMELINE_BINS",
    "fault_windows",
    "recovery_stats",
    "recovery_times",
    "throughput",
    "timeline_runs",
    "untimed_fault_runs",
    "wasted_table",
]

TIMELINE_BINS = (
    60  # throughput bars per timeline: fine enough to see a pause, coarse enough to read
)
MIN_BIN_S = 0.05


def timeline_runs(results: ResultSet) -> list[tuple[Loaded, str]]:
    """(results directory, backend) pairs that had at least one fault injected."""
    pairs = []
    for item in results.items:
        faults = item.faults
        if faults.empty or "actual_start" not in faults.columns:
            continue
        injected = faults[(faults["outcome"] == "ok") & faults["actual_start"].notna()]
        pairs += [(item, b) for b in item.backends if (injected["backend"] == b).any()]
    return pairs


def untimed_fault_runs(results: ResultSet) -> list[tuple[Loaded, str, str]]:
    """(results, backend, why) for runs whose scenario had faults but no timed fault took
    effect: skipped or failed faults, or crash points (they fire inside the worker)."""
    timed = {(id(item), backend) for item, backend in timeline_runs(results)}
    out = []
    for item in results.items:
        scheduled = (item.manifest.get("scenario") or {}).get("faults") or []
        if not scheduled:
            continue
        for backend in item.backends:
            if (id(item), backend) in timed:
                continue
            faults = item.faults
            mine = faults[faults["backend"] == backend] if not faults.empty else faults
            if not mine.empty:
                why = "; ".join(
                    f"{f['kind']} {f['outcome']}" + (f" ({f['detail']})" if f.get("detail") else "")
                    for f in mine.to_dict("records")
                )
            elif all(f.get("kind") == "crash_point" for f in scheduled):
                why = "crash points fire inside the worker at a step, not at a time"
            else:
                why = "no fault was recorded (the run ended before the first one)"
            out.append((item, backend, why))
    return out


def fault_windows(item: Loaded, backend: str) -> pd.DataFrame:
    """Every fault occurrence of one backend's run, times relative to its first step.
    `start_s`/`end_s` are None for a fault that never took effect."""
    columns = ["kind", "target", "outcome", "start_s", "end_s", "duration_s", "selected"]
    faults = item.faults
    if faults.empty:
        return pd.DataFrame(columns=columns)
    mine = faults[faults["backend"] == backend].sort_values(["actual_start", "fault_index"])
    zero = item.began.get(backend)
    rows = []
    for fault in mine.to_dict("records"):
        start, end = fault.get("actual_start"), fault.get("actual_end")
        start_s = float(start) - zero if zero is not None and pd.notna(start) else None
        end_s = float(end) - zero if zero is not None and pd.notna(end) else None
        selected = fault.get("selected")
        rows.append(
            {
                "kind": fault["kind"],
                "target": fault.get("target") or "",
                "outcome": fault.get("outcome"),
                "start_s": start_s,
                "end_s": end_s,
                "duration_s": end_s - start_s
                if start_s is not None and end_s is not None
                else None,
                "selected": ", ".join(str(s) for s in selected) if selected is not None else "",
            }
        )
    return pd.DataFrame(rows, columns=columns)


def throughput(item: Loaded, backend: str, bins: int = TIMELINE_BINS) -> pd.DataFrame:
    """Committed steps per second in equal bins over the run: `t_s` (bin start),
    `width_s`, `commits`, `per_s`. The bins cover the run from its first step to its
    last recorded activity or fault end, so a stall shows as bins of zero."""
    steps = item.per_step[item.per_step["backend"] == backend]
    columns = ["t_s", "width_s", "commits", "per_s"]
    if steps.empty:
        return pd.DataFrame(columns=columns)
    ends = pd.to_numeric(fault_windows(item, backend)["end_s"], errors="coerce").dropna()
    raw = item.steps[item.steps["backend"] == backend]
    horizon = max(
        float(steps["t_s"].max()),
        float(raw["end"].max()) - item.began[backend],
        float(ends.max()) if len(ends) else 0.0,
    )
    width = max(MIN_BIN_S, horizon / bins)
    count = max(1, int(horizon // width) + 1)
    index = (steps["t_s"] // width).clip(lower=0, upper=count - 1).astype(int)
    commits = index.value_counts().reindex(range(count), fill_value=0).sort_index()
    return pd.DataFrame(
        {
            "t_s": [i * width for i in range(count)],
            "width_s": width,
            "commits": commits.to_numpy(),
            "per_s": commits.to_numpy() / width,
        },
        columns=columns,
    )


def recovery_times(results: ResultSet) -> pd.DataFrame:
    """Per fault occurrence and affected run: fault start -> the run's next committed
    step, ms (NaN: never committed again), tagged with results and fault class."""
    frames = []
    for item in results.items:
        if item.faults.empty or item.steps.empty:
            continue
        table = recovery_table(item.faults, item.steps, item.runs)
        if not table.empty:
            frames.append(table.assign(results=item.label, fault_class=item.fault_class))
    if not frames:
        return pd.DataFrame(
            columns=["fault_class", "kind", "backend", "results", "run_id", "recovery_ms"]
        )
    return pd.concat(frames, ignore_index=True)


def recovery_stats(times: pd.DataFrame) -> pd.DataFrame:
    """Per (fault class, fault kind, backend): affected runs, runs that never recovered,
    and the recovery-time quantiles of those that did (ms)."""
    columns = [
        "fault_class",
        "kind",
        "backend",
        "affected",
        "unrecovered",
        "p50",
        "p95",
        "p99",
        "max",
    ]
    rows = []
    if not times.empty:
        for (fault_class, kind, backend), group in times.groupby(
            ["fault_class", "kind", "backend"], sort=False
        ):
            values = pd.to_numeric(group["recovery_ms"], errors="coerce")
            done = values.dropna()
            rows.append(
                {
                    "fault_class": fault_class,
                    "kind": kind,
                    "backend": backend,
                    "affected": len(values),
                    "unrecovered": int(values.isna().sum()),
                    "p50": float(done.quantile(0.5)) if len(done) else None,
                    "p95": float(done.quantile(0.95)) if len(done) else None,
                    "p99": float(done.quantile(0.99)) if len(done) else None,
                    "max": float(done.max()) if len(done) else None,
                }
            )
    return pd.DataFrame(rows, columns=columns)


def _beyond(done: pd.Series, expected: pd.Series) -> pd.Series:
    return (done - expected).clip(lower=0)


def wasted_table(results: ResultSet) -> pd.DataFrame:
    """Per (fault class, backend): LLM calls, tokens and tool executions beyond the
    oracle's, counted run by run (a run that stopped early wasted nothing extra).
    Wasted tokens are the tokens beyond the oracle's calls' (results older than
    `llm_tokens_expected`: the extra calls at that run's average tokens per call)."""
    runs = judged_runs(results.frame("runs"))
    columns = [
        "fault_class",
        "backend",
        "runs",
        "llm_calls",
        "llm_calls_expected",
        "wasted_llm_calls",
        "llm_tokens",
        "wasted_tokens",
        "tool_executions",
        "tool_expected",
        "wasted_tool_executions",
        "acts_indeterminate",
    ]
    if runs.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for (fault_class, backend), group in runs.groupby(["fault_class", "backend"], sort=False):
        extra_calls = _beyond(group["llm_calls"], group["llm_calls_expected"])
        per_call = (group["llm_tokens"] / group["llm_calls"].where(group["llm_calls"] > 0)).fillna(
            0
        )
        indeterminate = group.get("acts_indeterminate", pd.Series(0, index=group.index))
        if "llm_tokens_expected" in group and group["llm_tokens_expected"].notna().all():
            wasted_tokens = float(_beyond(group["llm_tokens"], group["llm_tokens_expected"]).sum())
        else:
            wasted_tokens = float((extra_calls * per_call).sum())
        rows.append(
            {
                "fault_class": fault_class,
                "backend": backend,
                "runs": len(group),
                "llm_calls": int(group["llm_calls"].sum()),
                "llm_calls_expected": int(group["llm_calls_expected"].sum()),
                "wasted_llm_calls": int(extra_calls.sum()),
                "llm_tokens": int(group["llm_tokens"].sum()),
                "wasted_tokens": round(wasted_tokens),
                "tool_executions": int(group["tool_executions"].sum()),
                "tool_expected": int(group["tool_expected"].sum()),
                "wasted_tool_executions": int(
                    _beyond(group["tool_executions"], group["tool_expected"]).sum()
                ),
                "acts_indeterminate": int(indeterminate.fillna(0).sum()),
            }
        )
    return pd.DataFrame(rows, columns=columns)
