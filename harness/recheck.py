"""`durabench check`: judge stored results again, from the files alone."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pandas as pd

from harness.checker import VERDICTS
from harness.evaluate import judge_runs, summarize
from harness.results import ResultsDir
from harness.runner import load_results_tables
from harness.scenario import parse_scenario

__all__ = ["Recheck", "recheck"]


@dataclass(frozen=True)
class Recheck:
    runs: pd.DataFrame  # the verdict rows computed now
    summary: dict[str, dict[str, Any]]
    differences: list[dict[str, Any]]  # (backend, run, verdict, stored, now) where they differ


def _ledger_dicts(frame: pd.DataFrame, backend: str) -> list[dict[str, Any]]:
    if frame.empty:
        return []
    rows = _records(frame[frame["backend"] == backend])
    for row in rows:
        row["request"] = json.loads(row["request"])
        row["response"] = json.loads(row["response"])
    return rows


def recheck(results: ResultsDir) -> Recheck:
    manifest = results.read_json("manifest.json")
    scenario = parse_scenario(manifest["scenario"], f"{results.path}/manifest.json")
    tables = load_results_tables(results)
    persisted = results.read_jsonl("persisted.jsonl")
    steps, calls = tables["steps"], tables["llm_calls"]
    rows: list[dict[str, Any]] = []
    for backend in dict.fromkeys(str(p["backend"]) for p in persisted):
        rows.extend(
            judge_runs(
                scenario,
                backend,
                [p for p in persisted if p["backend"] == backend],
                _ledger_dicts(tables["ledger"], backend),
                steps[steps["backend"] == backend] if not steps.empty else steps,
                _records(calls[calls["backend"] == backend]) if not calls.empty else [],
            )
        )
    now = pd.DataFrame(rows)
    walls = {
        name: float(details.get("wall_s") or 0.0)
        for name, details in manifest.get("backend_details", {}).items()
    }
    stored = tables["runs"]
    differences = []
    if not stored.empty and not now.empty:
        merged = stored.merge(
            now, on=["backend", "run_id"], how="outer", suffixes=("_stored", "_now")
        )
        for row in merged.to_dict("records"):
            for name in (*VERDICTS, "passed"):
                before, after = row.get(f"{name}_stored"), row.get(f"{name}_now")
                if _norm(before) != _norm(after):
                    differences.append(
                        {
                            "backend": row["backend"],
                            "run_id": row["run_id"],
                            "verdict": name,
                            "stored": _norm(before),
                            "now": _norm(after),
                        }
                    )
    summary = (
        summarize(now, steps, walls, tables["faults"], tables.get("floors"))
        if not now.empty
        else {}
    )
    return Recheck(now, summary, differences)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): v for k, v in row.items()} for row in frame.to_dict("records")]


def _norm(value: Any) -> bool | None:
    if value is None or (isinstance(value, float) and value != value):
        return None
    return bool(value)
