"""From stored evidence to per-run verdict rows and the per-backend summary.

Both `durabench run` (right after the runs) and `durabench check` (later, from
the files alone) call these, so stored results can always be re-judged.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import pandas as pd

from harness.checker import VERDICTS, RunEvidence, check_run, run_passed, unknown_verdicts
from harness.exposure import (
    exposed_runs_by_fault,
    fault_label,
    with_fault_exposure,
    with_run_exposure,
)
from harness.floor import AFTER_PASS, BEFORE_PASS, ONLY_PASS
from harness.oracle import expected_run
from harness.recorded import RecordedDecisions
from harness.scenario import Scenario
from harness.state import LedgerEntry, PersistedRun, RunState
from harness.stats import DEFAULT_CONFIDENCE, integrity_interval
from harness.workload import TRIAL_SEPARATOR, digest, task_of

__all__ = [
    "NOT_APPLICABLE",
    "QUANTILES",
    "STEADY_WINDOW",
    "committed_steps",
    "floor_figures",
    "floor_passes",
    "indeterminate_acts",
    "judge_runs",
    "recorded_decisions",
    "recovery_table",
    "start_latencies",
    "steady_steps_per_s",
    "step_table",
    "stray_effects",
    "summarize",
    "with_exposure",
]

QUANTILES = (0.5, 0.95, 0.99)
# The steady part of a load: the commits between these quantiles of commit time, so the
# ramp-up (runs starting, the first steps' start latency) and the drain (the last runs
# finishing with fewer in flight) are left out of `steady_steps_per_s`.
STEADY_WINDOW = (0.1, 0.9)
NO_STRAYS: dict[str, Any] = {"run_ids": 0, "executions": 0, "applied": 0, "examples": []}
NOT_APPLICABLE = "not applicable"  # every fault of the scenario was skipped for the backend
FLOOR_MARK = f"{TRIAL_SEPARATOR}floor"  # in the run ids raw floor programs act under


def committed_steps(steps: pd.DataFrame) -> dict[str, frozenset[int]]:
    """run id -> steps the worker acknowledged as committed (an `ok` commit row)."""
    if steps.empty:
        return {}
    done = steps[(steps["phase"] == "commit") & (steps["outcome"] == "ok")]
    return {
        str(run_id): frozenset(int(s) for s in group["step"])
        for run_id, group in done.groupby("run_id")
    }


def indeterminate_acts(steps: pd.DataFrame) -> dict[str, int]:
    """run id -> act calls that may or may not have happened: invoked and never completed
    (the worker died mid-call), or completed as `info` (timeout, lost connection)."""
    if steps.empty:
        return {}
    acts = steps[steps["phase"] == "act"]
    keys = ["run_id", "step", "attempt", "worker"]
    invoked = acts[acts["outcome"] == "invoke"].groupby(keys).size()
    completed = acts[acts["outcome"] != "invoke"].groupby(keys).size()
    open_calls = (invoked - completed.reindex(invoked.index, fill_value=0)).clip(lower=0)
    info = acts[acts["outcome"] == "info"].groupby("run_id").size()
    counts = open_calls.groupby(level="run_id").sum().add(info, fill_value=0)
    return {str(k): int(v) for k, v in counts.items() if v}


def _nondeterminism(extra: dict[str, Any]) -> tuple[str, ...]:
    found = extra.get("nondeterminism")
    if not found:
        return ()
    if isinstance(found, list | tuple):
        return tuple(str(f) for f in found)
    return (str(found),)


def _is_floor(run_id: str) -> bool:
    """Floor programs act under their own ids (`run-000001~floor-1a2b`): not judged runs."""
    return FLOOR_MARK in run_id


def stray_effects(
    ledger: pd.DataFrame,
    runs: pd.DataFrame,
    not_judged: Mapping[str, Collection[str]] | None = None,
) -> dict[str, dict[str, Any]]:
    """backend -> the ledger's effects under run ids that no judged run has: a stray
    effect happened in the world and no run accounts for it (a worker acting on a run
    that was never started, or under an id it made up). Runs an interrupt cut off
    (`not_judged`) and the floor programs' runs are not strays."""
    out: dict[str, dict[str, Any]] = {}
    if ledger is None or ledger.empty or runs.empty:
        return out
    judged = set(zip(runs["backend"].astype(str), runs["run_id"].astype(str), strict=True))
    for backend, entries in ledger.groupby("backend", sort=False):
        name = str(backend)
        skip = set((not_judged or {}).get(name, ()))
        ids = entries["run_id"].astype(str)
        accounted = [(name, r) in judged or r in skip or _is_floor(r) for r in ids]
        stray = entries[[not a for a in accounted]]
        applied = stray["applied"].astype(bool) if "applied" in stray else pd.Series(dtype=bool)
        out[name] = {
            "run_ids": int(stray["run_id"].nunique()),
            "executions": len(stray),
            "applied": int(applied.sum()),
            "examples": [str(r) for r in dict.fromkeys(stray["run_id"].astype(str))][:5],
        }
    return out


def recorded_decisions(
    scenario: Scenario,
    llm_calls: list[dict[str, Any]],
    ledger: Sequence[dict[str, Any]] = (),
) -> RecordedDecisions | None:
    """For a real model (`llm.base_url` set): its recorded answers, which the oracle takes
    as the expected decisions (harness/recorded.py), the ledger's applied effects saying
    which were acted on; None for the simulator."""
    if scenario.llm.base_url is None:
        return None
    acted = []
    for entry in ledger:
        request = entry.get("request")
        if isinstance(request, str):
            request = json.loads(request)
        if entry.get("applied") and isinstance(request, dict):
            key = (str(entry["run_id"]), int(entry["step"]), int(entry["attempt"]))
            acted.append((*key, str(entry["tool"]), digest(request.get("arguments") or {})))
    return RecordedDecisions.from_calls(scenario, llm_calls, acted)


def judge_runs(
    scenario: Scenario,
    backend: str,
    persisted: list[dict[str, Any]],
    ledger: list[dict[str, Any]],
    steps: pd.DataFrame,
    llm_calls: list[dict[str, Any]],
    not_judged: Collection[str] = (),
) -> list[dict[str, Any]]:
    """One row per run: timings, persisted figures, wasted work and every verdict. Stray
    effects (ledger entries of no judged run) are the summary's (`stray_effects`, from the
    ledger table); `not_judged` (runs an interrupt cut off) is accepted for callers that
    name them and changes nothing here.

    `persisted` rows carry run_id, state (dict or None), bytes_persisted,
    history_length, started_at, finished_at, finished_in_time, and `inspect_error` when
    the backend's inspect raised: that run's verdicts are unknown (as for a state that
    does not parse), the others are judged as usual.
    """
    ledger_by_run: dict[str, list[LedgerEntry]] = defaultdict(list)
    for entry in ledger:
        ledger_by_run[str(entry["run_id"])].append(LedgerEntry.from_dict(entry))
    calls_by_run: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for call in llm_calls:
        calls_by_run[str(call["run_id"])].append(call)
    committed = committed_steps(steps)
    indeterminate = indeterminate_acts(steps)
    tokens_per_call = scenario.llm.tokens_in + scenario.llm.tokens_out
    recorded = recorded_decisions(scenario, llm_calls, ledger)
    rows = []
    for item in persisted:
        run_id = str(item["run_id"])
        oracle = expected_run(scenario, run_id, recorded)
        entries = tuple(ledger_by_run.get(run_id, ()))
        raw_extra = item.get("extra")
        extra: dict[str, Any] = raw_extra if isinstance(raw_extra, dict) else {}
        error = item.get("inspect_error")
        state: RunState | None = None
        if error is None:
            try:
                state = RunState.from_dict(item["state"]) if item.get("state") else None
            except Exception as exc:
                error = f"malformed state: {type(exc).__name__}: {exc}"[:500]
        invalid = oracle.invalid.describe() if oracle.invalid is not None else None
        if error is not None:
            verdicts = unknown_verdicts(str(error))
        elif invalid is not None:  # about the model, not the backend: not judged
            verdicts = unknown_verdicts(
                f"the model's first answer is no valid tool call: {invalid}"
            )
        else:
            evidence = RunEvidence(
                oracle=oracle,
                persisted=PersistedRun(
                    run_id, state, item.get("bytes_persisted"), item.get("history_length")
                ),
                ledger=entries,
                committed_steps=committed.get(run_id, frozenset()),
                finished_in_time=bool(item.get("finished_in_time")),
                nondeterminism=_nondeterminism(extra),
            )
            verdicts = check_run(evidence)
        calls = calls_by_run.get(run_id, [])
        started, finished = item.get("started_at"), item.get("finished_at")
        rows.append(
            {
                "backend": backend,
                "run_id": run_id,
                "status": "unknown" if error else state.status if state else "lost",
                "stray": False,
                "inspect_error": None if error is None else str(error),
                "expected_status": oracle.state.status,
                "started_at": started,
                "finished_at": finished,
                "run_latency_s": (finished - started) if started and finished else None,
                "finished_in_time": bool(item.get("finished_in_time")),
                "steps_persisted": len(state.steps) if state else 0,
                "steps_expected": len(oracle.state.steps),
                "bytes_persisted": item.get("bytes_persisted") if error is None else None,
                "history_length": item.get("history_length") if error is None else None,
                "llm_calls": len(calls),
                "llm_calls_expected": oracle.llm_calls,
                "llm_tokens": sum(
                    int(c.get("tokens_in", 0)) + int(c.get("tokens_out", 0)) for c in calls
                ),
                "llm_tokens_expected": oracle.llm_calls * tokens_per_call
                if recorded is None
                else recorded.tokens_of(run_id, oracle.asked),
                "invalid_decision": invalid,
                "replayed_answers_differ": 0
                if recorded is None
                else recorded.differing_replays.get(run_id, 0),
                "acts_indeterminate": indeterminate.get(run_id, 0),
                "tool_executions": len(entries),
                "tool_applied": sum(1 for e in entries if e.applied),
                "tool_expected": oracle.tool_calls,
                "nondeterminism": bool(_nondeterminism(extra)),
                "backend_extra": json.dumps(extra, sort_keys=True, default=str),
                "passed": run_passed(verdicts),
                **{name: verdicts[name].valid for name in VERDICTS},
                "verdict_detail": json.dumps(
                    {name: v.detail for name, v in verdicts.items()}, sort_keys=True, default=str
                ),
            }
        )
    del not_judged  # their effects are judged (as not strays) by stray_effects
    return rows


def step_table(steps: pd.DataFrame) -> pd.DataFrame:
    """One row per committed step: wall time from first phase start to commit end, the
    time spent inside the LLM and tool services, and the orchestration overhead."""
    if steps.empty:
        return pd.DataFrame(
            columns=["backend", "run_id", "step", "step_ms", "service_ms", "overhead_ms"]
        )
    keys = ["backend", "run_id", "step"]
    grouped = steps.groupby(keys)
    table = grouped.agg(start=("start", "min"), service_ms=("service_ms", "sum")).reset_index()
    commits = steps[(steps["phase"] == "commit") & (steps["outcome"] == "ok")]
    commit_end = commits.groupby(keys)["end"].max().rename("commit_end").reset_index()
    table = table.merge(commit_end, on=keys, how="inner")
    table["step_ms"] = (table["commit_end"] - table["start"]) * 1000.0
    table["overhead_ms"] = table["step_ms"] - table["service_ms"]
    return table[["backend", "run_id", "step", "step_ms", "service_ms", "overhead_ms"]]


def _quantiles(values: pd.Series) -> dict[str, float | None]:
    if values.empty:
        return {f"p{int(q * 100)}": None for q in QUANTILES}
    return {f"p{int(q * 100)}": round(float(values.quantile(q)), 4) for q in QUANTILES}


def _beyond(done: pd.Series, expected: pd.Series) -> int:
    """Work beyond the oracle's, run by run (a run that stopped early wasted nothing extra)."""
    return int((done - expected).clip(lower=0).sum())


def recovery_table(
    faults: pd.DataFrame, steps: pd.DataFrame, runs: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Per fault occurrence and affected run: time from the fault's start to the run's next
    committed step (NaN: the run never committed again). A run is affected when it had
    started before the fault and had not finished at that moment (with `runs`: its
    `finished_at`; without: its last commit, which misses runs that were lost)."""
    columns = ["backend", "kind", "fault_index", "occurrence", "run_id", "recovery_ms"]
    if faults.empty or steps.empty:
        return pd.DataFrame(columns=columns)
    commits = steps[(steps["phase"] == "commit") & (steps["outcome"] == "ok")]
    frames = []
    applied = faults[(faults["outcome"] == "ok") & faults["actual_start"].notna()]
    for backend, own_faults in applied.groupby("backend", sort=False):
        mine = steps[steps["backend"] == backend]
        first = mine.groupby("run_id")["start"].min()
        own_commits = commits[commits["backend"] == backend].sort_values("end")
        if runs is not None and not runs.empty:
            own_runs = runs[runs["backend"] == backend]
            finished = own_runs.set_index("run_id")["finished_at"].dropna()
        else:
            finished = own_commits.groupby("run_id")["end"].max()
        finished = finished[~finished.index.duplicated()].reindex(first.index)
        for fault in own_faults.to_dict("records"):
            t0 = float(fault["actual_start"])
            # started before the fault and not finished by then
            affected = first.index[(first <= t0) & ~(finished <= t0)]
            later = own_commits[own_commits["end"] > t0].groupby("run_id")["end"].min()
            recovery = (later.reindex(sorted(affected)) - t0) * 1000
            frames.append(
                pd.DataFrame(
                    {
                        "backend": backend,
                        "kind": fault["kind"],
                        "fault_index": fault["fault_index"],
                        "occurrence": fault["occurrence"],
                        "run_id": recovery.index.astype(str),
                        "recovery_ms": recovery.to_numpy(),
                    }
                )
            )
    if not frames:
        return pd.DataFrame(columns=columns)
    table = pd.concat(frames, ignore_index=True)
    table["recovery_ms"] = (
        table["recovery_ms"].astype(object).where(table["recovery_ms"].notna(), None)
    )
    return table[columns]


def _fault_summary(recovery: pd.DataFrame, faults: pd.DataFrame) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind, group in faults.groupby("kind"):
        mine = recovery[recovery["kind"] == kind]
        times = pd.to_numeric(mine["recovery_ms"], errors="coerce")
        out[str(kind)] = {
            "injected": int((group["outcome"] == "ok").sum()),
            "skipped": int((group["outcome"] == "skipped").sum()),
            "failed": int((group["outcome"] == "failed").sum()),
            "affected_runs": len(mine),
            "exposed_runs": int(group["exposed_runs"].sum()) if "exposed_runs" in group else None,
            "unrecovered_runs": int(times.isna().sum()),
            "recovery_ms": _quantiles(times.dropna()),
        }
    return out


def start_latencies(runs: pd.DataFrame, steps: pd.DataFrame) -> pd.Series:
    """Per run: milliseconds from the harness asking the backend to start it (`started_at`,
    just before `start`) to its first phase starting on a worker."""
    if runs.empty or steps.empty or "started_at" not in runs:
        return pd.Series(dtype=float)
    first = steps.groupby("run_id")["start"].min()
    started = runs.set_index("run_id")["started_at"].dropna()
    joined = pd.concat([started, first], axis=1, join="inner")
    return ((joined["start"] - joined["started_at"]) * 1000.0).clip(lower=0.0)


def steady_steps_per_s(commit_ends: pd.Series) -> float | None:
    """Committed steps per second between the STEADY_WINDOW quantiles of commit time:
    throughput with the ramp-up and the drain left out (None below 10 commits)."""
    ends = commit_ends.dropna().sort_values()
    if len(ends) < 10:
        return None
    low, high = (float(ends.quantile(q)) for q in STEADY_WINDOW)
    inside = int(((ends >= low) & (ends <= high)).sum())
    return round((inside - 1) / (high - low), 2) if high > low else None


def floor_figures(floors: pd.DataFrame | None) -> dict[str, dict[str, Any]]:
    """backend -> floor program -> percentiles of its step time, overhead and start
    latency (floors.parquet: one row per floor step sample)."""
    out: dict[str, dict[str, Any]] = {}
    if floors is None or floors.empty:
        return out
    for (backend, program), rows in floors.groupby(["backend", "program"], sort=False):
        passes = rows["floor_pass"] if "floor_pass" in rows else pd.Series(ONLY_PASS, rows.index)
        walls = rows.groupby(passes)["floor_wall_s"].max()
        wall = float(walls.sum() or 0.0)
        out.setdefault(str(backend), {})[str(program)] = {
            "own": bool(rows["own"].any()),
            "concurrency": int(rows["concurrency"].max()),
            "samples": len(rows),
            "step_ms": _quantiles(rows["step_ms"]),
            "overhead_ms": _quantiles(rows["overhead_ms"]),
            "service_ms": _quantiles(pd.to_numeric(rows["service_ms"]).dropna()),
            "start_latency_ms": _quantiles(pd.to_numeric(rows["start_latency_ms"]).dropna()),
            "steps_per_s": round(len(rows) / wall, 2) if wall > 0 else None,
            # each pass's own step p50: how far the floor moved between its passes
            "step_p50_by_pass": {
                str(name): round(float(group.median()), 4)
                for name, group in rows["step_ms"].groupby(passes)
            },
        }
    return out


def _ratio(value: float | None, floor: float | None) -> float | None:
    if value is None or not floor or floor <= 0:
        return None
    return round(value / floor, 3)


def _floor_block(entry: dict[str, Any], programs: dict[str, Any]) -> dict[str, Any]:
    """The backend's figures against its own floor (the first program it named)."""
    own_name = next((p for p, f in programs.items() if f["own"]), next(iter(programs)))
    own = programs[own_name]
    step, overhead = own["step_ms"]["p50"], own["overhead_ms"]["p50"]
    service = (own.get("service_ms") or {}).get("p50")
    by_pass = own.get("step_p50_by_pass") or {}
    return {
        "program": own_name,
        "concurrency": own["concurrency"],
        "step_p50_ms": step,
        "overhead_p50_ms": overhead,
        "service_p50_ms": service,
        "start_latency_p50_ms": own["start_latency_ms"]["p50"],
        "step_vs_floor": _ratio(entry["step_latency_ms"]["p50"], step),
        # the ratio to each floor pass alone: its spread is the floor's own noise
        "step_vs_floor_by_pass": {
            name: _ratio(entry["step_latency_ms"]["p50"], p50) for name, p50 in by_pass.items()
        },
        "overhead_vs_floor": _ratio(entry["overhead_ms"]["p50"], overhead),
        # the services' own time per step against the floor's: > 1 means the simulated
        # LLM and tools themselves ran slower beside the backend's processes, not its code
        "service_vs_floor": _ratio((entry.get("service_ms") or {}).get("p50"), service),
        "programs": programs,
    }


def floor_passes(floor: dict[str, Any]) -> str | None:
    """The step ratio to the floor pass before the load and to the one after it
    ('1.02x / 1.21x'): how much of a ratio is the floor's own noise."""
    by_pass = floor.get("step_vs_floor_by_pass") or {}
    before, after = by_pass.get(BEFORE_PASS), by_pass.get(AFTER_PASS)
    if not before or not after:
        return None
    return f"{before:.2f}x / {after:.2f}x"


def _add_relative(summary: dict[str, dict[str, Any]], floors: pd.DataFrame | None) -> None:
    """Ratios measured in the same run: to each backend's own floor and to the baseline."""
    figures = floor_figures(floors)
    base = summary.get("baseline")
    for name, entry in summary.items():
        if name in figures:
            entry["floor"] = _floor_block(entry, figures[name])
        if base is not None:
            entry["step_vs_baseline"] = _ratio(
                entry["step_latency_ms"]["p50"], base["step_latency_ms"]["p50"]
            )
            entry["overhead_vs_baseline"] = _ratio(
                entry["overhead_ms"]["p50"], base["overhead_ms"]["p50"]
            )


def with_exposure(
    runs: pd.DataFrame, steps: pd.DataFrame, faults: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """runs.parquet with `exposed` and `exposed_by`, faults.parquet with `exposed_runs`
    (harness/exposure.py): what the runner writes, and what `summarize` reads."""
    found = exposed_runs_by_fault(faults, steps, runs)
    return with_run_exposure(runs, faults, found), with_fault_exposure(faults, found)


def _judged(runs: pd.DataFrame) -> pd.DataFrame:
    """The rows of judged runs (stray-effect rows left out)."""
    if "stray" not in runs:
        return runs
    return runs[runs["stray"] != True]  # noqa: E712  (NaN in old tables: judged)


def _split_invalid(runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """(the runs judged for durability, why each other run's first answer from a real
    model was no valid tool call): those runs say something about the model only."""
    if "invalid_decision" not in runs:
        return runs, pd.Series(dtype=str)
    bad = runs["invalid_decision"].notna()
    return runs[~bad], runs.loc[bad, "invalid_decision"].astype(str)


def _interval(passed: int, n: int, confidence: float) -> dict[str, Any]:
    return integrity_interval(passed, n, confidence).to_dict()


def _exposure_summary(
    group: pd.DataFrame, faults: pd.DataFrame, confidence: float
) -> dict[str, Any] | None:
    """Exposed runs and integrity among them, or None when the scenario had no faults."""
    if faults.empty:
        return None
    exposed = group[group["exposed"] == True]  # noqa: E712
    took_effect = faults[faults["outcome"] == "ok"]
    counts = faults["exposed_runs"] if "exposed_runs" in faults else pd.Series(0, faults.index)
    labels = [
        fault_label(str(f["kind"]), int(f["fault_index"]), int(f["occurrence"]))
        for f in took_effect.to_dict("records")
    ]
    passed = int(exposed["passed"].sum())
    skipped = faults[faults["outcome"] == "skipped"]
    details = skipped["detail"] if "detail" in skipped else pd.Series(dtype=str)
    return {
        "faults": len(faults),
        "took_effect": len(took_effect),
        "skipped": len(skipped),
        "skipped_because": "; ".join(dict.fromkeys(str(d) for d in details if d)),
        "exposed_runs": len(exposed),
        "passed": passed,
        "integrity": round(passed / len(exposed), 6) if len(exposed) else None,
        "ci": _interval(passed, len(exposed), confidence),
        "by_fault": dict(zip(labels, (int(c) for c in counts[took_effect.index]), strict=True)),
        "exposing_nothing": [
            label for label, c in zip(labels, counts[took_effect.index], strict=True) if not c
        ],
    }


def _result(group: pd.DataFrame, exposure: dict[str, Any] | None, strays: int) -> tuple[str, str]:
    """The backend's verdict on this scenario and why: fail (an anomaly, or stray
    effects) > unknown (a verdict could not be decided) > not applicable (every fault was
    skipped: none applies to this backend, e.g. a deploy for one without code versions)
    > inconclusive (faults, and none of them exposed a run) > pass."""
    failed = {v: int((group[v] == False).sum()) for v in VERDICTS if v in group}  # noqa: E712
    failed = {v: n for v, n in failed.items() if n}
    if failed or strays:
        named = [f"{v}={n}" for v, n in failed.items()]
        return "fail", ", ".join([*named, *([f"stray_effects={strays}"] if strays else [])])
    unknown = int((~group["passed"].astype(bool)).sum())
    if unknown:
        return "unknown", f"{unknown} runs with undecided verdicts"
    if exposure is not None and exposure["exposed_runs"] == 0:
        if exposure["took_effect"] == 0 and exposure["skipped"] == exposure["faults"]:
            return NOT_APPLICABLE, "every fault was skipped: " + exposure["skipped_because"]
        if exposure["took_effect"] == 0:
            return "inconclusive", "no fault took effect (none was reached, or they failed)"
        return "inconclusive", "no fault exposed any run"
    return "pass", ""


def summarize(
    runs: pd.DataFrame,
    steps: pd.DataFrame,
    walls: dict[str, float],
    faults: pd.DataFrame | None = None,
    floors: pd.DataFrame | None = None,
    confidence: float = DEFAULT_CONFIDENCE,
    ledger: pd.DataFrame | None = None,
    not_judged: Mapping[str, Collection[str]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Per backend: integrity with its exact interval (over every run, and over the runs a
    fault exposed), pass^k with its interval, the result (pass, fail, unknown or
    inconclusive), anomaly counts (stray effects, inspect errors, non-determinism too),
    throughput (end to end and steady), latency and overhead percentiles, start latency,
    repeated work, state bloat, per fault kind the recovery times, and (with `floors`,
    and a baseline in the run) the ratios to the backend's own raw floor and to the
    baseline. `walls` maps backend -> load-phase wall time in seconds. With `ledger`
    (ledger.parquet), effects under run ids of no judged run are counted as stray
    effects and fail the backend."""
    per_step = step_table(steps)
    faults = faults if faults is not None else pd.DataFrame()
    if "exposed" not in runs or (not faults.empty and "exposed_runs" not in faults):
        runs, faults = with_exposure(runs, steps, faults)
    recovery = recovery_table(faults, steps, runs)
    strays = stray_effects(ledger, _judged(runs), not_judged) if ledger is not None else {}
    summary: dict[str, dict[str, Any]] = {}
    for backend, everything in runs.groupby("backend"):
        name = str(backend)
        group, invalid = _split_invalid(_judged(everything))
        stray = strays.get(name, NO_STRAYS)
        own_faults = faults[faults["backend"] == name] if not faults.empty else faults
        mine = per_step[per_step["backend"] == name]
        wall = walls.get(name) or 0.0
        persisted_bytes = group["bytes_persisted"].dropna()
        steps_persisted = int(group["steps_persisted"].sum())
        phase_rows = steps[steps["backend"] == name] if not steps.empty else steps
        commits = (
            phase_rows[(phase_rows["phase"] == "commit") & (phase_rows["outcome"] == "ok")]
            if not phase_rows.empty
            else phase_rows
        )
        passed = int(group["passed"].sum())
        tasks = group.groupby(group["run_id"].map(task_of))["passed"].all()
        exposure = _exposure_summary(group, own_faults, confidence)
        errors = group["inspect_error"].dropna() if "inspect_error" in group else pd.Series()
        result, why = _result(group, exposure, int(stray["run_ids"]))
        evidence = (
            exposure["ci"] if exposure is not None else _interval(passed, len(group), confidence)
        )
        tokens_expected = group.get("llm_tokens_expected")
        summary[name] = {
            "runs": len(group),
            "completed": int((group["complete"] == True).sum()),  # noqa: E712  (nullable)
            "passed": passed,
            "integrity": round(float(passed / len(group)), 6) if len(group) else 0.0,
            "integrity_ci": _interval(passed, len(group), confidence),
            "exposure": exposure,
            "evidence": {**evidence, "basis": "exposed runs" if exposure else "all runs"},
            "result": result,
            "result_reason": why,
            "trials": int(group["run_id"].map(task_of).value_counts().max()) if len(group) else 0,
            "pass_k": round(float(tasks.mean()), 6) if len(tasks) else 0.0,
            "pass_k_ci": _interval(int(tasks.sum()), len(tasks), confidence),
            "anomalies": {v: int((group[v] == False).sum()) for v in VERDICTS if v in group},  # noqa: E712
            "unknown": {v: int(group[v].isna().sum()) for v in VERDICTS if v in group},
            "stray_effects": stray,
            "invalid_decisions": {
                "runs": len(invalid),
                "first": str(invalid.iloc[0]) if len(invalid) else None,
            },
            "inspect_errors": {
                "runs": len(errors),
                "first": str(errors.iloc[0]) if len(errors) else None,
            },
            "committed_steps": len(mine),
            "wall_s": round(wall, 3),
            "steps_per_s": round(len(mine) / wall, 2) if wall > 0 else None,
            "steady_steps_per_s": steady_steps_per_s(commits["end"]) if not commits.empty else None,
            "start_latency_ms": _quantiles(
                start_latencies(group, phase_rows) if not phase_rows.empty else pd.Series()
            ),
            "step_latency_ms": _quantiles(mine["step_ms"]),
            "overhead_ms": _quantiles(mine["overhead_ms"]),
            "service_ms": _quantiles(mine["service_ms"]),
            "phase_mean_ms": {
                str(phase): round(float(((rows["end"] - rows["start"]) * 1000).mean()), 4)
                for phase, rows in phase_rows[phase_rows["outcome"] != "invoke"].groupby("phase")
            }
            if not phase_rows.empty
            else {},
            "acts_indeterminate": int(group["acts_indeterminate"].sum()),
            "nondeterminism": int(group["nondeterminism"].sum()),
            "wasted": {
                "llm_calls": _beyond(group["llm_calls"], group["llm_calls_expected"]),
                "tool_executions": _beyond(group["tool_executions"], group["tool_expected"]),
                "llm_tokens": _beyond(group["llm_tokens"], tokens_expected)
                if tokens_expected is not None
                else None,
            },
            "bytes_per_step": round(float(persisted_bytes.sum()) / steps_persisted, 2)
            if steps_persisted and not persisted_bytes.empty
            else None,
            "faults": _fault_summary(recovery[recovery["backend"] == name], own_faults)
            if not own_faults.empty
            else {},
        }
    _add_relative(summary, floors)
    return summary
