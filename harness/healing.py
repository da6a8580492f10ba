"""What must be undone if durabench dies: a small state file per running backend.

Each entry is a typed heal entry (harness/heal_entry.py) naming something durabench
changed (a stopped process, a proxy link with a fault, a service fault switch) or
started (a component process, a container, a Kubernetes object). `durabench heal`
reads every file, turns each entry back into its class through the registry of entry
kinds, and calls its `undo`: no kind is matched by name here. Processes are only
touched when their pid AND their kernel start time match what was recorded, so a
recycled pid belonging to someone else is never signalled; containers and Kubernetes
objects only when they still carry the run-id label their entry recorded.

Importing this module registers every kind durabench ships: the platforms' (processes,
containers, Kubernetes objects) and the injectors' (harness/injectors/).
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import harness.platform.docker
import harness.platform.kubernetes.healing
import harness.platform.local
from harness.heal_entry import HealEntry, entry_from_json, process_start_time, same_process
from harness.injectors import load_injectors

__all__ = [
    "STATE_DIR",
    "ActiveFaults",
    "HealReport",
    "heal_all",
    "live_runs",
    "process_start_time",
]

STATE_DIR = Path(os.environ.get("DURABENCH_STATE_DIR", "/tmp/durabench-state"))
# the modules whose entry kinds `durabench heal` must know, besides the injectors'
ENTRY_MODULES = (
    harness.platform.local,
    harness.platform.docker,
    harness.platform.kubernetes.healing,
)


class ActiveFaults:
    """The state file of one backend run: entries keyed by a name, rewritten atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._entries: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def _save(self) -> None:
        owner = {"pid": os.getpid(), "start_time": process_start_time(os.getpid())}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(
            json.dumps({"owner": owner, "entries": self._entries}, indent=1, sort_keys=True)
        )
        tmp.replace(self.path)

    def add(self, key: str, entry: HealEntry) -> None:
        with self._lock:
            self._entries[key] = entry.to_json()
            self._save()

    def remove(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)
            self._save()

    def close(self) -> None:
        """Everything was undone: the file goes."""
        with self._lock:
            self._entries.clear()
            self.path.unlink(missing_ok=True)


@dataclass
class HealReport:
    files: int = 0
    still_running: int = 0
    continued: int = 0
    killed: int = 0
    links_healed: int = 0
    switches_reset: int = 0
    containers_unpaused: int = 0
    containers_removed: int = 0
    kube_objects_deleted: int = 0
    errors: int = 0

    def count(self, entry: HealEntry) -> None:
        """One more entry undone, under the counter its kind names."""
        setattr(self, entry.counter, getattr(self, entry.counter) + 1)


def _owner_alive(state: dict[str, Any]) -> bool:
    owner = state.get("owner") or {}
    return same_process(int(owner.get("pid") or 0), owner.get("start_time"))


def live_runs(state_dir: Path = STATE_DIR) -> frozenset[str]:
    """Run ids (the "run" of entries) whose durabench is still running: sweeps spare them."""
    runs: set[str] = set()
    for path in state_dir.glob("*.json"):
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(state, dict) and _owner_alive(state):
            runs.update(str(e["run"]) for e in state.get("entries", {}).values() if e.get("run"))
    return frozenset(runs)


def _undo(data: dict[str, Any], report: HealReport) -> None:
    try:
        entry = entry_from_json(data)
        if entry.undo():
            report.count(entry)
    except (OSError, ValueError, ImportError):
        report.errors += 1  # the thing is gone or unreachable: nothing left to undo here


def heal_all(state_dir: Path = STATE_DIR) -> HealReport:
    """Undo whatever active-fault files say is left; remove the files once done."""
    load_injectors()  # their entry kinds
    report = HealReport()
    for path in sorted(state_dir.glob("*.json")):
        report.files += 1
        try:
            state = json.loads(path.read_text())
            entries: dict[str, dict[str, Any]] = state["entries"]
        except (OSError, ValueError, KeyError, TypeError):
            path.unlink(missing_ok=True)
            continue
        if _owner_alive(state):
            report.still_running += 1  # its own durabench heals it; never pull the rug
            continue
        # continue stopped processes and unpause containers first, so an end below works
        thawed = [e for e in entries.values() if _thaws(e)]
        for data in thawed + [e for e in entries.values() if not _thaws(e)]:
            _undo(data, report)
        path.unlink(missing_ok=True)
    return report


def _thaws(data: dict[str, Any]) -> bool:
    try:
        return entry_from_json(data).thaw_first
    except ValueError:
        return False
