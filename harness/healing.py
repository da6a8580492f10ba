"""What must be undone if durabench dies: a small state file per running backend.

Each entry is a typed heal entry (harness/heal_entry.py) naming something durabench
changed (stopped processes, a proxy link with a fault, a service fault switch) or
started (a component process, a container, a Kubernetes object). `durabench heal`
reads every file, turns each entry back into its class through the registry of entry
kinds, and calls its `undo`: no kind is matched by name here. Processes are only
touched when their pid AND their kernel start time match what was recorded, so a
recycled pid belonging to someone else is never signalled; containers and Kubernetes
objects only when they still carry the run-id label their entry recorded.

Only state the invoking user wrote is trusted (harness/state_dir.py: a private
directory, files of this user, no symbolic link followed). A bad entry (a field
missing or of the wrong type, an unknown kind) is reported and skipped, and kept in
its file; everything else is still healed. A file also names its results directory:
once healed, a manifest still saying `running` is marked `died`, with `healed_at`.

Importing this module registers every kind durabench ships: the platforms' (processes,
containers, Kubernetes objects) and the injectors' (harness/injectors/).
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import harness.platform.docker
import harness.platform.kubernetes.healing
import harness.platform.local
from harness.heal_entry import HealEntry, entry_from_json, process_start_time, same_process
from harness.injectors import load_injectors
from harness.state_dir import (
    StateDir,
    StateDirError,
    default_state_dir,
    read_private,
    write_private,
)

__all__ = [
    "ActiveFaults",
    "HealReport",
    "default_state_dir",
    "heal_all",
    "live_runs",
    "mark_died",
    "process_start_time",
]

# the modules whose entry kinds `durabench heal` must know, besides the injectors'
ENTRY_MODULES = (
    harness.platform.local,
    harness.platform.docker,
    harness.platform.kubernetes.healing,
)
DIED = "died"  # the manifest status `heal` gives a run whose durabench died


class ActiveFaults:
    """The state file of one backend run: entries keyed by a name, rewritten atomically
    in the checked state directory (StateDirError when it cannot be trusted). The file
    exists from the start, naming its results directory, so a death before any entry
    still lets `heal` mark the run."""

    def __init__(self, path: Path, *, results: Path | None = None, backend: str = "") -> None:
        self.path = path
        self._about = {"results": str(results.resolve()) if results else None, "backend": backend}
        self._entries: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._closed = False
        with self._lock:
            self._save()

    def _save(self) -> None:
        if self._closed:
            return  # the run is over: a late entry (a restart racing the stop) is moot
        owner = {"pid": os.getpid(), "start_time": process_start_time(os.getpid())}
        state = {"owner": owner, **self._about, "entries": self._entries}
        with StateDir(self.path.parent) as directory:
            directory.write(self.path.name, json.dumps(state, indent=1, sort_keys=True).encode())

    def add(self, key: str, entry: HealEntry) -> None:
        with self._lock:
            self._entries[key] = entry.to_json()
            self._save()

    def remove(self, key: str) -> None:
        with self._lock:
            if self._entries.pop(key, None) is not None:
                self._save()

    def close(self) -> None:
        """Everything was undone: the file goes."""
        with self._lock:
            self._entries.clear()
            self._closed = True
            with StateDir(self.path.parent) as directory:
                directory.unlink(self.path.name)


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
    errors: int = 0  # already gone, or unreachable
    skipped: int = 0  # bad entries, reported and kept
    refused: int = 0  # files (or the directory) not trusted
    manifests_marked: int = 0
    problems: list[str] = field(default_factory=list)  # one line each, for the user

    def count(self, entry: HealEntry) -> None:
        """One more entry undone, under the counter its kind names."""
        setattr(self, entry.counter, getattr(self, entry.counter) + 1)


class BadState(ValueError):
    """A state file that is not what durabench writes (the message names the field)."""


def _parse(raw: bytes) -> dict[str, Any]:
    try:
        state = json.loads(raw)
    except ValueError as exc:
        raise BadState(f"not JSON ({exc})") from None
    if not isinstance(state, dict):
        raise BadState(f"a state file is a JSON object, not {type(state).__name__}")
    if not isinstance(state.get("entries"), dict):
        raise BadState("field 'entries': missing or not an object")
    owner = state.get("owner")
    if not (
        isinstance(owner, dict)
        and isinstance(owner.get("pid"), int)
        and isinstance(owner.get("start_time"), int | None)
    ):
        raise BadState("field 'owner': missing, or without an integer pid and start_time")
    return state


def _owner_alive(state: dict[str, Any]) -> bool:
    owner = state["owner"]
    return same_process(int(owner["pid"]), owner["start_time"])


def _states(directory: StateDir, report: HealReport | None) -> list[tuple[str, dict[str, Any]]]:
    """Every state file that can be trusted and read, by name; the others are reported."""
    found = []
    for name in directory.names():
        shown = directory.path / name
        try:
            found.append((name, _parse(directory.read(name))))
        except FileNotFoundError:
            continue  # its run finished meanwhile
        except StateDirError as exc:
            if report is not None:
                report.refused += 1
                report.problems.append(f"{exc}; left alone")
        except BadState as exc:
            if report is not None:
                report.skipped += 1
                report.problems.append(f"state file {shown}: {exc}; left in place")
    return found


def live_runs(state_dir: Path | None = None) -> frozenset[str]:
    """Run ids (the "run" of entries) whose durabench is still running: sweeps spare them.
    An untrusted directory spares nothing (StateDirError)."""
    runs: set[str] = set()
    try:
        directory = StateDir(state_dir or default_state_dir(), create=False)
    except FileNotFoundError:
        return frozenset()
    with directory:
        for _, state in _states(directory, None):
            if _owner_alive(state):
                runs.update(
                    str(e["run"])
                    for e in state["entries"].values()
                    if isinstance(e, dict) and e.get("run")
                )
    return frozenset(runs)


def _undo(entry: HealEntry, report: HealReport) -> None:
    try:
        if entry.undo():
            report.count(entry)
    except (OSError, ValueError, ImportError):
        report.errors += 1  # the thing is gone or unreachable: nothing left to undo here


def _heal_file(directory: StateDir, name: str, state: dict[str, Any], report: HealReport) -> None:
    shown = directory.path / name
    good: list[HealEntry] = []
    bad: dict[str, Any] = {}
    for key, data in state["entries"].items():
        try:
            good.append(entry_from_json(data))
        except ValueError as exc:
            bad[key] = data
            report.skipped += 1
            report.problems.append(f"state file {shown}: entry {key!r} skipped: {exc}")
    # continue stopped processes and unpause containers first, so an end below works
    for entry in sorted(good, key=lambda e: not e.thaw_first):
        _undo(entry, report)
    if mark_died(state.get("results")):
        report.manifests_marked += 1
    if bad:
        state["entries"] = bad
        directory.write(name, json.dumps(state, indent=1, sort_keys=True).encode())
        report.problems.append(
            f"state file {shown}: kept with the {len(bad)} entry(ies) it could not heal"
        )
    else:
        directory.unlink(name)


def heal_all(state_dir: Path | None = None) -> HealReport:
    """Undo whatever the state files of dead durabench runs say is left; remove each file
    once done. StateDirError when the directory itself cannot be trusted."""
    load_injectors()  # their entry kinds
    report = HealReport()
    try:
        directory = StateDir(state_dir or default_state_dir(), create=False)
    except FileNotFoundError:
        return report  # nothing ever ran here
    with directory:
        for name, state in _states(directory, report):
            report.files += 1
            if _owner_alive(state):
                report.still_running += 1  # its own durabench heals it; never pull the rug
                continue
            _heal_file(directory, name, state, report)
    return report


def mark_died(results: Any) -> bool:
    """Mark the manifest of a results directory `died` (with `healed_at`) if it still
    says `running`: its durabench died and `heal` ended what it left. Only a manifest
    this user owns is read or written, never through a symbolic link."""
    if not isinstance(results, str) or not results:
        return False
    path = Path(results)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False  # moved or deleted: nothing to mark
    try:
        if os.fstat(fd).st_uid != os.geteuid():
            return False
        manifest = json.loads(read_private(fd, "manifest.json", path / "manifest.json"))
        if not isinstance(manifest, dict) or manifest.get("status") != "running":
            return False
        manifest.update(
            status=DIED,
            healed_at=time.time(),
            error=manifest.get("error")
            or "durabench died during the run; `durabench heal` ended what it left behind",
        )
        data = json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n"
        write_private(fd, "manifest.json", data.encode())
        return True
    except (OSError, ValueError, StateDirError):
        return False
    finally:
        os.close(fd)
