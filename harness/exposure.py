"""Exposure: which runs a fault actually tested, from the results tables alone.

A green cell means something only if its faults touched its runs: a pause that lands
before any run was claimed, or a kill of a worker that holds no run, tests nothing.
A run is **exposed** to a fault occurrence (faults.parquet row with outcome `ok`) when:

- kill, evict, a worker pause: the run was *held* by a targeted worker during the
  fault's window (a phase of the run on that worker was open then, or the run's last
  phase before the fault ran there and the run had not ended);
- network faults: the run had a phase in flight during the window (worker->X links
  carry every worker's traffic); llm faults: a reason or verify phase; tool faults:
  an act phase;
- restart, outage, deploy, a pause of a server or store, anything else: the run was
  in flight (its first phase had started and it had not ended);
- a crash point: the run it fired in (`selected` holds `run:step:pid`) and, since the
  point kills its worker, every run that worker held at that moment.

Pure functions of (faults, steps, runs) frames; nothing here does I/O. `runs` may be
empty: a run's end is then its last recorded phase.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd

__all__ = [
    "FaultKey",
    "exposed_runs_by_fault",
    "fault_label",
    "with_fault_exposure",
    "with_run_exposure",
]

FaultKey = tuple[str, int, int]  # (backend, fault_index, occurrence)
WORKER_KINDS = frozenset({"kill", "evict"})
PHASE_KINDS = {"network": None, "llm": ("reason", "verify"), "tool": ("act",)}


def fault_label(kind: str, index: int, occurrence: int) -> str:
    """`kill#0.1`: the fault's kind, its position in the scenario, its occurrence."""
    return f"{kind}#{int(index)}.{int(occurrence)}"


@dataclass(frozen=True)
class _Runs:
    """One backend's phase rows (sorted by start) and, per run, when its first phase
    started and when it ended (its last phase's end once finished; +inf while not):
    every question below is a vectorised filter over these, not a loop over runs."""

    rows: pd.DataFrame
    first: pd.Series
    end: pd.Series

    def open_during(self, start: float, end: float, rows: pd.DataFrame | None = None) -> pd.Series:
        rows = self.rows if rows is None else rows
        return (rows["start"] <= end) & (rows["end"] >= start)

    def workers_named(self, components: list[str]) -> set[str]:
        return {
            w for w in self.rows["worker"].unique() if any(_is_worker(c, w) for c in components)
        }

    def held(self, components: list[str], start: float, end: float) -> set[str]:
        """Runs with a phase open on one of these workers during [start, end], or whose
        last phase before `start` ran there and which had not ended by then."""
        workers = self.workers_named(components)
        on = self.rows["worker"].isin(workers)
        held = set(self.rows.loc[on & self.open_during(start, end), "run_id"])
        before = self.rows[self.rows["start"] <= start]
        last = before.groupby("run_id", sort=False).tail(1)
        last = last[last["worker"].isin(workers)]
        alive = self.end.reindex(last["run_id"]).to_numpy() >= start
        return held | set(last.loc[alive, "run_id"])

    def phase_open(self, phases: tuple[str, ...] | None, start: float, end: float) -> set[str]:
        rows = self.rows if phases is None else self.rows[self.rows["phase"].isin(phases)]
        return set(rows.loc[self.open_during(start, end, rows), "run_id"])

    def in_flight(self, start: float, end: float) -> set[str]:
        inside = (self.first <= end) & (self.end >= start)
        return set(self.first.index[inside.to_numpy()])

    def worker_at(self, run_id: str, at: float) -> str | None:
        mine = self.rows[(self.rows["run_id"] == run_id) & (self.rows["start"] <= at)]
        return str(mine["worker"].iloc[-1]) if len(mine) else None


def _runs_of(steps: pd.DataFrame, runs: pd.DataFrame, backend: str) -> _Runs:
    columns = ["run_id", "worker", "phase", "start", "end"]
    mine = steps[steps["backend"] == backend] if not steps.empty else pd.DataFrame()
    if mine.empty:
        empty = pd.Series(dtype=float)
        return _Runs(pd.DataFrame(columns=columns), empty, empty)
    rows = mine[columns].astype({"run_id": str, "worker": str}).sort_values("start", kind="stable")
    grouped = rows.groupby("run_id", sort=False)
    first, last = grouped["start"].min(), grouped["end"].max()
    done = pd.Series(bool(runs.empty), index=first.index)
    if not runs.empty and "finished_at" in runs:
        own = runs[runs["backend"] == backend]
        finished = pd.Series(own["finished_at"].notna().to_numpy(), index=own["run_id"].astype(str))
        finished = finished[~finished.index.duplicated()]
        done = finished.reindex(first.index, fill_value=False).astype(bool)
    end = last.where(done, math.inf)
    return _Runs(rows.reset_index(drop=True), first, end)


def _is_worker(component: str, worker: str) -> bool:
    """`pgstore-worker-0` (a component) is the process whose rows say `worker-0`."""
    return component == worker or component.endswith(f"-{worker}")


def _selected(value: object) -> list[str]:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]  # type: ignore[attr-defined]


def _crash_exposed(fault: dict[str, Any], selected: list[str], runs: _Runs) -> set[str]:
    """The run a crash point fired in, and (the point kills its worker) every run that
    worker held at that moment: the worker of the fired run's last phase by then."""
    fired = {s.rsplit(":", 2)[0] for s in selected}
    at = fault.get("actual_start")
    if at is None or pd.isna(at):
        return fired
    exposed = set(fired)
    for run_id in fired:
        worker = runs.worker_at(run_id, float(at))
        if worker is not None:
            exposed |= runs.held([worker], float(at), float(at))
    return exposed


def _exposed(fault: dict[str, Any], runs: _Runs) -> set[str]:
    kind = str(fault["kind"])
    selected = _selected(fault.get("selected"))
    if kind == "crash_point":
        return _crash_exposed(fault, selected, runs)
    start = float(fault["actual_start"])
    raw_end = fault.get("actual_end")
    end = start if raw_end is None or pd.isna(raw_end) else max(start, float(raw_end))
    targets_worker = kind in WORKER_KINDS or (
        kind == "pause" and str(fault.get("target") or "worker") == "worker"
    )
    if targets_worker:
        return runs.held([s.rsplit(":", 1)[0] for s in selected], start, end)  # name:ident
    if kind in PHASE_KINDS:
        return runs.phase_open(PHASE_KINDS[kind], start, end)
    return runs.in_flight(start, end)


def exposed_runs_by_fault(
    faults: pd.DataFrame, steps: pd.DataFrame, runs: pd.DataFrame | None = None
) -> dict[FaultKey, frozenset[str]]:
    """(backend, fault_index, occurrence) -> the run ids that fault exposed; a fault that
    did not take effect (skipped, failed, not reached) exposed none."""
    runs = runs if runs is not None else pd.DataFrame()
    out: dict[FaultKey, frozenset[str]] = {}
    if faults.empty:
        return out
    cache: dict[str, _Runs] = {}
    for record in faults.to_dict("records"):
        fault = {str(k): v for k, v in record.items()}
        key = (str(fault["backend"]), int(fault["fault_index"]), int(fault["occurrence"]))
        took_effect = fault.get("outcome") == "ok" and (
            fault["kind"] == "crash_point" or pd.notna(fault.get("actual_start"))
        )
        if not took_effect:
            out[key] = frozenset()
            continue
        backend = key[0]
        if backend not in cache:
            cache[backend] = _runs_of(steps, runs, backend)
        out[key] = frozenset(_exposed(fault, cache[backend]))
    return out


def with_fault_exposure(
    faults: pd.DataFrame, exposure: dict[FaultKey, frozenset[str]]
) -> pd.DataFrame:
    """faults.parquet with `exposed_runs`: how many runs each occurrence exposed."""
    if faults.empty:
        return faults
    keys = zip(faults["backend"], faults["fault_index"], faults["occurrence"], strict=True)
    counts = [len(exposure.get((str(b), int(i), int(o)), ())) for b, i, o in keys]
    return faults.assign(exposed_runs=counts)


def _labels(faults: pd.DataFrame) -> dict[FaultKey, str]:
    if faults.empty:
        return {}
    return {
        (str(f["backend"]), int(f["fault_index"]), int(f["occurrence"])): fault_label(
            str(f["kind"]), int(f["fault_index"]), int(f["occurrence"])
        )
        for f in faults.to_dict("records")
    }


def with_run_exposure(
    runs: pd.DataFrame, faults: pd.DataFrame, exposure: dict[FaultKey, frozenset[str]]
) -> pd.DataFrame:
    """runs.parquet with `exposed_by` (the labels of the faults that exposed each run, in
    schedule order) and `exposed` (at least one did)."""
    if runs.empty:
        return runs
    labels = _labels(faults)
    by_run: dict[tuple[str, str], list[str]] = defaultdict(list)
    for key in sorted(exposure, key=lambda k: (k[0], k[1], k[2])):
        for run_id in sorted(exposure[key]):
            by_run[(key[0], run_id)].append(labels.get(key, fault_label("?", key[1], key[2])))
    pairs: Iterable[tuple[str, str]] = zip(
        runs["backend"].astype(str), runs["run_id"].astype(str), strict=True
    )
    exposed_by = pd.Series([list(by_run.get(pair, [])) for pair in pairs], index=runs.index)
    return runs.assign(exposed_by=exposed_by, exposed=exposed_by.map(bool))
