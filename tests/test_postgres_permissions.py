"""The embedded Postgres as root changes no permission outside durabench's own
directories (issue 17, item 3): behind a directory closed to the server user the data
directory moves under a durabench-owned root; inside a results directory only that
results directory lets the server's group pass; else a clear refusal."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml

from harness.platform.local import LocalPlatform
from harness.postgres import PG_ROOT_ENV, embedded_server, wait_ready
from harness.runner import BenchmarkRun
from tests.conftest import TINY

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="only root makes Postgres change users"),
]

Modes = dict[Path, tuple[int, int, int]]


def _modes(paths: list[Path]) -> Modes:
    found = {}
    for path in paths:
        st = path.lstat()
        found[path] = (st.st_mode, st.st_uid, st.st_gid)
    return found


def _ancestors(*paths: Path) -> list[Path]:
    seen: list[Path] = []
    for path in paths:
        for parent in [path, *path.parents]:
            if parent.exists() and parent not in seen:
                seen.append(parent)
    return seen


@pytest.fixture
def move_root(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A move root of its own, in a directory durabench creates (0711)."""
    top = Path("/tmp") / f"durabench-pgroot-{uuid.uuid4().hex[:8]}"
    root = top / "postgres"
    monkeypatch.setenv(PG_ROOT_ENV, str(root))
    yield root
    shutil.rmtree(top, ignore_errors=True)


def _serve(store: Path, platform_dir: Path) -> tuple[LocalPlatform, str]:
    server = embedded_server(store)
    platform = LocalPlatform(platform_dir)
    platform.start(server.component())
    wait_ready(server.dsn)
    return platform, server.dsn


def test_a_store_behind_a_closed_directory_moves_and_changes_nothing(
    tmp_path: Path, move_root: Path
) -> None:
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    store = closed / "store"
    watched = _ancestors(store.parent, move_root.parent.parent)
    before = _modes(watched)

    platform, dsn = _serve(store, tmp_path / "platform")
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (x int)")
            conn.execute("INSERT INTO kept VALUES (7)")
        platform.restart("store")  # a restart fault: the same data again
        wait_ready(dsn)
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT x FROM kept").fetchone() == (7,)
    finally:
        platform.stop_all()

    assert _modes(watched) == before, "a permission changed outside durabench's directories"
    assert store.is_symlink()
    target = Path(os.readlink(store))
    assert target.parent == move_root and (target / "data" / "PG_VERSION").is_file()
    for directory in (move_root, move_root.parent):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o711
        assert directory.stat().st_uid == 0

    # once its link is gone, the next move removes the moved data
    store.unlink()
    again = tmp_path / "closed-too"
    again.mkdir(mode=0o700)
    platform, _ = _serve(again / "store", tmp_path / "platform-2")
    platform.stop_all()
    assert not target.exists()


def test_inside_a_results_directory_only_its_own_directories_open_to_the_server(
    tmp_path: Path,
) -> None:
    top = Path("/tmp") / f"durabench-own-{uuid.uuid4().hex[:8]}"
    top.mkdir()
    top.chmod(0o755)  # whatever the umask: a directory the server user can pass
    try:
        scenario = top / "tiny.yaml"
        scenario.write_text(yaml.safe_dump({**TINY, "runs": 2, "steps": 2}))
        out = top / "results"
        out.mkdir()
        out.chmod(0o755)
        watched = _ancestors(out)
        before = _modes(watched)
        mask = os.umask(0o077)
        os.umask(mask)
        try:
            directory = asyncio.run(BenchmarkRun(scenario, ["pgstore"], out).execute()).path
        finally:
            os.umask(mask)
        assert _modes(watched) == before
        server_user = pwd.getpwnam("postgres") if _has_user("postgres") else None
        store = directory / "pgstore" / "store"
        assert store.is_dir() and not store.is_symlink(), "no move was needed"
        for own in (directory, directory / "pgstore"):
            mode = stat.S_IMODE(own.stat().st_mode)
            assert mode & 0o007 == 0, f"{own} is open to others: {oct(mode)}"
            if server_user is not None:
                assert own.stat().st_gid == server_user.pw_gid
        summary = json.loads((directory / "summary.json").read_text())
        assert summary["pgstore"]["integrity"] == 1.0
    finally:
        shutil.rmtree(top, ignore_errors=True)


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def test_a_move_root_out_of_reach_is_a_clear_refusal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    monkeypatch.setenv(PG_ROOT_ENV, str(closed / "root"))  # behind the same closed directory
    watched = _ancestors(closed)
    before = _modes(watched)
    store = tmp_path / "elsewhere"
    store.mkdir(mode=0o700)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness.postgres",
            "serve",
            "--datadir",
            str(store / "store"),
            "--port",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "DURABENCH_PG_PASSWORD": "x"},
        check=False,
    )
    assert done.returncode != 0
    assert "changes no permissions outside its own directories" in done.stderr
    assert f"${PG_ROOT_ENV}" in done.stderr and "Traceback" not in done.stderr
    assert _modes(watched) == before
