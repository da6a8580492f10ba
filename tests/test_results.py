"""Results directories: private by default, every reader one clear error naming the file
(issue 17, items 3 and 13), and the report's loader on damaged results."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from harness.errors import ResultsError
from harness.report.load import load_results
from harness.results import STAMP_KEY, UMASK_ENV, ResultsDir, results_umask
from tests.results_support import copy_results, make_results


@pytest.fixture(autouse=True)
def keep_umask() -> Iterator[None]:
    """Creating results sets the process umask; each test leaves it as it found it."""
    mask = os.umask(0o077)
    os.umask(mask)
    yield
    os.umask(mask)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_results(tmp_path_factory.mktemp("results"))


@pytest.fixture
def fresh(run_dir: Path, tmp_path: Path) -> Path:
    return copy_results(run_dir, tmp_path / "copy")


# -- permissions -------------------------------------------------------------------------


@pytest.mark.integration
def test_a_run_writes_nothing_others_can_read(run_dir: Path) -> None:
    """Every directory 0700 and every file 0600, the tool ledger and the services'
    files included; the results root others may pass through but not list."""
    paths = [run_dir, *run_dir.rglob("*")]
    assert (run_dir / "baseline" / "ledger.sqlite").is_file()
    assert (run_dir / "ledger.parquet").is_file()
    for path in paths:
        if path.is_symlink():
            continue
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o077 == 0, f"{path} is {oct(mode)}"
    root = stat.S_IMODE(run_dir.parent.stat().st_mode)
    assert root & 0o044 == 0 and root & 0o011, oct(root)


def test_a_user_can_widen_the_permissions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(UMASK_ENV, "022")
    results = ResultsDir.create(tmp_path / "wide", "b1")
    results.write_json("manifest.json", {"bench_id": "b1"})
    results.write_table("runs", [])
    assert stat.S_IMODE(results.path.stat().st_mode) == 0o755
    assert stat.S_IMODE((results.path / "runs.parquet").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "wide").stat().st_mode) == 0o755


def test_private_is_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(UMASK_ENV, raising=False)
    os.umask(0o022)  # what a login shell usually has
    results = ResultsDir.create(tmp_path / "r", "b1")
    results.write_table("runs", [])
    assert stat.S_IMODE(results.path.stat().st_mode) == 0o700
    assert stat.S_IMODE((results.path / "runs.parquet").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "r").stat().st_mode) == 0o711


@pytest.mark.parametrize("value", ["abc", "999", "-1", "0o77x"])
def test_a_bad_umask_is_one_clear_error(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(UMASK_ENV, value)
    with pytest.raises(ResultsError, match=f"\\${UMASK_ENV}={value!r}: expected an octal umask"):
        results_umask()


# -- readers -----------------------------------------------------------------------------


def test_tables_carry_the_bench_id_they_were_written_for(tmp_path: Path) -> None:
    results = ResultsDir.create(tmp_path, "bench-1")
    results.write_table("runs", [{"backend": "b", "run_id": "run-000000"}])
    results.append_jsonl("persisted.jsonl", [{"backend": "b", "run_id": "run-000000"}])
    assert results.table_stamp("runs") == "bench-1"
    assert results.read_jsonl("persisted.jsonl")[0]["bench_id"] == "bench-1"
    import pyarrow.parquet as pq

    assert pq.read_schema(results.path / "runs.parquet").metadata[STAMP_KEY] == b"bench-1"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty file, expected a JSON object"),
        (b"{oops", "not valid JSON"),
        (b"[1, 2]", "expected a JSON object, got a JSON list"),
        (b'"text"', "expected a JSON object, got a JSON string"),
        (b"\xff\xfe\x00garbage", r"not a JSON file \(binary content"),
        (b"[" * 100_000, r"not valid JSON \(nested too deeply\)"),
    ],
)
def test_a_damaged_json_file_is_named(tmp_path: Path, content: bytes, message: str) -> None:
    (tmp_path / "summary.json").write_bytes(content)
    with pytest.raises(ResultsError, match=f"summary.json: {message}"):
        ResultsDir(tmp_path).read_json("summary.json")


def test_a_torn_jsonl_line_is_named_with_its_number(tmp_path: Path) -> None:
    (tmp_path / "persisted.jsonl").write_text('{"a": 1}\n{"a": 2\n{"a": 3}\n')
    with pytest.raises(ResultsError, match=r"persisted.jsonl: line 2 is not valid JSON, a torn"):
        ResultsDir(tmp_path).read_jsonl("persisted.jsonl")
    (tmp_path / "persisted.jsonl").write_text('{"a": 1}\n[1]\n')
    with pytest.raises(ResultsError, match=r"line 2: expected a JSON object, got a JSON list"):
        ResultsDir(tmp_path).read_jsonl("persisted.jsonl")


def test_a_table_of_the_wrong_shape_is_named(tmp_path: Path) -> None:
    results = ResultsDir(tmp_path)
    results.write_table("steps", [{"backend": "b", "run_id": "r"}])
    with pytest.raises(ResultsError, match=r"steps.parquet: not a durabench steps table: missing"):
        results.read_table("steps")
    row = {c: "x" for c in ("backend", "run_id", "phase", "outcome", "worker")}
    results.write_table(
        "steps", [{**row, "step": "one", "attempt": 0, "start": 0.0, "end": 1.0, "service_ms": 1}]
    )
    with pytest.raises(ResultsError, match=r"steps.parquet: column step holds .*expected numbers"):
        results.read_table("steps")


def test_an_absent_table_is_empty_unless_required(tmp_path: Path) -> None:
    results = ResultsDir(tmp_path)
    assert results.read_tables(["faults"])["faults"].empty
    with pytest.raises(ResultsError, match=r"missing faults\.parquet"):
        results.read_tables(["faults"], required=["faults"])


# -- the report's loader -----------------------------------------------------------------


@pytest.mark.integration
def test_the_report_loads_intact_results(fresh: Path) -> None:
    loaded = load_results([fresh])
    assert loaded.backends == ["baseline"] and len(loaded.frame("runs")) == 6


@pytest.mark.integration
def test_the_report_loads_results_that_stopped_early(fresh: Path) -> None:
    for name in ("runs.parquet", "summary.json", "ledger.parquet"):
        (fresh / name).unlink()
    assert load_results([fresh]).frame("runs").empty


@pytest.mark.integration
@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("steps.parquet", b"", r"steps.parquet: empty file"),
        ("runs.parquet", b"PAR1\x00\x00", r"runs.parquet: not a readable parquet table"),
        ("manifest.json", b"{", r"manifest.json: not valid JSON"),
        ("manifest.json", b"[]", r"manifest.json: expected a JSON object, got a JSON list"),
        ("manifest.json", b'{"bench_id": "x"}', r"manifest.json: no `scenario`"),
        ("manifest.json", b'{"scenario": {"faults": [1]}}', r"`scenario.faults` must be a list"),
        ("summary.json", bytes(range(200, 256)), r"summary.json: not a JSON file"),
        ("summary.json", b'{"baseline": 3}', r"summary.json: `baseline` must be an object"),
    ],
)
def test_the_report_names_a_damaged_file(
    fresh: Path, name: str, content: bytes, message: str
) -> None:
    (fresh / name).write_bytes(content)
    with pytest.raises(ResultsError, match=message):
        load_results([fresh])


@pytest.mark.integration
def test_the_report_names_a_runs_table_with_the_wrong_columns(fresh: Path) -> None:
    pd.read_parquet(fresh / "ledger.parquet").to_parquet(fresh / "runs.parquet")
    with pytest.raises(ResultsError, match=r"runs.parquet: not a durabench runs table"):
        load_results([fresh])


@pytest.mark.integration
def test_a_suite_matrix_of_the_wrong_shape_is_named(tmp_path: Path) -> None:
    (tmp_path / "matrix.json").write_text(json.dumps({"cells": ["a"]}))
    with pytest.raises(ResultsError, match=r"matrix.json: `cells` must be a list of objects"):
        load_results([tmp_path])
