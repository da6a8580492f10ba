"""Results directories into pandas: one run, many runs, or a whole suite.

Every frame gets two columns that say where a row came from: `results` (the run's
directory name, its bench id) and `fault_class` (the scenario's name and the fault
kinds it injects, e.g. `chaos-kill (kill)`), so rows of many directories can be
compared in one frame. A suite directory (`matrix.json` + `cells/`) stands for the
results of its cells; a cell whose harness failed is listed in `missing`, not fatal.
A table a run did not get to write is empty; a file that is there but damaged (not
JSON, truncated parquet, wrong columns) is one ResultsError naming it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from harness.errors import ResultsError
from harness.evaluate import step_table
from harness.results import ResultsDir, read_json_file, read_parquet_file

__all__ = ["Loaded", "ResultSet", "fault_class_of", "load_one", "load_results"]

# service time of these phases is spent inside the LLM; of `act`, inside the tool service
LLM_PHASES = ("reason", "verify")
TOOL_PHASES = ("act",)
TABLES = ("steps", "runs", "faults")


def fault_class_of(manifest: dict[str, Any]) -> str:
    """`<scenario name> (<fault kinds in schedule order>)`, or `(no faults)`."""
    scenario = manifest.get("scenario") or {}
    name = str(scenario.get("name") or manifest.get("bench_id") or "?")
    kinds: list[str] = []
    for fault in scenario.get("faults") or []:
        kind = str(fault.get("kind", "?"))
        if kind not in kinds:
            kinds.append(kind)
    return f"{name} ({', '.join(kinds) if kinds else 'no faults'})"


def _read_summary(path: Path) -> dict[str, dict[str, Any]]:
    """summary.json (absent: {}, a run that stopped before its summary): backend -> figures."""
    summary = read_json_file(path, optional=True)
    for backend, figures in summary.items():
        if not isinstance(figures, dict):
            raise ResultsError(f"{path}: `{backend}` must be an object of figures")
    return summary


def _enrich_steps(steps: pd.DataFrame) -> pd.DataFrame:
    """step_table plus where the time went (LLM, tool) and when the step committed."""
    table = step_table(steps)
    columns = [*table.columns, "llm_ms", "tool_ms", "commit_end", "t_s"]
    if table.empty:
        return pd.DataFrame(columns=columns)
    keys = ["backend", "run_id", "step"]
    timed = steps[steps["outcome"] != "invoke"]
    for name, phases in (("llm_ms", LLM_PHASES), ("tool_ms", TOOL_PHASES)):
        part = timed[timed["phase"].isin(phases)].groupby(keys)["service_ms"].sum()
        table = table.merge(part.rename(name).reset_index(), on=keys, how="left")
        table[name] = table[name].fillna(0.0)
    commits = steps[(steps["phase"] == "commit") & (steps["outcome"] == "ok")]
    ends = commits.groupby(keys)["end"].max().rename("commit_end").reset_index()
    table = table.merge(ends, on=keys, how="left")
    began = steps.groupby("backend")["start"].min().rename("began")
    table = table.join(began, on="backend")
    table["t_s"] = table["commit_end"] - table["began"]
    return table[columns]


@dataclass(frozen=True)
class Loaded:
    """One results directory, read once."""

    path: Path
    manifest: dict[str, Any]
    summary: dict[str, dict[str, Any]]
    steps: pd.DataFrame  # steps.parquet as written
    runs: pd.DataFrame  # runs.parquet
    faults: pd.DataFrame  # faults.parquet (empty when the scenario had none)
    per_step: pd.DataFrame  # one row per committed step: step/llm/tool/overhead ms, t_s

    @property
    def label(self) -> str:
        return str(self.manifest.get("bench_id") or self.path.name)

    @property
    def fault_class(self) -> str:
        return fault_class_of(self.manifest)

    @property
    def backends(self) -> list[str]:
        named = [str(b) for b in self.manifest.get("backends") or []]
        return named or sorted(self.summary)

    @property
    def began(self) -> dict[str, float]:
        """backend -> when its first step started (timelines count from here)."""
        if self.steps.empty:
            return {}
        return {str(k): float(v) for k, v in self.steps.groupby("backend")["start"].min().items()}


def load_one(path: Path) -> Loaded:
    """One results directory; tables it lacks (a run that stopped early) are empty."""
    path = Path(path)
    results = ResultsDir.open(path)
    manifest = results.read_manifest()
    summary = _read_summary(path / "summary.json")
    frames = results.read_tables(TABLES)
    steps = frames["steps"]
    return Loaded(
        path=path,
        manifest=manifest,
        summary=summary,
        steps=steps,
        runs=frames["runs"],
        faults=frames["faults"],
        per_step=_enrich_steps(steps) if not steps.empty else _enrich_steps(pd.DataFrame()),
    )


def _suite_cells(suite: Path) -> tuple[list[Path], list[dict[str, Any]]]:
    """The results directories of a suite's cells, and the cells without any."""
    matrix = read_json_file(suite / "matrix.json")
    cells = matrix.get("cells") or []
    if not isinstance(cells, list) or not all(isinstance(c, dict) for c in cells):
        raise ResultsError(f"{suite / 'matrix.json'}: `cells` must be a list of objects")
    found: list[Path] = []
    missing: list[dict[str, Any]] = []
    for cell in cells:
        where = Path(str(cell.get("results") or ""))
        candidates = [where, suite / "cells" / where.name] if cell.get("results") else []
        hit = next((c for c in candidates if (c / "manifest.json").is_file()), None)
        if hit is None:
            missing.append(cell)
        else:
            found.append(hit)
    return found, missing


def _tag(frames: Iterable[tuple[Loaded, pd.DataFrame]]) -> pd.DataFrame:
    tagged = [
        frame.assign(results=item.label, fault_class=item.fault_class)
        for item, frame in frames
        if not frame.empty
    ]
    return pd.concat(tagged, ignore_index=True) if tagged else pd.DataFrame()


@dataclass
class ResultSet:
    """Everything a report or a comparison reads: the directories and their rows, tagged."""

    items: list[Loaded]
    missing: list[dict[str, Any]] = field(default_factory=list)  # suite cells with no results
    sweeps: list[pd.DataFrame] = field(default_factory=list)  # sweep.parquet of sweep dirs

    def frame(self, name: str) -> pd.DataFrame:
        """`steps`, `runs`, `faults` or `per_step` of every directory, with `results` and
        `fault_class` columns."""
        if name not in (*TABLES, "per_step"):
            raise ResultsError(f"no table {name!r}; tables: {', '.join((*TABLES, 'per_step'))}")
        return _tag((item, getattr(item, name)) for item in self.items)

    @property
    def backends(self) -> list[str]:
        seen: list[str] = []
        for item in self.items:
            seen += [b for b in item.backends if b not in seen]
        return seen

    @property
    def fault_classes(self) -> list[str]:
        seen: list[str] = []
        for item in self.items:
            if item.fault_class not in seen:
                seen.append(item.fault_class)
        return seen


def load_results(paths: Iterable[Path]) -> ResultSet:
    """Results directories and suite directories (expanded to their cells), in order."""
    items: list[Loaded] = []
    missing: list[dict[str, Any]] = []
    sweeps: list[pd.DataFrame] = []
    for raw in paths:
        path = Path(raw)
        if (path / "sweep.parquet").is_file():
            # a scaling sweep: its grid feeds the scaling section; its cells (ordinary
            # runs at many sizes) would blur the latency tables, so they are not expanded
            sweeps.append(read_parquet_file(path / "sweep.parquet"))
        elif (path / "matrix.json").is_file():
            cells, absent = _suite_cells(path)
            items += [load_one(c) for c in cells]
            missing += absent
        elif (path / "manifest.json").is_file():
            items.append(load_one(path))
        elif not path.exists():
            raise ResultsError(f"{path}: no such directory")
        else:
            raise ResultsError(
                f"{path}: neither a results directory (manifest.json) "
                "nor a suite directory (matrix.json)"
            )
    if not items:
        raise ResultsError(
            "no results to read: give at least one results or suite directory "
            "(a sweep directory alone feeds only the scaling section)"
        )
    return ResultSet(items, missing, sweeps)
