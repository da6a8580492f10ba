"""Where a LangGraph variant keeps its checkpoints and claim table (the bottom layer:
it imports nothing else of the backend)."""

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

from harness.errors import BackendError

__all__ = [
    "DSN_ENV",
    "SQLITE_TIMEOUT_S",
    "StoreSpec",
    "check_sqlite_writable",
    "sqlite_synchronous",
]

DSN_ENV = "DURABENCH_LANGGRAPH_DSN"  # how workers get the Postgres DSN (not on argv)
SQLITE_TIMEOUT_S = 30.0  # busy timeout: several worker processes share one file


@dataclass(frozen=True)
class StoreSpec:
    """Where one variant keeps checkpoints and the claim table. `dsn` carries the
    Postgres schema in `options`; it never goes on a command line."""

    variant: str
    sqlite_path: Path | None = None  # checkpoints (sqlite)
    claims_path: Path | None = None  # claim table (memory, sqlite: a file of its own)
    dsn: str | None = None  # checkpoints and claim table (postgres)
    schema: str | None = None


def check_sqlite_writable(path: Path, what: str) -> None:
    """One clear error when a SQLite file cannot be created or written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.closing(sqlite3.connect(path, timeout=SQLITE_TIMEOUT_S)) as db:
            db.execute("BEGIN IMMEDIATE")
            db.execute("ROLLBACK")
    except (OSError, sqlite3.Error) as exc:
        raise BackendError(
            f"{what}: cannot write the SQLite file {path} ({exc}); "
            "give a writable file with ?path=/some/dir/file.sqlite"
        ) from None


async def sqlite_synchronous(path: Path) -> str:
    """The `PRAGMA synchronous` the saver's connections run with (its default)."""
    async with aiosqlite.connect(path, timeout=SQLITE_TIMEOUT_S) as db:
        cursor = await db.execute("PRAGMA synchronous")
        row = await cursor.fetchone()
    names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
    return names.get(int(row[0]), str(row[0])) if row else "unknown"
