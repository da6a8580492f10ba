"""Healing: typed entries survive the state file and `heal_all` undoes them from another
process, touching only what they identify."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.heal_entry import HealEntry, UnknownEntry, entry_from_json, process_start_time
from harness.healing import ActiveFaults, heal_all
from harness.injectors.network import ProxyLink, ProxyLinks
from harness.injectors.services import ServiceSwitch
from harness.platform.docker import ContainerPaused, ContainerStarted
from harness.platform.kubernetes.healing import KubeObject
from harness.platform.local import ProcessStarted, ProcessStopped

ENTRIES: list[HealEntry] = [
    ProcessStarted(123, 456),
    ProcessStopped(123, True, 456),
    ContainerStarted("abc", "bench-1"),
    ContainerPaused("abc", "bench-1"),
    KubeObject("ctx", "ns", None, "NetworkPolicy", "p-1", "bench-1", names=("p-1", "p-2")),
    KubeObject("ctx", "ns", "/k", "Deployment", "w", "bench-1", also=(("Service", "w"),)),
    ProxyLinks("http://127.0.0.1:9"),
    ProxyLink("http://127.0.0.1:9", "worker->llm"),
    ServiceSwitch("http://127.0.0.1:9"),
]


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: type(e).__name__)
def test_an_entry_reads_back_from_json_as_the_same_typed_entry(entry: HealEntry) -> None:
    data = json.loads(json.dumps(entry.to_json()))
    assert data["type"] == entry.tag
    assert entry_from_json(data) == entry


def test_an_unknown_kind_of_entry_is_refused_by_name() -> None:
    with pytest.raises(UnknownEntry, match="'meteor'"):
        entry_from_json({"type": "meteor", "pid": 1})


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(["sleep", "60"], start_new_session=True)
    yield process
    if process.poll() is None:
        process.kill()
    process.wait()


def proc_state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def leave_behind(state_dir: Path, entries: dict[str, HealEntry]) -> Path:
    """A state file as a durabench that died would leave it (its owner is gone)."""
    active = ActiveFaults(state_dir / "dead-run.json")
    for key, entry in entries.items():
        active.add(key, entry)
    state = json.loads(active.path.read_text())
    state["owner"] = {"pid": 0, "start_time": None}
    active.path.write_text(json.dumps(state))
    return active.path


def test_heal_continues_a_stopped_process_before_it_ends_it(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    os.kill(sleeper.pid, signal.SIGSTOP)
    for _ in range(100):  # liveness bound: the kernel stops it at once
        if proc_state(sleeper.pid) == "T":
            break
        time.sleep(0.01)
    started = process_start_time(sleeper.pid)
    path = leave_behind(
        tmp_path,
        {
            "started:sleeper": ProcessStarted(sleeper.pid, started),
            "0.0:0": ProcessStopped(sleeper.pid, False, started),
        },
    )
    report = heal_all(tmp_path)
    assert (report.files, report.continued, report.killed, report.errors) == (1, 1, 1, 0)
    assert sleeper.wait(timeout=10) == -signal.SIGKILL
    assert not path.exists()


def test_heal_leaves_a_recycled_pid_alone_and_counts_what_is_unreachable(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    started = process_start_time(sleeper.pid)
    assert started is not None
    leave_behind(
        tmp_path,
        {
            "started:other": ProcessStarted(sleeper.pid, started + 1),  # not the same process
            "proxy": ProxyLinks("http://127.0.0.1:9"),  # nothing listens there
        },
    )
    report = heal_all(tmp_path)
    assert (report.killed, report.links_healed, report.errors) == (0, 0, 1)
    assert sleeper.poll() is None, "someone else's process is never signalled"


def test_heal_spares_the_state_of_a_durabench_that_is_still_running(tmp_path: Path) -> None:
    active = ActiveFaults(tmp_path / "live.json")
    active.add("proxy", ProxyLinks("http://127.0.0.1:9"))
    report = heal_all(tmp_path)
    assert (report.files, report.still_running) == (1, 1)
    assert active.path.exists()
    active.close()
