"""`durabench check` never passes on missing evidence (issue 17, items 4 and 13): every
missing, empty, truncated, damaged, swapped or mismatched evidence file is one error
naming the file (exit 2), never "verdicts reproduced ... identical", never a traceback."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from harness.cli import cli
from harness.errors import ResultsError
from harness.recheck import recheck
from harness.results import ResultsDir
from tests.results_support import copy_results, make_results
from tests.test_cli import durabench

pytestmark = pytest.mark.integration

Damage = Callable[[Path, Path], None]  # (results dir, another run's results dir)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two complete runs of the same scenario: the same run ids, other bench ids."""
    root = tmp_path_factory.mktemp("recheck")
    return make_results(root / "one"), make_results(root / "two")


@pytest.fixture
def fresh(two_runs: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    return copy_results(two_runs[0], tmp_path / "results"), two_runs[1]


def _swap(name: str) -> Damage:
    return lambda here, other: shutil.copyfile(other / name, here / name)


def _truncate(name: str, keep: float) -> Damage:
    def damage(here: Path, other: Path) -> None:
        data = (here / name).read_bytes()
        (here / name).write_bytes(data[: int(len(data) * keep)])

    return damage


def _persisted_lines(keep: int) -> Damage:
    def damage(here: Path, other: Path) -> None:
        lines = (here / "persisted.jsonl").read_text().splitlines(keepends=True)
        (here / "persisted.jsonl").write_text("".join(lines[:keep]))

    return damage


def _rename_a_run(here: Path, other: Path) -> None:
    results = ResultsDir(here)
    runs = results.read_table("runs")
    runs.loc[0, "run_id"] = "run-000099"
    results.write_table("runs", runs.to_dict("records"))  # stamped for this directory


def _manifest(edit: Callable[[dict[str, object]], object]) -> Damage:
    def damage(here: Path, other: Path) -> None:
        manifest = json.loads((here / "manifest.json").read_text())
        (here / "manifest.json").write_text(json.dumps(edit(manifest)))

    return damage


def _write(name: str, content: bytes) -> Damage:
    return lambda here, other: (here / name).write_bytes(content)


def _delete(name: str) -> Damage:
    return lambda here, other: (here / name).unlink()


def _columns_of(source: str, target: str) -> Damage:
    return lambda here, other: shutil.copyfile(here / source, here / target)


DAMAGE: dict[str, tuple[Damage, str]] = {
    # item 4: missing evidence
    "persisted emptied": (_write("persisted.jsonl", b""), r"persisted.jsonl: empty"),
    "runs deleted": (_delete("runs.parquet"), r"missing runs.parquet"),
    "steps deleted": (_delete("steps.parquet"), r"missing steps.parquet"),
    "ledger deleted": (_delete("ledger.parquet"), r"missing ledger"),
    "llm calls deleted": (_delete("llm_calls.parquet"), r"missing llm_calls.parquet"),
    "persisted deleted": (_delete("persisted.jsonl"), r"missing persisted.jsonl"),
    "runs swapped": (_swap("runs.parquet"), r"runs.parquet: written for results"),
    "steps swapped": (_swap("steps.parquet"), r"steps.parquet: written for results"),
    "ledger swapped": (_swap("ledger.parquet"), r"ledger.parquet: written for results"),
    "persisted swapped": (_swap("persisted.jsonl"), r"persisted.jsonl: written for results"),
    "runs truncated": (_truncate("runs.parquet", 0.6), r"runs.parquet: not a readable parquet"),
    "steps truncated": (_truncate("steps.parquet", 0.9), r"steps.parquet: not a readable"),
    "persisted cut at a line": (_persisted_lines(3), r"persisted.jsonl: lacks 3 runs"),
    "run ids that do not match": (_rename_a_run, r"runs.parquet: its runs do not match"),
    # item 13: damaged results
    "empty parquet": (_write("steps.parquet", b""), r"steps.parquet: empty file"),
    "manifest not json": (_write("manifest.json", b"{oops"), r"manifest.json: not valid JSON"),
    "manifest a list": (_write("manifest.json", b"[1, 2]"), r"manifest.json: expected a JSON obj"),
    "manifest without scenario": (
        _manifest(lambda m: {k: v for k, v in m.items() if k != "scenario"}),
        r"manifest.json: no `scenario`",
    ),
    "manifest binary": (_write("manifest.json", bytes(range(256))), r"manifest.json: not a JSON"),
    "torn persisted line": (_truncate("persisted.jsonl", 0.5), r"persisted.jsonl: line \d+ is not"),
    "runs with wrong columns": (
        _columns_of("ledger.parquet", "runs.parquet"),
        r"runs.parquet: not a durabench runs table: missing columns",
    ),
    "steps with wrong columns": (
        _columns_of("llm_calls.parquet", "steps.parquet"),
        r"steps.parquet: not a durabench steps table",
    ),
}


def test_intact_results_reproduce(fresh: tuple[Path, Path]) -> None:
    outcome = recheck(ResultsDir.open(fresh[0]))
    assert len(outcome.runs) == 6 and outcome.differences == []


@pytest.mark.parametrize("case", list(DAMAGE))
def test_damaged_evidence_is_one_error_naming_the_file(case: str, fresh: tuple[Path, Path]) -> None:
    damage, message = DAMAGE[case]
    here, other = fresh
    damage(here, other)
    with pytest.raises(ResultsError, match=message):
        recheck(ResultsDir.open(here))
    result = CliRunner().invoke(cli, ["check", str(here)], env={"COLUMNS": "400"})
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)  # not a traceback
    assert "identical" not in result.output and "verdicts reproduced" not in result.output


def test_a_deleted_ledger_says_missing_ledger_on_the_command_line(
    fresh: tuple[Path, Path],
) -> None:
    here, _ = fresh
    (here / "ledger.parquet").unlink()
    result = durabench("check", str(here))
    assert result.returncode == 2, result.stdout
    assert "missing ledger" in result.stderr and "differ" not in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_a_tampered_verdict_is_still_a_difference(fresh: tuple[Path, Path]) -> None:
    here, _ = fresh
    results = ResultsDir(here)
    runs = results.read_table("runs")
    runs.loc[0, "state_match"] = not bool(runs.loc[0, "state_match"])
    results.write_table("runs", runs.to_dict("records"))
    outcome = recheck(ResultsDir.open(here))
    assert {(d["run_id"], d["verdict"]) for d in outcome.differences} == {
        (runs.loc[0, "run_id"], "state_match")
    }


def test_results_written_before_stamps_still_check(fresh: tuple[Path, Path]) -> None:
    """Older results carry no bench id: they are cross-checked by their run ids only."""
    here, _ = fresh
    for name in ("runs", "steps", "ledger", "llm_calls", "faults", "floors"):
        path = here / f"{name}.parquet"
        if path.exists():
            pd.read_parquet(path).to_parquet(path, index=False)  # no durabench metadata
    lines = [json.loads(line) for line in (here / "persisted.jsonl").read_text().splitlines()]
    (here / "persisted.jsonl").write_text(
        "".join(json.dumps({k: v for k, v in p.items() if k != "bench_id"}) + "\n" for p in lines)
    )
    assert recheck(ResultsDir.open(here)).differences == []
