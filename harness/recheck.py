"""`durabench check`: judge stored results again, from the files alone.

A check never passes on missing evidence. Before anything is judged, the evidence
is read and cross-checked (`read_evidence`): the manifest and its scenario, a
non-empty `persisted.jsonl`, and `runs`, `steps`, `ledger` and `llm_calls` tables
that are there, readable, of the right shape, written for this results directory
(their bench id stamps) and about the same runs. Anything else is one ResultsError
naming the file and what is wrong with it, never "identical".
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pandas as pd

from harness.checker import VERDICTS
from harness.errors import DurabenchError, ResultsError
from harness.evaluate import judge_runs, summarize
from harness.oracle import run_ids
from harness.results import ResultsDir
from harness.scenario import Scenario, parse_scenario
from harness.state import LedgerEntry, RunState

__all__ = ["EVIDENCE_TABLES", "Evidence", "Recheck", "read_evidence", "recheck"]

# the tables a verdict is computed from (faults and floors only feed the summary)
EVIDENCE_TABLES = ("runs", "steps", "ledger", "llm_calls")
WHAT = {
    "runs": "the stored verdicts",
    "steps": "the workers' step records",
    "ledger": "the tool ledger",
    "llm_calls": "the LLM call log",
}
EXAMPLES = 3  # run ids quoted in a mismatch message
MAX_TRIALS = 10_000
RUN_ID = re.compile(r"run-\d{6,}(~t\d+)?")  # the oracle's ids (harness.oracle.run_ids)


@dataclass(frozen=True)
class Recheck:
    runs: pd.DataFrame  # the verdict rows computed now
    summary: dict[str, dict[str, Any]]
    differences: list[dict[str, Any]]  # (backend, run, verdict, stored, now) where they differ


@dataclass(frozen=True)
class Evidence:
    """Everything a check judges, read and cross-checked."""

    manifest: dict[str, Any]
    scenario: Scenario
    persisted: list[dict[str, Any]]
    tables: dict[str, pd.DataFrame]


def _keys(frame: pd.DataFrame) -> list[tuple[str, str]]:
    if frame.empty:
        return []
    return list(zip(frame["backend"].astype(str), frame["run_id"].astype(str), strict=True))


def _quote(keys: set[tuple[str, str]]) -> str:
    shown = ", ".join(f"{b}/{r}" for b, r in sorted(keys)[:EXAMPLES])
    more = f" and {len(keys) - EXAMPLES} more" if len(keys) > EXAMPLES else ""
    return shown + more


def _check_persisted(
    results: ResultsDir,
    persisted: list[dict[str, Any]],
    scenario: Scenario,
    manifest: dict[str, Any],
) -> None:
    """Each line names a backend of this run and a run of this scenario, once, with a
    state that is a run state (or null: nothing persisted); a complete run has them all."""
    where = results.path / "persisted.jsonl"
    if not persisted:
        raise ResultsError(f"{where}: empty: no persisted run to judge")
    trials = manifest.get("trials", 1)
    if not isinstance(trials, int) or isinstance(trials, bool) or not 1 <= trials <= MAX_TRIALS:
        raise ResultsError(f"{results.path}/manifest.json: `trials` must be a count of 1 or more")
    # a load test (load.json) starts as many runs as its budget, with the oracle's ids
    expected = (
        None if (results.path / "load.json").exists() else set(run_ids(scenario, trials=trials))
    )
    backends = manifest.get("backends") or []
    seen: set[tuple[str, str]] = set()
    for number, row in enumerate(persisted, start=1):
        backend, run_id, state = row.get("backend"), row.get("run_id"), row.get("state")
        if not isinstance(backend, str) or not isinstance(run_id, str):
            raise ResultsError(f"{where}: line {number}: needs a `backend` and a `run_id` (text)")
        if backends and backend not in backends:
            raise ResultsError(
                f"{where}: line {number}: backend {backend!r} is not one of this run's "
                f"backends ({', '.join(backends)})"
            )
        if not RUN_ID.fullmatch(run_id) or (expected is not None and run_id not in expected):
            raise ResultsError(
                f"{where}: line {number}: {run_id!r} is not a run of scenario "
                f"{scenario.name!r} ({scenario.runs} runs x {trials} trials)"
            )
        if (backend, run_id) in seen:
            raise ResultsError(f"{where}: line {number}: {backend}/{run_id} appears twice")
        seen.add((backend, run_id))
        if state is not None:
            try:
                RunState.from_dict(state)
            except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as exc:
                raise ResultsError(
                    f"{where}: line {number}: the state of {backend}/{run_id} is not a run "
                    f"state ({type(exc).__name__}: {_short(exc)})"
                ) from None
    if manifest.get("status") == "complete" and expected is not None:
        started = _started_per_backend(results, manifest, trials)
        for backend in backends:
            own = expected
            if backend in started:  # run until confident: each backend stopped on its own
                own = set(run_ids(scenario.model_copy(update={"runs": started[backend]})))
            lacking = {(backend, r) for r in own} - seen
            if lacking:
                raise ResultsError(
                    f"{where}: lacks {len(lacking)} runs of a complete run "
                    f"({_quote(lacking)}): truncated?"
                )


def _check_tables(
    results: ResultsDir, tables: dict[str, pd.DataFrame], persisted: list[dict[str, Any]]
) -> None:
    """The tables describe the same runs as persisted.jsonl."""
    judged = {(str(p["backend"]), str(p["run_id"])) for p in persisted}
    runs = tables["runs"]
    where = results.path / "runs.parquet"
    if runs.empty:
        raise ResultsError(f"{where}: empty: no stored verdicts to compare with")
    stored = _keys(runs)
    twice = {k for k, n in Counter(stored).items() if n > 1}
    if twice:
        raise ResultsError(f"{where}: runs appear twice ({_quote(twice)})")
    if set(stored) != judged:
        only_runs, only_persisted = set(stored) - judged, judged - set(stored)
        parts = []
        if only_runs:
            parts.append(f"only in runs.parquet: {_quote(only_runs)}")
        if only_persisted:
            parts.append(f"only in persisted.jsonl: {_quote(only_persisted)}")
        raise ResultsError(
            f"{where}: its runs do not match persisted.jsonl ({'; '.join(parts)}): "
            "one of the two is truncated or comes from another results directory"
        )
    backends = {b for b, _ in judged}
    with_steps = {
        str(p["backend"])
        for p in persisted
        if isinstance(p.get("state"), dict) and p["state"].get("steps")
    }
    for name in ("steps", "ledger", "llm_calls"):
        frame, where = tables[name], results.path / f"{name}.parquet"
        present = set(frame["backend"].astype(str)) if not frame.empty else set()
        lacking = sorted(with_steps - present)
        if lacking:
            raise ResultsError(
                f"{where}: no rows for backend {', '.join(lacking)}, whose runs persisted "
                f"steps: {WHAT[name]} is missing or truncated"
            )
        foreign = sorted(present - backends)
        if foreign:
            raise ResultsError(
                f"{where}: rows for backend {', '.join(foreign)}, which persisted.jsonl "
                "does not have: it comes from another results directory"
            )


def _started_per_backend(
    results: ResultsDir, manifest: dict[str, Any], trials: int
) -> dict[str, int]:
    """Runs each backend started, when a run until confident recorded them (it stops each
    backend on its own goal); {} otherwise."""
    started = (manifest.get("until_integrity") or {}).get("started")
    if started is None:
        return {}
    if (
        trials != 1
        or not isinstance(started, dict)
        or not all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in started.values()
        )
    ):
        raise ResultsError(
            f"{results.path}/manifest.json: `until_integrity.started` must map each backend "
            "to the runs it started (a count), with one trial"
        )
    return {str(name): max(1, n) for name, n in started.items()}


def _check_stamps(
    results: ResultsDir, manifest: dict[str, Any], persisted: list[dict[str, Any]]
) -> None:
    """Every evidence file was written for this results directory (its bench id)."""
    bench_id = manifest.get("bench_id")
    stamps: dict[str, str | None] = {
        f"{name}.parquet": results.table_stamp(name) for name in EVIDENCE_TABLES
    }
    lines = {str(p["bench_id"]) if "bench_id" in p else None for p in persisted}
    stamps["persisted.jsonl"] = lines.pop() if len(lines) == 1 else "?"
    if all(stamp is None for stamp in stamps.values()):
        return  # written before bench id stamps: nothing to compare
    for name, stamp in stamps.items():
        if stamp == "?":
            raise ResultsError(
                f"{results.path / name}: its lines carry different bench ids: "
                "mixed from several results directories"
            )
        if stamp is None:
            raise ResultsError(
                f"{results.path / name}: carries no bench id while the other evidence does: "
                "it does not come from this run"
            )
        if stamp != bench_id:
            raise ResultsError(
                f"{results.path / name}: written for results {stamp!r}, not for this "
                f"directory's {bench_id!r} (copied from another results directory?)"
            )


def _ledger_dicts(frame: pd.DataFrame, backend: str, where: str) -> list[dict[str, Any]]:
    if frame.empty:
        return []
    rows = _records(frame[frame["backend"] == backend])
    for row in rows:
        try:
            row["request"] = json.loads(row["request"])
            row["response"] = json.loads(row["response"])
            LedgerEntry.from_dict(row)
        except (TypeError, ValueError, KeyError, AttributeError, RecursionError) as exc:
            raise ResultsError(
                f"{where}: entry {row.get('seq')} of {backend}/{row.get('run_id')} is damaged "
                f"({type(exc).__name__}: {_short(exc)})"
            ) from None
    return rows


def read_evidence(results: ResultsDir) -> Evidence:
    """Read and cross-check everything a check judges (see the module docstring)."""
    manifest = results.read_manifest()
    scenario = parse_scenario(manifest["scenario"], f"{results.path}/manifest.json (scenario)")
    for name in EVIDENCE_TABLES:
        path = results.path / f"{name}.parquet"
        if not path.exists():
            raise ResultsError(
                f"{results.path}: missing {name}.parquet ({WHAT[name]}): "
                "the verdicts cannot be checked without it"
            )
    tables = results.read_tables(required=EVIDENCE_TABLES)
    persisted = results.read_jsonl("persisted.jsonl")
    _check_persisted(results, persisted, scenario, manifest)
    _check_tables(results, tables, persisted)
    _check_stamps(results, manifest, persisted)
    return Evidence(manifest, scenario, persisted, tables)


def recheck(results: ResultsDir) -> Recheck:
    evidence = read_evidence(results)
    scenario, tables, persisted = evidence.scenario, evidence.tables, evidence.persisted
    steps, calls = tables["steps"], tables["llm_calls"]
    ledger_path = str(results.path / "ledger.parquet")
    rows: list[dict[str, Any]] = []
    details = evidence.manifest.get("backend_details", {})
    cut_off = {
        name: [str(r) for r in ((d or {}).get("not_judged") or {}).get("run_ids", [])]
        for name, d in details.items()
    }
    try:
        for backend in dict.fromkeys(str(p["backend"]) for p in persisted):
            rows.extend(
                judge_runs(
                    scenario,
                    backend,
                    [p for p in persisted if p["backend"] == backend],
                    _ledger_dicts(tables["ledger"], backend, ledger_path),
                    steps[steps["backend"] == backend] if not steps.empty else steps,
                    _records(calls[calls["backend"] == backend]) if not calls.empty else [],
                )
            )
        now = pd.DataFrame(rows)
        walls = {name: _wall(d) for name, d in details.items()}
        summary = summarize(
            now,
            steps,
            walls,
            tables["faults"],
            tables.get("floors"),
            ledger=tables["ledger"],  # stray effects are re-counted, not taken on trust
            not_judged=cut_off,
        )
    except DurabenchError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError) as exc:
        # the checks above cover what is known to go wrong; this names the files when
        # damage slips past them, rather than a traceback
        raise ResultsError(
            f"{results.path}: the stored evidence cannot be judged (persisted.jsonl or a "
            f"table is damaged: {type(exc).__name__}: {_short(exc)})"
        ) from None
    stored = tables["runs"]
    differences = []
    merged = stored.merge(now, on=["backend", "run_id"], how="outer", suffixes=("_stored", "_now"))
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
    return Recheck(now, summary, differences)


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:160]


def _wall(details: dict[str, Any]) -> float:
    value = details.get("wall_s")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): v for k, v in row.items()} for row in frame.to_dict("records")]


def _norm(value: Any) -> bool | None:
    if value is None or (isinstance(value, float) and value != value):
        return None
    return bool(value)
