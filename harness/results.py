"""One self-describing directory per durabench run.

```
results/<run-id>/manifest.json    scenario, backends, platform, versions, host, commit, seed, status
                  steps.parquet    one row per step attempt and phase (from measurements/*.jsonl)
                  runs.parquet     one row per agent run and backend, with verdicts
                  persisted.jsonl  what each backend's inspect() read back (for `durabench check`)
                  ledger.parquet   the tool ledger of every backend
                  llm_calls.parquet
                  summary.json
                  <backend>/       services' raw files, measurements/*.jsonl, logs/
results/latest -> <run-id>
```

The manifest is written first with status `running` and rewritten at the end with
`complete`, `interrupted` or `failed`, so a partial directory never looks complete.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from harness.errors import ResultsError

__all__ = ["TABLES", "ResultsDir", "collect_environment", "new_bench_id"]

# the parquet tables of a results directory, as `read_tables` returns them
TABLES = ("steps", "runs", "ledger", "llm_calls", "faults", "floors")

PACKAGES = (
    "durabench",
    "aiohttp",
    "pydantic",
    "pandas",
    "pyarrow",
    "temporalio",
    "langgraph",
    "langgraph-checkpoint-sqlite",
    "langgraph-checkpoint-postgres",
    "psycopg",
    "dbos",
)


def new_bench_id(scenario_name: str) -> str:
    return f"{time.strftime('%Y%m%dT%H%M%S')}-{scenario_name}-{uuid.uuid4().hex[:6]}"


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=12"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def collect_environment() -> dict[str, Any]:
    """Host, interpreter, package versions and commit: what a reader needs to reproduce."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {
        "host": socket.gethostname(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "packages": versions,
        "git_commit": _git_commit(),
    }


@dataclass(frozen=True)
class ResultsDir:
    path: Path

    @classmethod
    def create(cls, root: Path, bench_id: str) -> ResultsDir:
        path = root / bench_id
        path.mkdir(parents=True, exist_ok=False)
        latest = root / "latest"
        try:
            if latest.is_symlink() or latest.exists():
                latest.unlink()
            latest.symlink_to(bench_id)
        except OSError:
            pass  # a convenience only
        return cls(path)

    @classmethod
    def open(cls, path: Path) -> ResultsDir:
        if not (path / "manifest.json").is_file():
            raise ResultsError(f"{path}: not a durabench results directory (no manifest.json)")
        return cls(path)

    def backend_dir(self, backend: str) -> Path:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in backend)
        path = self.path / safe
        path.mkdir(parents=True, exist_ok=True)
        return path

    # -- manifest and summary ---------------------------------------------------------

    def write_json(self, name: str, data: dict[str, Any]) -> None:
        """Write atomically: a reader never sees half a file."""
        tmp = self.path / f".{name}.tmp"
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
        tmp.replace(self.path / name)

    def read_json(self, name: str) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads((self.path / name).read_text())
        except FileNotFoundError:
            raise ResultsError(f"{self.path}: missing {name}") from None
        return data

    def update_manifest(self, **fields: Any) -> dict[str, Any]:
        manifest = self.read_json("manifest.json") if (self.path / "manifest.json").exists() else {}
        manifest.update(fields)
        self.write_json("manifest.json", manifest)
        return manifest

    # -- tables -------------------------------------------------------------------------

    def write_table(self, name: str, rows: list[dict[str, Any]]) -> None:
        """Write `<name>.parquet` atomically (replacing an earlier partial version)."""
        frame = pd.DataFrame(rows)
        tmp = self.path / f".{name}.parquet.tmp"
        frame.to_parquet(tmp, index=False)
        tmp.replace(self.path / f"{name}.parquet")

    def append_table(self, name: str, rows: list[dict[str, Any]]) -> None:
        """Add rows to `<name>.parquet` (one backend at a time, so a crash keeps earlier ones)."""
        existing = self.read_table(name) if (self.path / f"{name}.parquet").exists() else None
        frame = pd.DataFrame(rows)
        if existing is not None and not existing.empty:
            frame = pd.concat([existing, frame], ignore_index=True) if rows else existing
        tmp = self.path / f".{name}.parquet.tmp"
        frame.to_parquet(tmp, index=False)
        tmp.replace(self.path / f"{name}.parquet")

    def read_table(self, name: str) -> pd.DataFrame:
        path = self.path / f"{name}.parquet"
        if not path.exists():
            raise ResultsError(f"{self.path}: missing {name}.parquet")
        return pd.read_parquet(path)

    def read_tables(self, names: Sequence[str] = TABLES) -> dict[str, pd.DataFrame]:
        """The named tables, each empty when its file is absent (a run that stopped
        early): the one reader that `check`, the summary and the report share."""
        tables: dict[str, pd.DataFrame] = {}
        for name in names:
            path = self.path / f"{name}.parquet"
            tables[name] = pd.read_parquet(path) if path.exists() else pd.DataFrame()
        return tables

    def append_jsonl(self, name: str, rows: list[dict[str, Any]]) -> None:
        with (self.path / name).open("a", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, sort_keys=True) + "\n")

    def read_jsonl(self, name: str) -> list[dict[str, Any]]:
        path = self.path / name
        if not path.exists():
            raise ResultsError(f"{self.path}: missing {name}")
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
