"""The work-volume file server: what the harness reads back from a volume it cannot mount."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from harness.services.files import archive, build_app


def _volume(root: Path) -> Path:
    (root / "measurements").mkdir(parents=True)
    (root / "measurements" / "worker-0.jsonl").write_text('{"phase":"commit"}\n')
    (root / "failpoints").mkdir()
    (root / "failpoints" / "after_act.fired").write_text("")
    (root / "ledger.sqlite").write_bytes(b"not asked for")
    return root


def test_an_archive_holds_exactly_the_paths_asked_for(tmp_path: Path) -> None:
    root = _volume(tmp_path / "volume")
    data = archive(root, ["measurements", "failpoints", "never-written"])
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = sorted(m.name for m in tar.getmembers())
    assert names == [
        "failpoints",
        "failpoints/after_act.fired",
        "measurements",
        "measurements/worker-0.jsonl",
    ]


def test_nothing_outside_the_served_directory_is_served(tmp_path: Path) -> None:
    root = _volume(tmp_path / "volume")
    (tmp_path / "secret").write_text("no")
    with pytest.raises(ValueError, match="outside the served directory"):
        archive(root, ["../secret"])


async def test_the_server_answers_an_archive_and_refuses_escapes(tmp_path: Path) -> None:
    root = _volume(tmp_path / "volume")
    async with TestClient(TestServer(build_app(root))) as client:
        answer = await client.get("/archive", params=[("path", "measurements")])
        assert answer.status == 200
        with tarfile.open(fileobj=io.BytesIO(await answer.read())) as tar:
            assert "measurements/worker-0.jsonl" in tar.getnames()
        refused = await client.get("/archive", params=[("path", "/etc")])
        assert refused.status == 400
