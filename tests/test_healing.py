"""Healing: typed entries survive the state file and `heal_all` undoes them from another
process, touching only what they identify."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.heal_entry import HealEntry, UnknownEntry, entry_from_json, process_start_time
from harness.healing import ActiveFaults, default_state_dir, heal_all
from harness.injectors.network import ProxyLink, ProxyLinks
from harness.injectors.services import ServiceSwitch
from harness.platform.docker import ContainerPaused, ContainerStarted
from harness.platform.kubernetes.healing import KubeObject
from harness.platform.local import ProcessStarted, ProcessStopped
from harness.state_dir import StateDirError

REPO = Path(__file__).resolve().parent.parent
DURABENCH = [sys.executable, "-m", "harness.cli"]

ENTRIES: list[HealEntry] = [
    ProcessStarted(123, 456),
    ProcessStopped(((123, 456), (124, None))),
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
            "0.0:0": ProcessStopped(((sleeper.pid, started),)),
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


# -- heal trusts only its own state (issue 17, item 2) ---------------------------------

NOBODY = 65534  # another local user


def plant(state_dir: Path, sleeper: subprocess.Popen[bytes], name: str = "planted") -> Path:
    """A state file as another user could plant it: an entry that ends the sleeper."""
    path = state_dir / f"{name}.json"
    entry = ProcessStarted(sleeper.pid, process_start_time(sleeper.pid)).to_json()
    owner = {"pid": 0, "start_time": None}
    path.write_text(json.dumps({"owner": owner, "entries": {"started:x": entry}}))
    return path


def test_the_default_state_directory_is_per_user_and_created_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DURABENCH_STATE_DIR", raising=False)
    assert default_state_dir() == Path(f"/tmp/durabench-state-{os.geteuid()}")
    monkeypatch.setenv("DURABENCH_STATE_DIR", str(tmp_path / "state"))
    old = os.umask(0)  # even with a permissive umask
    try:
        active = ActiveFaults(default_state_dir() / "run.json")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
    assert stat.S_IMODE(active.path.stat().st_mode) == 0o600
    active.close()


@pytest.mark.parametrize("flaw", ["another-owner", "world-writable", "group-writable", "symlink"])
def test_heal_refuses_a_state_directory_it_cannot_trust_and_touches_nothing(
    tmp_path: Path, sleeper: subprocess.Popen[bytes], flaw: str
) -> None:
    """Another user created the directory first (or made it writable to all, or points
    it elsewhere) and planted an entry: a root `heal` must not SIGKILL the sleeper."""
    state_dir = tmp_path / "state"
    real = tmp_path / "elsewhere" if flaw == "symlink" else state_dir
    real.mkdir(mode=0o700)
    plant(real, sleeper)
    if flaw == "symlink":
        state_dir.symlink_to(real)
    elif flaw == "another-owner":
        os.chown(state_dir, NOBODY, NOBODY)
    else:
        os.chmod(state_dir, 0o777 if flaw == "world-writable" else 0o770)
    reason = {
        "another-owner": f"owned by uid {NOBODY}, not by you",
        "world-writable": "writable by others (mode 0777)",
        "group-writable": "writable by others (mode 0770)",
        "symlink": "it is a symbolic link",
    }[flaw]
    with pytest.raises(StateDirError, match=re.escape(reason)):
        heal_all(state_dir)
    with pytest.raises(StateDirError, match=re.escape(reason)):
        ActiveFaults(state_dir / "run.json")  # a run refuses it too, before it starts
    healed = subprocess.run(
        [*DURABENCH, "heal", "--state-dir", str(state_dir)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "300"},
    )
    assert healed.returncode == 2
    assert f"refusing state directory {state_dir}" in healed.stderr
    assert "Traceback" not in healed.stderr
    assert sleeper.poll() is None, "nothing was signalled"


def test_heal_refuses_files_of_another_user_and_symlinks_and_heals_its_own(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    foreign = plant(tmp_path, sleeper, "foreign")
    os.chown(foreign, NOBODY, NOBODY)
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "linked.json").symlink_to(plant(outside, sleeper, "target"))
    mine = subprocess.Popen(["sleep", "60"], start_new_session=True)
    leave_behind(tmp_path, {"started:mine": ProcessStarted(mine.pid, process_start_time(mine.pid))})

    report = heal_all(tmp_path)

    assert mine.wait(timeout=10) == -signal.SIGKILL, "its own file is healed"
    assert sleeper.poll() is None, "no planted entry was followed"
    assert report.refused == 2
    assert any(f"owned by uid {NOBODY}" in p and "foreign.json" in p for p in report.problems)
    assert any("linked.json: it is a symbolic link" in p for p in report.problems)
    assert foreign.exists() and (outside / "target.json").exists()


def test_writing_state_never_follows_a_symlink_planted_in_the_directory(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    state_dir = tmp_path / "state"
    state_dir.mkdir(mode=0o700)
    for name in ("run.json", "run.tmp", ".run.json.tmp"):  # the file and temporary names
        (state_dir / name).symlink_to(victim)
    active = ActiveFaults(state_dir / "run.json")
    active.add("proxy", ProxyLinks("http://127.0.0.1:9"))
    assert victim.read_text() == "precious"
    assert not (state_dir / "run.json").is_symlink()
    assert json.loads((state_dir / "run.json").read_text())["entries"]["proxy"]["type"] == "proxy"
    active.close()
    assert victim.read_text() == "precious"


# -- a bad entry is reported and skipped (issue 17, item 14) ----------------------------


def test_a_bad_entry_is_reported_and_skipped_and_every_other_entry_and_file_is_healed(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    first = leave_behind(
        tmp_path,
        {"started:ok": ProcessStarted(sleeper.pid, process_start_time(sleeper.pid))},
    )
    state = json.loads(first.read_text())
    bad = {
        "no-pid": {"type": "process", "start_time": 1},
        "pid-text": {"type": "process", "pid": "1", "start_time": 1},
        "meteor": {"type": "meteor", "pid": 1},
        "a-list": [1, 2],
    }
    state["entries"] = {**bad, **state["entries"]}
    first.write_text(json.dumps(state))
    later = subprocess.Popen(["sleep", "60"], start_new_session=True)
    second = tmp_path / "later-run.json"
    second.write_text(
        json.dumps(
            {
                "owner": {"pid": 0, "start_time": None},
                "entries": {
                    "p": ProcessStarted(later.pid, process_start_time(later.pid)).to_json()
                },
            }
        )
    )
    (tmp_path / "garbage.json").write_text("{not json")

    report = heal_all(tmp_path)

    assert sleeper.wait(timeout=10) == -signal.SIGKILL
    assert later.wait(timeout=10) == -signal.SIGKILL, "a later file is still healed"
    assert report.skipped == 5 and report.killed == 2
    problems = "\n".join(report.problems)
    assert "entry 'no-pid' skipped: heal entry 'process': missing field 'pid'" in problems
    assert "entry 'pid-text' skipped: heal entry 'process': field 'pid' must be int" in problems
    assert "entry 'meteor' skipped: unknown heal entry kind 'meteor'" in problems
    assert "entry 'a-list' skipped: a heal entry is a JSON object, not list" in problems
    assert "garbage.json: not JSON" in problems
    kept = json.loads(first.read_text())["entries"]
    assert kept == bad, "what could not be healed is kept for a look, the rest is gone"
    assert not second.exists()


def test_heal_prints_each_bad_entry_and_exits_cleanly(tmp_path: Path) -> None:
    (tmp_path / "dead.json").write_text(
        json.dumps({"owner": {"pid": 0, "start_time": None}, "entries": {"k": {"type": "process"}}})
    )
    healed = subprocess.run(
        [*DURABENCH, "heal", "--state-dir", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "300"},
    )
    assert healed.returncode == 0, healed.stderr
    assert "entry 'k' skipped: heal entry 'process': missing field 'pid'" in healed.stderr
    assert "1 bad entry(ies) skipped" in healed.stdout


# -- a healed run's manifest says it died (issue 17, item 8) ----------------------------


@pytest.mark.parametrize(("status", "marked"), [("running", "died"), ("complete", "complete")])
def test_heal_marks_the_manifest_of_a_run_whose_durabench_died(
    tmp_path: Path, status: str, marked: str
) -> None:
    results = tmp_path / "results" / "bench-1"
    results.mkdir(parents=True)
    (results / "manifest.json").write_text(json.dumps({"bench_id": "bench-1", "status": status}))
    active = ActiveFaults(tmp_path / "state" / "bench-1-baseline.json", results=results)
    state = json.loads(active.path.read_text())
    assert state["results"] == str(results)
    state["owner"] = {"pid": 0, "start_time": None}  # its durabench died
    active.path.write_text(json.dumps(state))

    report = heal_all(tmp_path / "state")

    manifest = json.loads((results / "manifest.json").read_text())
    assert manifest["status"] == marked
    assert report.manifests_marked == (marked == "died")
    if marked == "died":
        assert manifest["healed_at"] > 0 and "durabench died" in manifest["error"]
