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

Private by default: creating a results directory sets the process umask to
`$DURABENCH_UMASK` (default 077), so the directory and everything durabench, its
services, workers and servers write there (the tool ledger included) is 0700 / 0600.
Every table and `persisted.jsonl` row carries the bench id it was written for, so a
file copied in from another results directory is recognised. Every reader names the
file and what is wrong with it (missing, empty, truncated, not JSON, wrong columns)
in one ResultsError, never a traceback.
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

from harness.checker import VERDICTS
from harness.errors import ResultsError

__all__ = [
    "COLUMNS",
    "DEFAULT_UMASK",
    "STAMP_KEY",
    "TABLES",
    "UMASK_ENV",
    "ResultsDir",
    "apply_umask",
    "collect_environment",
    "new_bench_id",
    "read_json_file",
    "read_parquet_file",
    "results_umask",
]

# the parquet tables of a results directory, as `read_tables` returns them
TABLES = ("steps", "runs", "ledger", "llm_calls", "faults", "floors")
# the columns a table with rows must have for `check`, the summary and the report to read
# it (a table may have more); NUMERIC and BOOLEAN name those whose values must be so typed
COLUMNS: dict[str, tuple[str, ...]] = {
    "steps": (
        "backend",
        "run_id",
        "step",
        "attempt",
        "phase",
        "outcome",
        "start",
        "end",
        "service_ms",
        "worker",
    ),
    "runs": (
        "backend",
        "run_id",
        "status",
        "passed",
        "finished_in_time",
        "steps_persisted",
        "bytes_persisted",
        *VERDICTS,
    ),
    "ledger": (
        "backend",
        "run_id",
        "seq",
        "step",
        "attempt",
        "tool",
        "idempotency_key",
        "applied",
        "request",
        "response",
        "started_at",
        "finished_at",
    ),
    "llm_calls": ("backend", "run_id"),
    "faults": ("backend", "kind", "outcome"),
    "floors": ("backend", "program"),
}
NUMERIC: dict[str, tuple[str, ...]] = {
    "steps": ("step", "attempt", "start", "end", "service_ms"),
    "runs": ("steps_persisted",),
    "ledger": ("seq", "step", "attempt", "started_at", "finished_at"),
}
BOOLEAN: dict[str, tuple[str, ...]] = {"runs": ("passed", *VERDICTS), "ledger": ("applied",)}
TEXT: dict[str, tuple[str, ...]] = {
    name: ("backend", "run_id") for name in ("steps", "runs", "ledger", "llm_calls")
}
STAMP_KEY = b"durabench.bench_id"  # parquet schema metadata: the bench id a table belongs to
UMASK_ENV = "DURABENCH_UMASK"
DEFAULT_UMASK = 0o077  # results are private: 0700 directories, 0600 files
ROOT_MODE = 0o711  # at least: others may pass the results root (a server's user), not list it

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


def results_umask() -> int:
    """The umask results are written with: `$DURABENCH_UMASK` (octal, e.g. 022 to let
    others read them), else 077 (private)."""
    text = os.environ.get(UMASK_ENV)
    if text is None or not text.strip():
        return DEFAULT_UMASK
    try:
        value = int(text.strip(), 8)
    except ValueError:
        value = -1
    if not 0 <= value <= 0o777:
        raise ResultsError(f"${UMASK_ENV}={text!r}: expected an octal umask such as 077 or 022")
    return value


def apply_umask() -> int:
    """Set the process umask to `results_umask()`: every file durabench and the processes
    it starts create from now on (results, the ledger, logs, server data) gets it."""
    mask = results_umask()
    os.umask(mask)
    return mask


def _decode_error(exc: Exception) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def read_json_file(path: Path, *, optional: bool = False) -> dict[str, Any]:
    """A JSON object from `path`; {} when it is absent and `optional`. Anything else (not
    text, not JSON, a list) is one ResultsError naming the file and what is wrong."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        if optional:
            return {}
        raise ResultsError(f"{path.parent}: missing {path.name}") from None
    except OSError as exc:
        raise ResultsError(f"{path}: cannot read ({_decode_error(exc)})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ResultsError(f"{path}: not a JSON file (binary content, not UTF-8 text)") from None
    if not text.strip():
        raise ResultsError(f"{path}: empty file, expected a JSON object")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        raise ResultsError(f"{path}: not valid JSON (nested too deeply)") from None
    if not isinstance(data, dict):
        raise ResultsError(f"{path}: expected a JSON object, got a JSON {_json_type(data)}")
    return data


def _json_type(value: Any) -> str:
    names = {list: "list", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def read_parquet_file(path: Path) -> pd.DataFrame:
    """A parquet table; an unreadable file (empty, truncated, not parquet) is one
    ResultsError naming it."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ResultsError(f"{path.parent}: missing {path.name}") from None
    except OSError as exc:
        raise ResultsError(f"{path}: cannot read ({_decode_error(exc)})") from None
    if size == 0:
        raise ResultsError(f"{path}: empty file (0 bytes), not a parquet table")
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # a damaged file fails anywhere in pyarrow or pandas
        raise ResultsError(
            f"{path}: not a readable parquet table (truncated or damaged: {_decode_error(exc)})"
        ) from None


def _parquet_stamp(path: Path) -> str | None:
    import pyarrow.parquet as pq

    try:
        metadata = pq.read_schema(path).metadata or {}
    except Exception as exc:  # (see read_parquet_file)
        raise ResultsError(f"{path}: not a readable parquet table ({_decode_error(exc)})") from None
    stamp = metadata.get(STAMP_KEY)
    return stamp.decode("utf-8", "replace") if stamp is not None else None


def check_columns(name: str, frame: pd.DataFrame, path: Path) -> None:
    """A table with rows has the columns `check` and the report read, typed as they read
    them; else one ResultsError naming the file and the columns."""
    if frame.empty:
        return
    missing = [c for c in COLUMNS.get(name, ()) if c not in frame.columns]
    if missing:
        raise ResultsError(
            f"{path}: not a durabench {name} table: missing column"
            f"{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
        )
    for column in NUMERIC.get(name, ()):
        series = frame[column]
        if not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
            raise ResultsError(f"{path}: column {column} holds {series.dtype}, expected numbers")
    for column in BOOLEAN.get(name, ()):
        series = frame[column]
        if not pd.api.types.is_bool_dtype(series) and not all(
            v is None or isinstance(v, bool) or v != v for v in series.tolist()
        ):
            raise ResultsError(f"{path}: column {column} holds {series.dtype}, expected true/false")
    for column in TEXT.get(name, ()):
        if not all(isinstance(v, str) for v in frame[column].tolist()):
            raise ResultsError(f"{path}: column {column} holds values that are not text")


@dataclass(frozen=True)
class ResultsDir:
    path: Path

    @classmethod
    def create(cls, root: Path, bench_id: str) -> ResultsDir:
        """A new, private results directory (see `apply_umask`): the root is created
        passable but not listable by others, the run's directory 0700."""
        mask = apply_umask()
        if not root.exists():
            root.mkdir(parents=True, exist_ok=True)
            root.chmod(0o777 & ~mask | ROOT_MODE)
        path = root / bench_id
        path.mkdir(mode=0o777 & ~mask, exist_ok=False)
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

    @property
    def bench_id(self) -> str:
        """The id the tables are stamped with: the manifest's (a directory keeps it when
        it is moved or renamed), else the directory's name, which it was created with."""
        try:
            recorded = json.loads((self.path / "manifest.json").read_text()).get("bench_id")
        except (OSError, ValueError, AttributeError):
            recorded = None
        return recorded if isinstance(recorded, str) else self.path.name

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

    def read_json(self, name: str, *, optional: bool = False) -> dict[str, Any]:
        """A JSON object; {} when absent and `optional`; else one ResultsError."""
        return read_json_file(self.path / name, optional=optional)

    def read_manifest(self) -> dict[str, Any]:
        """manifest.json, with the fields every reader relies on checked: `scenario` an
        object (with a name and a list of fault objects), `backends` a list of names."""
        path = self.path / "manifest.json"
        manifest = read_json_file(path)
        scenario = manifest.get("scenario")
        if scenario is None:
            raise ResultsError(f"{path}: no `scenario` (every results manifest records it)")
        if not isinstance(scenario, dict):
            raise ResultsError(f"{path}: `scenario` must be an object, got {_json_type(scenario)}")
        if not isinstance(scenario.get("name", ""), str):
            raise ResultsError(f"{path}: `scenario.name` must be text")
        faults = scenario.get("faults") or []
        if not isinstance(faults, list) or not all(isinstance(f, dict) for f in faults):
            raise ResultsError(f"{path}: `scenario.faults` must be a list of objects")
        backends = manifest.get("backends", [])
        if not isinstance(backends, list) or not all(isinstance(b, str) for b in backends):
            raise ResultsError(f"{path}: `backends` must be a list of backend names")
        for key in ("bench_id", "status"):
            if not isinstance(manifest.get(key, ""), str):
                raise ResultsError(f"{path}: `{key}` must be text")
        details = manifest.get("backend_details", {})
        if not isinstance(details, dict) or not all(isinstance(d, dict) for d in details.values()):
            raise ResultsError(f"{path}: `backend_details` must map backend names to objects")
        return manifest

    def update_manifest(self, **fields: Any) -> dict[str, Any]:
        manifest = self.read_json("manifest.json") if (self.path / "manifest.json").exists() else {}
        manifest.update(fields)
        self.write_json("manifest.json", manifest)
        return manifest

    # -- tables -------------------------------------------------------------------------

    def _write_parquet(self, name: str, frame: pd.DataFrame) -> None:
        """Atomically, stamped with this directory's bench id (schema metadata)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(frame, preserve_index=False)
        metadata = {**(table.schema.metadata or {}), STAMP_KEY: self.bench_id.encode()}
        tmp = self.path / f".{name}.parquet.tmp"
        pq.write_table(table.replace_schema_metadata(metadata), tmp)
        tmp.replace(self.path / f"{name}.parquet")

    def write_table(self, name: str, rows: list[dict[str, Any]]) -> None:
        """Write `<name>.parquet` atomically (replacing an earlier partial version)."""
        self._write_parquet(name, pd.DataFrame(rows))

    def append_table(self, name: str, rows: list[dict[str, Any]]) -> None:
        """Add rows to `<name>.parquet` (one backend at a time, so a crash keeps earlier ones)."""
        existing = self.read_table(name) if (self.path / f"{name}.parquet").exists() else None
        frame = pd.DataFrame(rows)
        if existing is not None and not existing.empty:
            frame = pd.concat([existing, frame], ignore_index=True) if rows else existing
        self._write_parquet(name, frame)

    def read_table(self, name: str) -> pd.DataFrame:
        """`<name>.parquet`, readable and with the columns its readers need (`COLUMNS`)."""
        path = self.path / f"{name}.parquet"
        frame = read_parquet_file(path)
        check_columns(name, frame, path)
        return frame

    def table_stamp(self, name: str) -> str | None:
        """The bench id `<name>.parquet` was written for (None: written before stamps)."""
        return _parquet_stamp(self.path / f"{name}.parquet")

    def read_tables(
        self, names: Sequence[str] = TABLES, required: Sequence[str] = ()
    ) -> dict[str, pd.DataFrame]:
        """The named tables, each empty when its file is absent (a run that stopped
        early) unless it is `required`: the one reader that `check`, the summary and the
        report share. A file that is there but damaged is always an error."""
        tables: dict[str, pd.DataFrame] = {}
        for name in names:
            path = self.path / f"{name}.parquet"
            if name in required or path.exists() or path.is_symlink():
                tables[name] = self.read_table(name)
            else:
                tables[name] = pd.DataFrame()
        return tables

    def append_jsonl(self, name: str, rows: list[dict[str, Any]]) -> None:
        """Append rows, each stamped with this directory's bench id."""
        with (self.path / name).open("a", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps({**row, "bench_id": self.bench_id}, sort_keys=True))
                handle.write("\n")

    def read_jsonl(self, name: str) -> list[dict[str, Any]]:
        """One JSON object per line; a torn or damaged line is one ResultsError naming the
        file and the line."""
        path = self.path / name
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise ResultsError(f"{self.path}: missing {name}") from None
        except OSError as exc:
            raise ResultsError(f"{path}: cannot read ({_decode_error(exc)})") from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ResultsError(f"{path}: binary content, expected JSON lines (UTF-8)") from None
        rows: list[dict[str, Any]] = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ResultsError(
                    f"{path}: line {number} is not valid JSON, a torn or damaged line "
                    f"({exc.msg} at column {exc.colno})"
                ) from None
            except RecursionError:
                raise ResultsError(f"{path}: line {number} is nested too deeply") from None
            if not isinstance(row, dict):
                raise ResultsError(
                    f"{path}: line {number}: expected a JSON object, got a JSON {_json_type(row)}"
                )
            rows.append(row)
        return rows
