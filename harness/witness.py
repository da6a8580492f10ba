"""Witnesses: a plain-text account of one anomaly, from the evidence a run left behind
(Elle's witness files). It names the run and step, the act executed and how often it was
applied under which keys (ledger.parquet), the commits that exist (steps.parquet commit
rows and the persisted history), the faults that fired (faults.parquet), and which
verdict that breaks and why. Read from the results directory only: a witness can be
written again from a results directory alone.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from harness.explore import TrialResult

__all__ = ["explain", "witness_text"]

WHY = {
    "effects_exactly_once": "a side effect was applied more than once: the act was sent "
    "again after a crash under a key the tool service could not recognise as the same "
    "call (a fresh key per attempt gives the service nothing to deduplicate)",
    "no_duplicate_step": "the persisted history holds the same step twice: a step was "
    "recorded again after a restart instead of being recognised as done",
    "no_orphan_effect": "an applied effect belongs to a step the persisted history does "
    "not hold: the effect happened, its record was lost",
    "ledger_agrees": "the tool output stored in state differs from what the ledger "
    "recorded: the state kept the result of another execution than the applied one",
    "no_nondeterminism": "the backend reported non-determinism: replaying the run's "
    "history did not give the same commands",
    "decisions_agree": "the persisted decision differs from the LLM's answer for that step",
    "no_lost_step": "a step of the oracle is missing from the persisted history of a run "
    "that reports completion: an update was lost (overwritten or never persisted)",
    "state_match": "the persisted final state differs from the oracle's",
}


def _clock(ts: Any) -> str:
    try:
        return datetime.fromtimestamp(float(ts), UTC).strftime("%H:%M:%S.%f")[:-3]
    except (TypeError, ValueError, OSError):
        return "?"


def _table(results: Path, name: str) -> pd.DataFrame:
    path = results / f"{name}.parquet"
    return pd.read_parquet(path) if path.is_file() else pd.DataFrame()


def _history(results: Path, run_id: str) -> list[dict[str, Any]]:
    path = results / "persisted.jsonl"
    if not path.is_file():
        return []
    for line in path.read_text().splitlines():
        row = json.loads(line)
        if row.get("run_id") == run_id:
            state = row.get("state") or {}
            steps = state.get("steps") or []
            return [s for s in steps if isinstance(s, dict)]
    return []


def witness_text(results: Path, run_id: str, broken: set[str]) -> list[str]:
    """The witness of one anomalous run of a results directory."""
    runs = _table(results, "runs")
    row = runs[runs["run_id"] == run_id].iloc[0]
    detail = json.loads(row["verdict_detail"]) if isinstance(row["verdict_detail"], str) else {}
    lines = [
        f"run {run_id} (status {row['status']}, {row['steps_persisted']} of "
        f"{row['steps_expected']} steps persisted)"
    ]
    exposed_by = row.get("exposed_by")
    if exposed_by is not None:
        labels = [str(x) for x in exposed_by]
        lines.append(
            "  exposed to: " + (", ".join(labels) if labels else "no fault (exposure found none)")
        )
    failed = [v for v in sorted(broken) if row.get(v) is False or row.get(v) == False]  # noqa: E712
    focus_steps: set[int] = set()
    dup = detail.get("effects_exactly_once", {})
    for step, attempt, count in dup.get("duplicated", []) or []:
        focus_steps.add(int(step))
        lines.append(f"  step {step} attempt {attempt}: its act was applied {count} times")
    lost = detail.get("no_lost_step", {})
    for step in lost.get("first_lost", []) or []:
        focus_steps.add(int(step))
    for key in ("no_duplicate_step", "no_orphan_effect", "ledger_agrees", "state_match"):
        info = detail.get(key, {})
        for name in ("indices", "examples", "diffs"):
            if info.get(name):
                lines.append(f"  {key} {name}: {json.dumps(info[name], default=str)[:400]}")
    if not focus_steps and dup.get("worst"):
        focus_steps.add(int(dup["worst"][0]))

    faults = _table(results, "faults")
    lines.append("faults that fired:")
    if faults.empty:
        lines.append("  none")
    for fault in faults.to_dict("records"):
        selected = fault.get("selected")
        on = ", ".join(str(s) for s in selected) if selected is not None else "-"
        lines.append(
            f"  #{fault['fault_index']}.{fault['occurrence']} {fault['kind']} {fault['target']} "
            f"{fault['outcome']} at {_clock(fault['actual_start'])} on {on}"
            + (f" ({fault['detail']})" if fault.get("detail") else "")
        )

    ledger = _table(results, "ledger")
    mine = ledger[ledger["run_id"] == run_id] if not ledger.empty else ledger
    lines.append(
        "ledger (tool service) for this run"
        + (f", steps {sorted(focus_steps)}:" if focus_steps else ":")
    )
    shown = mine[mine["step"].isin(focus_steps)] if focus_steps else mine
    for entry in shown.sort_values("seq").itertuples():
        lines.append(
            f"  seq {entry.seq} {_clock(entry.started_at)} step {entry.step} attempt "
            f"{entry.attempt} {entry.tool} key {entry.idempotency_key} "
            f"{'applied' if entry.applied else 'deduplicated (not applied)'}"
        )
    if not shown.empty:
        keys = shown.groupby("step")["idempotency_key"].nunique()
        applied = shown[shown["applied"].eq(True)].groupby("step").size()
        for step in keys.index:
            lines.append(
                f"  => step {step}: executed {int((shown['step'] == step).sum())}x, applied "
                f"{int(applied.get(step, 0))}x under {int(keys[step])} distinct key(s)"
            )

    steps = _table(results, "steps")
    commits = (
        steps[(steps["run_id"] == run_id) & (steps["phase"] == "commit")]
        if not steps.empty
        else steps
    )
    lines.append("commits recorded by the worker (steps.parquet):")
    for commit in commits.sort_values("end").itertuples():
        lines.append(
            f"  step {commit.step} attempt {commit.attempt} committed at {_clock(commit.end)} "
            f"by {commit.worker} ({commit.outcome})"
        )
    if not steps.empty:
        mine_steps = steps[steps["run_id"] == run_id]
        acts = mine_steps[(mine_steps["phase"] == "act") & (mine_steps["outcome"] == "invoke")]
        invoked = Counter(zip(acts["step"].tolist(), acts["attempt"].tolist(), strict=True))
        for (at_step, attempt), count in sorted(invoked.items()):
            if count > 1:
                lines.append(
                    f"  step {at_step} attempt {attempt}: act invoked {count}x by the worker(s)"
                )
    history = _history(results, run_id)
    lines.append(
        "persisted history: "
        + (
            ", ".join(
                f"step {s.get('index')} ({s.get('tool')}, {s.get('attempts')} attempt(s))"
                for s in history
            )
            or "empty"
        )
    )
    lines.append("why this is an anomaly:")
    for verdict in failed or sorted(broken):
        lines.append(f"  {verdict} fails: {WHY.get(verdict, 'see verdict_detail')}")
    return lines


def explain(
    result: TrialResult, backend: str, broken: set[str], reproduced: int, reruns: int
) -> str:
    """The explanation of one finding, from the results of a run that showed it."""
    head = (
        f"{backend} breaks {', '.join(sorted(broken))} "
        f"(reproduced {reproduced}/{reruns} re-runs of the minimal scenario)"
    )
    lines = [head, "", f"scenario: {result.case.describe()}", f"evidence: {result.results}", ""]
    if not result.results or not result.anomalous_runs:
        lines.append("no run of the evidence showed the anomaly; see explore.json")
        return "\n".join(lines) + "\n"
    results = Path(result.results)
    first = result.anomalous_runs[0]
    lines.append(
        f"{len(result.anomalous_runs)} run(s) show it: {', '.join(result.anomalous_runs)}; "
        f"the first:"
    )
    lines.extend(witness_text(results, first, broken))
    return "\n".join(lines) + "\n"
