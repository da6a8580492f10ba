"""What must be undone if durabench dies: a small state file per running backend.

Each entry names something durabench changed (a stopped process, a proxy link with a
fault, a service fault switch) or started (a component process). `durabench heal`
reads every file and undoes what is left. Processes are only touched when their pid
AND their kernel start time match what was recorded, so a recycled pid belonging
to someone else is never signalled. Containers (docker) and Kubernetes objects are
only touched when they still carry the run-id label their entry recorded.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "STATE_DIR",
    "ActiveFaults",
    "HealReport",
    "heal_all",
    "live_runs",
    "process_start_time",
]

STATE_DIR = Path(os.environ.get("DURABENCH_STATE_DIR", "/tmp/durabench-state"))


def process_start_time(pid: int) -> int | None:
    """The kernel's start time of a process (field 22 of /proc/PID/stat), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


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

    def add(self, key: str, entry: dict[str, Any]) -> None:
        with self._lock:
            self._entries[key] = entry
            self._save()

    def remove(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)
            self._save()

    def add_process(self, key: str, pid: int) -> None:
        self.add(key, {"type": "process", "pid": pid, "start_time": process_start_time(pid)})

    def add_stopped(self, key: str, pid: int, group: bool) -> None:
        entry = {
            "type": "stopped",
            "pid": pid,
            "group": group,
            "start_time": process_start_time(pid),
        }
        self.add(key, entry)

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


def _same_process(entry: dict[str, Any]) -> bool:
    """The recorded process is still the same one (pid and kernel start time match)."""
    pid = int(entry["pid"])
    return (
        pid > 0
        and entry.get("start_time") is not None
        and process_start_time(pid) == entry["start_time"]
    )


def _request(method: str, url: str, body: dict[str, Any] | None = None) -> None:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=3):
        pass


_FROZEN = ("stopped", "docker_paused")  # healed before anything is ended


def _heal_container(entry: dict[str, Any], report: HealReport) -> None:
    """Docker entries: only containers still labelled with the entry's run are touched."""
    try:
        from harness.platform.docker import heal_container
    except ImportError:
        report.errors += 1
        return
    done = heal_container(entry)
    if done == "unpaused":
        report.containers_unpaused += 1
    elif done == "removed":
        report.containers_removed += 1
    elif done == "unreachable":
        report.errors += 1


def _heal_kube(entry: dict[str, Any], report: HealReport) -> None:
    """Kubernetes entries: objects are deleted only when they carry the entry's run label."""
    try:
        from harness.platform.kubernetes.healing import heal_kube_entry
    except ImportError:
        report.errors += 1
        return
    if heal_kube_entry(entry):
        report.kube_objects_deleted += 1


def live_runs(state_dir: Path = STATE_DIR) -> frozenset[str]:
    """Run ids (the "run" of entries) whose durabench is still running: sweeps spare them."""
    runs: set[str] = set()
    for path in state_dir.glob("*.json"):
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(state, dict) and _same_process(state.get("owner") or {"pid": 0}):
            runs.update(str(e["run"]) for e in state.get("entries", {}).values() if e.get("run"))
    return frozenset(runs)


def heal_all(state_dir: Path = STATE_DIR) -> HealReport:
    """Undo whatever active-fault files say is left; remove the files once done."""
    report = HealReport()
    for path in sorted(state_dir.glob("*.json")):
        report.files += 1
        try:
            state = json.loads(path.read_text())
            entries: dict[str, dict[str, Any]] = state["entries"]
        except (OSError, ValueError, KeyError, TypeError):
            path.unlink(missing_ok=True)
            continue
        if _same_process(state.get("owner") or {"pid": 0}):
            report.still_running += 1  # its own durabench heals it; never pull the rug
            continue
        # continue stopped processes first, so a kill below can take effect
        ordered = sorted(entries.values(), key=lambda e: e.get("type") not in _FROZEN)
        for entry in ordered:
            try:
                kind = entry.get("type")
                if kind == "stopped" and _same_process(entry):
                    pid = int(entry["pid"])
                    if entry.get("group"):
                        os.killpg(pid, signal.SIGCONT)
                    else:
                        os.kill(pid, signal.SIGCONT)
                    report.continued += 1
                elif kind == "process" and _same_process(entry):
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(int(entry["pid"]), signal.SIGKILL)
                    report.killed += 1
                elif kind == "proxy":
                    _request("DELETE", f"{entry['control_url']}/links")
                    report.links_healed += 1
                elif kind == "switch":
                    _request("PUT", f"{entry['url']}/_durabench/faults", {})
                    report.switches_reset += 1
                elif kind in ("container", "docker_paused"):
                    _heal_container(entry, report)
                elif kind == "kube":
                    _heal_kube(entry, report)
            except (OSError, ValueError):
                report.errors += 1  # the thing is gone: nothing left to undo
        path.unlink(missing_ok=True)
    return report
