"""The report's numbers, as plain pandas frames: environment, integrity, latency,
durability overhead and state bloat.

Each function is a pure function of loaded results, so the report, the notebook and
the tests all compute a number the same way. Groups are (fault class, backend): a
backend's runs under one scenario, pooled when several directories hold them.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from harness.checker import VERDICTS
from harness.evaluate import NOT_APPLICABLE, floor_passes, with_exposure
from harness.report.load import ResultSet
from harness.stats import DEFAULT_CONFIDENCE, integrity_interval
from harness.workload import task_of

__all__ = [
    "BASELINE_BACKEND",
    "COMPONENTS",
    "FLOOR_BACKENDS",
    "QUANTILES",
    "bloat_table",
    "durability_table",
    "environment_table",
    "fidelity_table",
    "integrity_labels",
    "integrity_matrix",
    "integrity_table",
    "judged_runs",
    "latency_table",
    "quantile_name",
    "runs_table",
    "verdict_columns",
]

BASELINE_BACKEND = "baseline"  # the no-durability reference every ratio divides by
FLOOR_BACKENDS = ("floor",)  # one raw committed insert per step, when a run measured it
QUANTILES = (0.5, 0.95, 0.99, 0.999)
# what a committed step's wall time is made of (per_step columns)
COMPONENTS = {"step": "step_ms", "llm": "llm_ms", "tool": "tool_ms", "overhead": "overhead_ms"}
GROUP = ["fault_class", "backend"]


def quantile_name(q: float) -> str:
    """0.5 -> p50, 0.999 -> p99.9."""
    return "p" + f"{q * 100:.1f}".rstrip("0").rstrip(".")


def verdict_columns(runs: pd.DataFrame) -> list[str]:
    return [v for v in VERDICTS if v in runs.columns]


# -- environment -------------------------------------------------------------------------


def environment_table(results: ResultSet) -> pd.DataFrame:
    """What the runs ran on, one row per fact; facts that differ between directories list
    every value seen."""
    facts: dict[str, list[str]] = {}

    def add(key: str, value: Any) -> None:
        text = "unknown" if value in (None, "") else str(value)
        facts.setdefault(key, [])
        if text not in facts[key]:
            facts[key].append(text)

    for item in results.items:
        env = item.manifest.get("environment") or {}
        add("host", env.get("host"))
        add("cores", env.get("cpus"))
        add("platform", f"{item.manifest.get('platform', '?')} on {env.get('platform', '?')}")
        add("python", env.get("python"))
        add("commit", env.get("git_commit"))
        add("seeds", item.manifest.get("seed"))
        for name, version in sorted((env.get("packages") or {}).items()):
            add(f"package {name}", version)
    return pd.DataFrame(
        [{"fact": key, "value": ", ".join(values)} for key, values in facts.items()],
        columns=["fact", "value"],
    )


def runs_table(results: ResultSet) -> pd.DataFrame:
    """One row per results directory: what ran, its status, and the command that made it."""
    rows = []
    for item in results.items:
        m = item.manifest
        rows.append(
            {
                "results": item.label,
                "fault_class": item.fault_class,
                "backends": ", ".join(item.backends),
                "seed": m.get("seed"),
                "trials": m.get("trials", 1),
                "runs": len(item.runs),
                "status": m.get("status"),
                "command": m.get("command"),
            }
        )
    return pd.DataFrame(rows)


# -- integrity ---------------------------------------------------------------------------


def judged_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """runs.parquet without its stray-effect rows (ledger effects of no judged run)."""
    if runs.empty or "stray" not in runs:
        return runs
    return runs[runs["stray"] != True]  # noqa: E712  (NaN in old tables: judged)


def _runs_with_exposure(results: ResultSet) -> pd.DataFrame:
    """Every directory's runs with `exposed` (computed from its tables when results older
    than exposure lack it) and `has_faults` (its scenario's faults were recorded)."""
    frames = []
    for item in results.items:
        runs = item.runs
        if runs.empty:
            continue
        if "exposed" not in runs:
            runs, _ = with_exposure(runs, item.steps, item.faults)
        faults = item.faults
        faulted = set(faults["backend"]) if not faults.empty else set()
        applicable = (
            set(faults.loc[faults["outcome"] != "skipped", "backend"])
            if not faults.empty
            else set()
        )
        frames.append(
            runs.assign(
                results=item.label,
                fault_class=item.fault_class,
                has_faults=runs["backend"].isin(faulted),
                all_skipped=runs["backend"].isin(faulted - applicable),
            )
        )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


INTEGRITY_COLUMNS = [
    *GROUP,
    "runs",
    "passed",
    "integrity",
    "exposed",
    "exposed_passed",
    "exposed_integrity",
    "n",
    "lower",
    "upper",
    "interval",
    "result",
    "trials",
    "pass_k",
    "tasks",
    "tasks_passed",
    "pass_k_lower",
    "pass_k_upper",
    "anomalies",
    "unknown",
    "stray_effects",
]


def _result(
    anomalies: int, strays: int, unknown: int, inconclusive: bool, all_skipped: bool
) -> str:
    """As the summary's: fail > unknown > not applicable > inconclusive > pass."""
    if anomalies or strays:
        return "fail"
    if unknown:
        return "unknown"
    if inconclusive:
        return NOT_APPLICABLE if all_skipped else "inconclusive"
    return "pass"


def integrity_table(results: ResultSet, confidence: float = DEFAULT_CONFIDENCE) -> pd.DataFrame:
    """Per (fault class, backend): runs, passed, integrity = passed / runs; the runs a
    fault exposed and integrity among them; the evidence (`n`, `lower`, `upper`: the
    exact two-sided interval over the exposed runs, or over every run when the scenario
    had no faults); the result (pass, fail, unknown, or inconclusive: faults and no run
    exposed); pass^k over the tasks (each task run `trials` times) with its interval,
    anomalies and unknowns per verdict, stray effects (run ids of no judged run, from
    each directory's summary)."""
    everything = _runs_with_exposure(results)
    if everything.empty:
        return pd.DataFrame(columns=INTEGRITY_COLUMNS)
    runs = judged_runs(everything)
    verdicts = verdict_columns(runs)
    runs = runs.assign(task=runs["run_id"].map(task_of))
    strays: dict[tuple[str, str], int] = {}  # (fault class, backend) -> stray run ids
    for item in results.items:
        for name, entry in item.summary.items():
            key = (item.fault_class, str(name))
            count = int((entry.get("stray_effects") or {}).get("run_ids") or 0)
            strays[key] = strays.get(key, 0) + count
    rows = []
    for (fault_class, backend), group in runs.groupby(GROUP, sort=False):
        per_task = group.groupby(["results", "task"])["passed"]
        anomalies = {v: int((group[v] == False).sum()) for v in verdicts}  # noqa: E712
        unknown = {v: int(group[v].isna().sum()) for v in verdicts}
        faulted = bool(group["has_faults"].any())
        exposed = group[group["exposed"] == True]  # noqa: E712
        basis = exposed if faulted else group
        passed = int(basis["passed"].sum())
        evidence = integrity_interval(passed, len(basis), confidence)
        tasks = per_task.all()
        pass_k = integrity_interval(int(tasks.sum()), len(tasks), confidence)
        stray = strays.get((str(fault_class), str(backend)), 0)
        rows.append(
            {
                "fault_class": fault_class,
                "backend": backend,
                "runs": len(group),
                "passed": int(group["passed"].sum()),
                "integrity": float(group["passed"].mean()),
                "exposed": len(exposed) if faulted else None,
                "exposed_passed": int(exposed["passed"].sum()) if faulted else None,
                "exposed_integrity": float(exposed["passed"].mean())
                if faulted and len(exposed)
                else None,
                "n": evidence.n,
                "lower": evidence.lower,
                "upper": evidence.upper,
                "interval": f"[{evidence.lower:.3f}, {evidence.upper:.3f}]",
                "result": _result(
                    sum(anomalies.values()),
                    stray,
                    int((~group["passed"].astype(bool)).sum()),
                    faulted and not len(exposed),
                    bool(group["all_skipped"].all()),
                ),
                "trials": int(per_task.size().max()),
                "pass_k": float(tasks.mean()),
                "tasks": len(tasks),
                "tasks_passed": int(tasks.sum()),
                "pass_k_lower": pass_k.lower,
                "pass_k_upper": pass_k.upper,
                "anomalies": sum(anomalies.values()),
                "unknown": sum(unknown.values()),
                "stray_effects": stray,
                **{f"anomalies.{v}": n for v, n in anomalies.items()},
                **{f"unknown.{v}": n for v, n in unknown.items()},
            }
        )
    return pd.DataFrame(rows)


def integrity_matrix(table: pd.DataFrame, value: str = "evidence") -> pd.DataFrame:
    """backend x fault class -> integrity (NaN where that cell did not run). `evidence`:
    among the exposed runs (every run without faults; NaN when inconclusive), the
    figure the heatmap shows; or any column of `integrity_table`, e.g. `integrity`."""
    if table.empty:
        return pd.DataFrame()
    if value == "evidence":
        table = table.assign(
            evidence=[
                p / n if n else float("nan")
                for p, n in zip(
                    table["exposed_passed"].where(table["exposed"].notna(), table["passed"]),
                    table["n"],
                    strict=True,
                )
            ]
        )
    matrix = table.pivot(index="backend", columns="fault_class", values=value)
    order_rows = list(dict.fromkeys(table["backend"]))
    order_cols = list(dict.fromkeys(table["fault_class"]))
    return matrix.reindex(index=order_rows, columns=order_cols)


def integrity_labels(table: pd.DataFrame) -> pd.DataFrame:
    """backend x fault class -> the heatmap's label: the rate, its interval and n, or
    `inconclusive` (faults, no run exposed); empty where the cell did not run."""
    if table.empty:
        return pd.DataFrame()
    labels = []
    for row in table.to_dict("records"):
        if row["result"] == "inconclusive":
            text = "inconclusive\nn=0 exposed"
        elif row["result"] == NOT_APPLICABLE:
            text = "n/a\n(faults skipped)"
        else:
            faulted = row["exposed"] is not None and pd.notna(row["exposed"])
            rate = row["exposed_integrity"] if faulted else row["integrity"]
            text = f"{rate:.3f}\n[{row['lower']:.2f}, {row['upper']:.2f}]\nn={row['n']}"
        labels.append(text)
    table = table.assign(label=labels)
    matrix = table.pivot(index="backend", columns="fault_class", values="label")
    order_rows = list(dict.fromkeys(table["backend"]))
    order_cols = list(dict.fromkeys(table["fault_class"]))
    return matrix.reindex(index=order_rows, columns=order_cols)


# -- latency -----------------------------------------------------------------------------


def latency_table(per_step: pd.DataFrame) -> pd.DataFrame:
    """Per (fault class, backend) and component of a committed step (the whole step, LLM
    time, tool time, orchestration overhead = the rest): count, mean and quantiles, ms."""
    names = [quantile_name(q) for q in QUANTILES]
    rows = []
    if not per_step.empty:
        for (fault_class, backend), group in per_step.groupby(GROUP, sort=False):
            for component, column in COMPONENTS.items():
                values = group[column].astype(float)
                rows.append(
                    {
                        "fault_class": fault_class,
                        "backend": backend,
                        "component": component,
                        "steps": len(values),
                        "mean": float(values.mean()),
                        **{
                            n: float(values.quantile(q))
                            for n, q in zip(names, QUANTILES, strict=True)
                        },
                    }
                )
    return pd.DataFrame(rows, columns=[*GROUP, "component", "steps", "mean", *names])


def durability_table(latency: pd.DataFrame) -> pd.DataFrame:
    """Each backend's orchestration overhead against the baseline's (and the raw commit
    floor's, when measured) under the same fault class: ratios and extra ms per step."""
    columns = [
        *GROUP,
        "overhead_p50",
        "baseline_p50",
        "ratio_p50",
        "extra_ms_p50",
        "overhead_p99",
        "baseline_p99",
        "ratio_p99",
        "step_ratio_p50",
        "floor_ratio_p50",
    ]
    if latency.empty:
        return pd.DataFrame(columns=columns)
    indexed = latency.set_index([*GROUP, "component"])
    rows = []
    for fault_class, group in latency.groupby("fault_class", sort=False):

        def pick(backend: str, component: str, column: str, fc: Any = fault_class) -> float | None:
            key = (fc, backend, component)
            return float(indexed.loc[key, column]) if key in indexed.index else None

        floor = next((b for b in FLOOR_BACKENDS if b in set(group["backend"])), None)
        for backend in dict.fromkeys(group["backend"]):
            if backend == BASELINE_BACKEND or backend in FLOOR_BACKENDS:
                continue
            own50, own99 = pick(backend, "overhead", "p50"), pick(backend, "overhead", "p99")
            base50 = pick(BASELINE_BACKEND, "overhead", "p50")
            base99 = pick(BASELINE_BACKEND, "overhead", "p99")
            step50, base_step50 = (
                pick(backend, "step", "p50"),
                pick(BASELINE_BACKEND, "step", "p50"),
            )
            floor50 = pick(floor, "overhead", "p50") if floor else None
            rows.append(
                {
                    "fault_class": fault_class,
                    "backend": backend,
                    "overhead_p50": own50,
                    "baseline_p50": base50,
                    "ratio_p50": _ratio(own50, base50),
                    "extra_ms_p50": own50 - base50
                    if own50 is not None and base50 is not None
                    else None,
                    "overhead_p99": own99,
                    "baseline_p99": base99,
                    "ratio_p99": _ratio(own99, base99),
                    "step_ratio_p50": _ratio(step50, base_step50),
                    "floor_ratio_p50": _ratio(own50, floor50),
                }
            )
    return pd.DataFrame(rows, columns=columns)


def _ratio(value: float | None, reference: float | None) -> float | None:
    if value is None or reference is None or reference <= 0:
        return None
    return value / reference


FIDELITY_COLUMNS = [
    *GROUP,
    "floor",
    "concurrency",
    "step_p50",
    "floor_step_p50",
    "step_vs_floor",
    "step_vs_floor_before_after",
    "overhead_p50",
    "floor_overhead_p50",
    "overhead_vs_floor",
    "service_p50",
    "service_vs_floor",
    "step_vs_baseline",
    "overhead_vs_baseline",
    "start_p50",
    "start_p99",
    "steps_per_s",
    "steady_steps_per_s",
]


def fidelity_table(results: ResultSet) -> pd.DataFrame:
    """Per (fault class, backend) of each results directory, from its summary: step and
    overhead p50 against the backend's own raw floor and the baseline (measured in the same
    run: `durabench run --with-floor`), start latency, and throughput end to end and over
    the steady part of the load."""
    rows = []
    for item in results.items:
        for backend, s in item.summary.items():
            floor = s.get("floor") or {}
            start = s.get("start_latency_ms") or {}
            rows.append(
                {
                    "fault_class": item.fault_class,
                    "backend": backend,
                    "floor": floor.get("program"),
                    "concurrency": floor.get("concurrency"),
                    "step_p50": (s.get("step_latency_ms") or {}).get("p50"),
                    "floor_step_p50": floor.get("step_p50_ms"),
                    "step_vs_floor": floor.get("step_vs_floor"),
                    "step_vs_floor_before_after": floor_passes(floor),
                    "overhead_p50": (s.get("overhead_ms") or {}).get("p50"),
                    "floor_overhead_p50": floor.get("overhead_p50_ms"),
                    "overhead_vs_floor": floor.get("overhead_vs_floor"),
                    "service_p50": (s.get("service_ms") or {}).get("p50"),
                    "service_vs_floor": floor.get("service_vs_floor"),
                    "step_vs_baseline": s.get("step_vs_baseline"),
                    "overhead_vs_baseline": s.get("overhead_vs_baseline"),
                    "start_p50": start.get("p50"),
                    "start_p99": start.get("p99"),
                    "steps_per_s": s.get("steps_per_s"),
                    "steady_steps_per_s": s.get("steady_steps_per_s"),
                }
            )
    return pd.DataFrame(rows, columns=FIDELITY_COLUMNS)


OTHER_FLOOR_COLUMNS = ["fault_class", "backend", "floor", "floor_step_p50", "step_vs_this_floor"]


def other_floors_table(results: ResultSet) -> pd.DataFrame:
    """The floors a backend lists after its own, each against the backend's step p50:
    a framework backend's substrate floor (what the framework costs over a hand-written
    workflow on the same engine), pgstore's unfenced log and one-row insert, and
    Cloudflare's floor writing the adapter's console rows (what that channel costs)."""
    rows = []
    for item in results.items:
        for backend, s in item.summary.items():
            floor = s.get("floor") or {}
            step = (s.get("step_latency_ms") or {}).get("p50")
            for name, program in (floor.get("programs") or {}).items():
                floor_step = (program.get("step_ms") or {}).get("p50")
                if program.get("own") or name == floor.get("program") or not floor_step:
                    continue
                rows.append(
                    {
                        "fault_class": item.fault_class,
                        "backend": backend,
                        "floor": name,
                        "floor_step_p50": floor_step,
                        "step_vs_this_floor": round(step / floor_step, 3) if step else None,
                    }
                )
    return pd.DataFrame(rows, columns=OTHER_FLOOR_COLUMNS)


# -- state bloat -------------------------------------------------------------------------


def bloat_table(results: ResultSet) -> pd.DataFrame:
    """Per (fault class, backend): what was persisted per step (bytes, history entries)."""
    runs = judged_runs(results.frame("runs"))
    columns = [
        *GROUP,
        "runs",
        "steps_persisted",
        "bytes_persisted",
        "bytes_per_step",
        "history_per_step",
        "max_bytes_run",
    ]
    if runs.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for (fault_class, backend), group in runs.groupby(GROUP, sort=False):
        steps = int(group["steps_persisted"].sum())
        size = pd.to_numeric(group["bytes_persisted"], errors="coerce").dropna()
        history = pd.to_numeric(group["history_length"], errors="coerce").dropna()
        rows.append(
            {
                "fault_class": fault_class,
                "backend": backend,
                "runs": len(group),
                "steps_persisted": steps,
                "bytes_persisted": int(size.sum()) if not size.empty else None,
                "bytes_per_step": float(size.sum()) / steps if steps and not size.empty else None,
                "history_per_step": float(history.sum()) / steps
                if steps and not history.empty
                else None,
                "max_bytes_run": int(size.max()) if not size.empty else None,
            }
        )
    return pd.DataFrame(rows, columns=columns)
