"""`durabench compare`: two results sets side by side, with regression gates for CI.

Rows are per (fault class, backend) present on both sides and per metric: the baseline
value, the candidate value, the change, and for sampled metrics (latency, overhead and
recovery quantiles) a bootstrap 95% confidence interval of the difference
(candidate - baseline), from BOOTSTRAP_RESAMPLES resamples of each side with a fixed
seed, so the same inputs always give the same interval. (numpy only: no Mann-Whitney test.)

Threshold grammar (`--fail-on`, repeatable)::

    EXPR   := METRIC [ "@" BACKEND ] ":" LIMIT
    LIMIT  := [ "+" | "-" ] NUMBER [ "%" | "ms" ]

* `METRIC` is one of METRICS below; `@BACKEND` limits the gate to one backend
  (default: every backend in both sets).
* `N%` bounds the relative worsening: `p99:10%` fails when step latency p99 grows by
  more than 10% of the baseline's p99. A bare `N` (or `Nms` for ms metrics) bounds the
  absolute worsening in the metric's unit: `integrity:0` fails when integrity drops at
  all, `p50:5ms` when p50 grows by more than 5 ms.
* "Worse" is up for latencies, overheads, recovery, waste and bytes, and down for
  `integrity`, `pass_k` and `steps_per_s`. A sign is optional and, when given, must
  point the worse way: `steps_per_s:-10%` (may drop at most 10%), `p99:+10%`.
  `p99:-10%` is rejected rather than read as "must improve".
* A sampled metric crosses its threshold only when the change exceeds the limit AND its
  95% interval lies wholly on the worse side of zero (the change is not noise).
  Integrity and pass^k are pass rates over runs (tasks): their interval of the
  difference comes from the two exact Clopper-Pearson intervals (MOVER, harness/stats),
  so `integrity:0` fails only when the candidate is worse beyond what its runs can tell
  apart from luck (20/20 -> 18/20 is not enough; 20/20 -> 10/20 is). Counts (waste,
  bytes, throughput) are compared exactly.
* A metric the baseline has and the candidate lacks (nothing committed, no recovery)
  crosses any threshold on it.

Exit codes: 0 no threshold crossed, 1 some threshold crossed, 2 a bad expression (the
error names it and lists the metrics). Missing or unreadable directories raise
ResultsError instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from harness.errors import DurabenchError
from harness.report import chaos, metrics
from harness.report.document import MISSING, format_value
from harness.report.load import ResultSet, load_results
from harness.stats import difference_interval

__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "BOOTSTRAP_SEED",
    "METRICS",
    "Comparison",
    "Metric",
    "Threshold",
    "ThresholdError",
    "bootstrap_ci",
    "compare",
    "compare_sets",
    "parse_threshold",
]

BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 20240607
# a larger side is subsampled (fixed seed) first: the interval gets wider, never narrower
MAX_BOOTSTRAP_SAMPLES = 5000
MAX_CHUNK_CELLS = 4_000_000  # resamples x samples per numpy batch: bounded memory
EXIT_OK, EXIT_REGRESSION, EXIT_BAD_EXPRESSION = 0, 1, 2


class ThresholdError(DurabenchError):
    """A --fail-on expression that does not parse; the message lists the metrics."""


@dataclass(frozen=True)
class Metric:
    name: str
    description: str
    unit: str  # "ms", "fraction", "count", "bytes", "steps/s"
    worse: str  # "up" or "down"
    column: str | None = None  # per_step column for sampled metrics
    quantile: float | None = None


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("p50", "step latency p50", "ms", "up", "step_ms", 0.5),
        Metric("p95", "step latency p95", "ms", "up", "step_ms", 0.95),
        Metric("p99", "step latency p99", "ms", "up", "step_ms", 0.99),
        Metric("p99.9", "step latency p99.9", "ms", "up", "step_ms", 0.999),
        Metric("overhead", "orchestration overhead p50", "ms", "up", "overhead_ms", 0.5),
        Metric("overhead_p95", "orchestration overhead p95", "ms", "up", "overhead_ms", 0.95),
        Metric("overhead_p99", "orchestration overhead p99", "ms", "up", "overhead_ms", 0.99),
        Metric("recovery_p50", "recovery time p50", "ms", "up", "recovery_ms", 0.5),
        Metric("recovery_p99", "recovery time p99", "ms", "up", "recovery_ms", 0.99),
        Metric("steps_per_s", "committed steps per second", "steps/s", "down"),
        Metric("integrity", "runs passing every verdict / runs", "fraction", "down"),
        Metric("pass_k", "tasks passing in all k trials / tasks", "fraction", "down"),
        Metric("wasted_llm_calls", "LLM calls beyond the oracle's", "count", "up"),
        Metric("wasted_tool_executions", "tool executions beyond the oracle's", "count", "up"),
        Metric("bytes_per_step", "persisted bytes per step", "bytes", "up"),
    )
}
# METRIC[@BACKEND]:LIMIT, split at the last colon (backend names may hold colons)
_EXPR = re.compile(
    r"^(?P<metric>[a-z0-9_.]+)(?:@(?P<backend>.+))?:"
    r"(?P<sign>[+-])?(?P<number>\d+(?:\.\d+)?)(?P<unit>%|ms)?$"
)


@dataclass(frozen=True)
class Threshold:
    text: str
    metric: str
    limit: float  # largest tolerated worsening: a fraction when relative, else metric units
    relative: bool
    backend: str | None = None

    def crossed(self, worsening: float, baseline: float) -> bool:
        if self.relative:
            if baseline == 0:
                return worsening > 0
            return worsening / abs(baseline) > self.limit
        return worsening > self.limit


def _valid_metrics() -> str:
    return ", ".join(METRICS)


def parse_threshold(text: str) -> Threshold:
    """`p99:10%` -> Threshold; a bad expression raises ThresholdError naming it."""
    match = _EXPR.match(text.strip())
    if match is None:
        raise ThresholdError(
            f"bad --fail-on expression {text!r}: expected METRIC[@BACKEND]:LIMIT such as "
            f"'p99:10%', 'integrity:0' or 'steps_per_s:-10%'; metrics: {_valid_metrics()}"
        )
    name = match["metric"]
    if name not in METRICS:
        raise ThresholdError(
            f"bad --fail-on expression {text!r}: unknown metric {name!r}; "
            f"metrics: {_valid_metrics()}"
        )
    metric = METRICS[name]
    sign, unit = match["sign"], match["unit"]
    if sign and sign != ("+" if metric.worse == "up" else "-"):
        direction = "grows" if metric.worse == "up" else "drops"
        raise ThresholdError(
            f"bad --fail-on expression {text!r}: {name} gets worse when it {direction}, so the "
            f"limit is the largest tolerated {'growth' if metric.worse == 'up' else 'drop'}: "
            f"write {name}:{match['number']}{unit or ''}"
        )
    if unit == "ms" and metric.unit != "ms":
        raise ThresholdError(
            f"bad --fail-on expression {text!r}: {name} is in {metric.unit}, not ms"
        )
    number = float(match["number"])
    relative = unit == "%"
    never = (metric.unit == "fraction" and not relative and number >= 1) or (
        metric.worse == "down" and relative and number >= 100
    )
    if never:
        raise ThresholdError(
            f"bad --fail-on expression {text!r}: {name} cannot get worse by that much, so "
            f"this gate could never fail; use a limit below "
            f"{'100%' if relative else '1 (a fraction)'}"
        )
    return Threshold(text, name, number / 100 if relative else number, relative, match["backend"])


# -- values per side ----------------------------------------------------------------------


@dataclass
class _Side:
    """One results set reduced to what the metrics need, per (fault class, backend)."""

    samples: dict[tuple[str, str], dict[str, np.ndarray]] = field(default_factory=dict)
    points: dict[tuple[str, str], dict[str, float | None]] = field(default_factory=dict)
    # metric -> (passed, n) behind a pass rate, for its exact interval
    counts: dict[tuple[str, str], dict[str, tuple[int, int]]] = field(default_factory=dict)

    @classmethod
    def of(cls, results: ResultSet) -> _Side:
        side = cls()
        per_step = results.frame("per_step")
        if not per_step.empty:
            for (fc, backend), group in per_step.groupby(["fault_class", "backend"], sort=False):
                side.samples[(str(fc), str(backend))] = {
                    c: group[c].to_numpy(dtype=float) for c in ("step_ms", "overhead_ms")
                }
        times = chaos.recovery_times(results)
        for (fc, backend), group in times.groupby(["fault_class", "backend"], sort=False):
            values = pd.to_numeric(group["recovery_ms"], errors="coerce").dropna()
            side.samples.setdefault((str(fc), str(backend)), {})["recovery_ms"] = values.to_numpy(
                dtype=float
            )
        integrity = metrics.integrity_table(results)
        for row in integrity.to_dict("records"):
            side.counts[(str(row["fault_class"]), str(row["backend"]))] = {
                "integrity": (int(row["passed"]), int(row["runs"])),
                "pass_k": (int(row["tasks_passed"]), int(row["tasks"])),
            }
        tables = (
            (integrity, ("integrity", "pass_k")),
            (chaos.wasted_table(results), ("wasted_llm_calls", "wasted_tool_executions")),
            (metrics.bloat_table(results), ("bytes_per_step",)),
        )
        for table, names in tables:
            for row in table.to_dict("records"):
                point = side.points.setdefault((str(row["fault_class"]), str(row["backend"])), {})
                point.update({n: None if pd.isna(row[n]) else float(row[n]) for n in names})
        walls: dict[tuple[str, str], list[float]] = {}
        for item in results.items:
            for backend, summary in item.summary.items():
                entry = walls.setdefault((item.fault_class, backend), [0.0, 0.0])
                entry[0] += float(summary.get("committed_steps") or 0)
                entry[1] += float(summary.get("wall_s") or 0.0)
        for key, (steps, wall) in walls.items():
            side.points.setdefault(key, {})["steps_per_s"] = steps / wall if wall > 0 else None
        return side

    def groups(self) -> list[tuple[str, str]]:
        return list(dict.fromkeys([*self.samples, *self.points]))


def _quantile(values: np.ndarray, q: float) -> float | None:
    return float(np.quantile(values, q)) if values.size else None


def bootstrap_ci(
    baseline: np.ndarray, candidate: np.ndarray, statistic: Callable[[np.ndarray], np.ndarray]
) -> tuple[float, float]:
    """95% percentile interval of statistic(candidate*) - statistic(baseline*), where
    statistic maps a (resamples, n) array to one value per row; sides larger than
    MAX_BOOTSTRAP_SAMPLES are subsampled first, which can only widen the interval."""
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    if baseline.size > MAX_BOOTSTRAP_SAMPLES:
        baseline = rng.choice(baseline, MAX_BOOTSTRAP_SAMPLES, replace=False)
    if candidate.size > MAX_BOOTSTRAP_SAMPLES:
        candidate = rng.choice(candidate, MAX_BOOTSTRAP_SAMPLES, replace=False)
    per_chunk = max(1, MAX_CHUNK_CELLS // max(baseline.size, candidate.size, 1))
    diffs = []
    for start in range(0, BOOTSTRAP_RESAMPLES, per_chunk):
        count = min(per_chunk, BOOTSTRAP_RESAMPLES - start)
        b = baseline[rng.integers(0, baseline.size, (count, baseline.size))]
        c = candidate[rng.integers(0, candidate.size, (count, candidate.size))]
        diffs.append(statistic(c) - statistic(b))
    low, high = np.percentile(np.concatenate(diffs), [2.5, 97.5])
    return float(low), float(high)


# -- the comparison ----------------------------------------------------------------------


@dataclass
class Comparison:
    table: pd.DataFrame
    failures: list[str]
    exit_code: int
    thresholds: list[Threshold] = field(default_factory=list)

    def display(self) -> pd.DataFrame:
        """The table as text, for printing."""
        rows = []
        for row in self.table.to_dict("records"):
            change = row["change"]
            rows.append(
                {
                    "fault class": row["fault_class"],
                    "backend": row["backend"],
                    "metric": row["metric"],
                    "baseline": format_value(row["baseline"], row["metric"]),
                    "candidate": format_value(row["candidate"], row["metric"]),
                    "change": MISSING if change is None or pd.isna(change) else f"{change:+.1%}",
                    "95% CI of diff": MISSING
                    if row["ci_low"] is None or pd.isna(row["ci_low"])
                    else f"[{format_value(row['ci_low'])}, {format_value(row['ci_high'])}]",
                    "gate": row["threshold"] or "",
                    "status": row["status"],
                }
            )
        return pd.DataFrame(rows)

    def to_text(self) -> str:
        shown = self.display()
        if shown.empty:
            return "nothing to compare\n"
        widths = {c: max(len(c), *(len(str(v)) for v in shown[c])) for c in shown.columns}
        lines = ["  ".join(c.ljust(widths[c]) for c in shown.columns)]
        for record in shown.to_dict("records"):
            lines.append("  ".join(str(record[c]).ljust(widths[c]) for c in shown.columns))
        return "\n".join([*lines, *self.failures]) + "\n"


def _match_keys(base: _Side, cand: _Side) -> list[tuple[tuple[str, str], tuple[str, str]]]:
    common = [k for k in base.groups() if k in set(cand.groups())]
    if common:
        return [(k, k) for k in common]
    base_classes = {fc for fc, _ in base.groups()}
    cand_classes = {fc for fc, _ in cand.groups()}
    if len(base_classes) == 1 and len(cand_classes) == 1:  # one scenario each: match backends
        by_backend = {b: (fc, b) for fc, b in cand.groups()}
        return [(k, by_backend[k[1]]) for k in base.groups() if k[1] in by_backend]
    return []


def _row(
    metric: Metric, base: _Side, cand: _Side, bkey: tuple[str, str], ckey: tuple[str, str]
) -> dict[str, object]:
    ci: tuple[float, float] | None = None
    if metric.column is not None and metric.quantile is not None:
        b_values = base.samples.get(bkey, {}).get(metric.column, np.array([]))
        c_values = cand.samples.get(ckey, {}).get(metric.column, np.array([]))
        b_value, c_value = (
            _quantile(b_values, metric.quantile),
            _quantile(c_values, metric.quantile),
        )
        if b_values.size and c_values.size:
            q = metric.quantile
            ci = bootstrap_ci(b_values, c_values, lambda a: np.quantile(a, q, axis=1))
    else:
        b_value = base.points.get(bkey, {}).get(metric.name)
        c_value = cand.points.get(ckey, {}).get(metric.name)
        b_count = base.counts.get(bkey, {}).get(metric.name)
        c_count = cand.counts.get(ckey, {}).get(metric.name)
        if b_count is not None and c_count is not None:
            ci = difference_interval(*b_count, *c_count)
    diff = c_value - b_value if b_value is not None and c_value is not None else None
    change = diff / abs(b_value) if diff is not None and b_value else None
    significant = None
    if ci is not None:
        significant = ci[0] > 0 if metric.worse == "up" else ci[1] < 0
    return {
        "fault_class": bkey[0],
        "backend": bkey[1],
        "metric": metric.name,
        "unit": metric.unit,
        "baseline": b_value,
        "candidate": c_value,
        "diff": diff,
        "change": change,
        "ci_low": ci[0] if ci else None,
        "ci_high": ci[1] if ci else None,
        "significant": significant,
        "threshold": "",
        "status": "",
    }


def _gate(row: dict[str, object], threshold: Threshold) -> str | None:
    """The failure message if `row` crosses `threshold`, else None."""
    metric = METRICS[threshold.metric]
    base, cand = row["baseline"], row["candidate"]
    where = f"{row['backend']} ({row['fault_class']})"
    if base is None:
        return None
    if cand is None:
        return (
            f"{threshold.text}: {where} has no {metric.name} in the candidate "
            f"(baseline {format_value(base)})"
        )
    assert isinstance(base, float) and isinstance(cand, float)
    worsening = cand - base if metric.worse == "up" else base - cand
    if not threshold.crossed(worsening, base):
        return None
    if row["significant"] is False:
        return None  # inside the noise: the interval of the difference includes zero
    change = f"{worsening / abs(base):+.1%}" if base else f"{worsening:+g}"
    return (
        f"{threshold.text}: {where} {metric.description} {format_value(base)} -> "
        f"{format_value(cand)} {metric.unit} ({'worse by ' + change})"
    )


def compare_sets(
    baseline: ResultSet, candidate: ResultSet, thresholds: list[Threshold]
) -> Comparison:
    base, cand = _Side.of(baseline), _Side.of(candidate)
    pairs = _match_keys(base, cand)
    if not pairs:
        raise DurabenchError(
            "nothing to compare: no (fault class, backend) on both sides; the baseline has "
            f"{sorted(base.groups())} and the candidate {sorted(cand.groups())}"
        )
    rows = [_row(m, base, cand, bkey, ckey) for bkey, ckey in pairs for m in METRICS.values()]
    backends = sorted({bkey[1] for bkey, _ in pairs})
    unknown = [t for t in thresholds if t.backend is not None and t.backend not in backends]
    if unknown:
        message = (
            f"bad --fail-on expression {unknown[0].text!r}: no backend {unknown[0].backend!r} "
            f"in both results sets; backends: {', '.join(backends)}"
        )
        return Comparison(pd.DataFrame(rows), [message], EXIT_BAD_EXPRESSION, thresholds)
    failures: list[str] = []
    for row in rows:
        for threshold in thresholds:
            if threshold.metric != row["metric"] or threshold.backend not in (None, row["backend"]):
                continue
            crossed = _gate(row, threshold)
            row["threshold"] = ", ".join(filter(None, [str(row["threshold"]), threshold.text]))
            if row["baseline"] is None:
                row["status"] = row["status"] or "n/a"
            else:
                row["status"] = "REGRESSION" if crossed else (row["status"] or "ok")
            if crossed:
                failures.append(crossed)
    table = pd.DataFrame(rows)
    return Comparison(table, failures, EXIT_REGRESSION if failures else EXIT_OK, thresholds)


def compare(baseline: Path, candidate: Path, fail_on: list[str]) -> Comparison:
    """Compare two results directories (or suite directories); see the module docstring
    for the threshold grammar and the exit codes."""
    try:
        thresholds = [parse_threshold(text) for text in fail_on]
    except ThresholdError as exc:
        return Comparison(pd.DataFrame(), [str(exc)], EXIT_BAD_EXPRESSION)
    return compare_sets(load_results([baseline]), load_results([candidate]), thresholds)
