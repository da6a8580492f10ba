"""The verdict gaps closed, on real runs: stray effects, missing effects and
non-determinism fail runs; a backend whose inspect() raises or returns garbage for some
runs gets unknown verdicts for those runs only, the other backends are judged, and the
exit code says a backend misbehaved (never a traceback)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml

from harness.recheck import recheck
from harness.results import ResultsDir
from tests.conftest import TINY, ScenarioFactory
from tests.misbehaving import MALFORMED_FOR, RAISES_FOR, STRAY_RUN
from tests.test_cli import durabench

pytestmark = pytest.mark.integration

STRAY = "tests.misbehaving:StrayEffects"
RAISES = "tests.misbehaving:InspectRaises"


@dataclass(frozen=True)
class Misbehaved:
    returncode: int
    stdout: str
    stderr: str
    results: Path


@pytest.fixture(scope="module")
def misbehaved(tmp_path_factory: pytest.TempPathFactory) -> Misbehaved:
    root = tmp_path_factory.mktemp("misbehaved")
    scenario = root / "tiny.yaml"
    scenario.write_text(yaml.safe_dump(TINY, sort_keys=False))
    done = durabench(
        "run", str(scenario), "-b", STRAY, "-b", RAISES, "-b", "baseline", "--out", str(root)
    )
    return Misbehaved(done.returncode, done.stdout, done.stderr, (root / "latest").resolve())


def test_a_raising_inspect_gives_unknown_verdicts_and_the_rest_is_judged(
    misbehaved: Misbehaved,
) -> None:
    assert misbehaved.returncode == 5, misbehaved.stdout + misbehaved.stderr
    assert "Traceback" not in misbehaved.stderr + misbehaved.stdout
    assert "backend misbehaved" in misbehaved.stderr and RAISES in misbehaved.stderr
    summary = json.loads((misbehaved.results / "summary.json").read_text())
    raising = summary[RAISES]
    assert raising["runs"] == 6 and raising["inspect_errors"]["runs"] == 2
    assert raising["result"] == "unknown" and raising["passed"] == 4
    runs = pd.read_parquet(misbehaved.results / "runs.parquet").set_index(["backend", "run_id"])
    raised, malformed = runs.loc[(RAISES, RAISES_FOR)], runs.loc[(RAISES, MALFORMED_FOR)]
    assert "inspect raised: RuntimeError: the store went away" in raised["inspect_error"]
    assert "malformed state" in malformed["inspect_error"]
    for row in (raised, malformed):
        assert not row["passed"] and row[["complete", "state_match"]].isna().all()
    assert summary["baseline"]["result"] == "pass" and summary["baseline"]["integrity"] == 1.0


def test_stray_effects_fail_the_backend(misbehaved: Misbehaved) -> None:
    summary = json.loads((misbehaved.results / "summary.json").read_text())[STRAY]
    assert summary["runs"] == 6 and summary["passed"] == 6, "the judged runs are intact"
    assert summary["stray_effects"]["run_ids"] == 1
    assert summary["stray_effects"]["examples"] == [STRAY_RUN]
    assert summary["result"] == "fail" and "stray_effects=1" in summary["result_reason"]
    assert "stray_effects" in misbehaved.stdout


def _rechecked_with(results: Path, tmp_path: Path, edit: str) -> pd.DataFrame:
    """The baseline's evidence with one edit, judged again from the files."""
    copy = tmp_path / "copy"
    copy.mkdir()
    for item in results.iterdir():
        if item.is_file():
            (copy / item.name).write_bytes(item.read_bytes())
    if edit == "drop a committed step's effect":
        ledger = pd.read_parquet(copy / "ledger.parquet")
        first = ledger[(ledger["backend"] == "baseline") & ledger["applied"]].index[0]
        kept = ledger.drop(index=first).to_dict("records")
        ResultsDir.open(copy).write_table("ledger", kept)  # stamped as the run's own
    else:  # Temporal's report of a replay that took another path
        persisted = [
            json.loads(line) for line in (copy / "persisted.jsonl").read_text().splitlines()
        ]
        for row in persisted:
            if row["backend"] == "baseline" and row["run_id"] == "run-000000":
                row["extra"] = {"nondeterminism": ["[TMPRL1100] Nondeterminism error"]}
        (copy / "persisted.jsonl").write_text("".join(json.dumps(p) + "\n" for p in persisted))
    now = recheck(ResultsDir.open(copy)).runs
    return now[now["backend"] == "baseline"].set_index("run_id")


def test_a_committed_step_whose_effect_was_never_applied_fails(
    misbehaved: Misbehaved, tmp_path: Path
) -> None:
    runs = _rechecked_with(misbehaved.results, tmp_path, "drop a committed step's effect")
    failed = runs[runs["effects_exactly_once"] == False]  # noqa: E712
    assert len(failed) == 1 and not failed["passed"].any()
    detail = json.loads(failed["verdict_detail"].iloc[0])["effects_exactly_once"]
    assert detail["missing_effects"] == 1 and detail["duplicated_effects"] == 0


def test_non_determinism_fails_the_run_even_when_it_completed(
    misbehaved: Misbehaved, tmp_path: Path
) -> None:
    runs = _rechecked_with(misbehaved.results, tmp_path, "nondeterminism")
    hit = runs.loc["run-000000"]
    assert hit["complete"] and hit["state_match"], "it finished with the right state"
    assert hit["no_nondeterminism"] == False and not hit["passed"]  # noqa: E712
    assert runs.drop(index="run-000000")["passed"].all()


def test_the_console_summary_reads_in_80_columns(
    misbehaved: Misbehaved, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    from rich.console import Console

    import harness.cli.tables as tables

    stored = json.loads((misbehaved.results / "summary.json").read_text())
    names = ["pgstore", "pgstore-naive", "langgraph:postgres?durability=sync"]
    summary = dict(zip(names, stored.values(), strict=True))
    screen = io.StringIO()
    monkeypatch.setattr(tables, "out", Console(file=screen, width=80, color_system=None))
    tables.print_summary(summary)
    text = screen.getvalue()
    assert "…" not in text, "nothing is cut"
    assert max(len(line) for line in text.splitlines()) <= 80
    lines = text.splitlines()
    assert any("│ pgstore " in line for line in lines)
    assert any("│ pgstore-naive " in line for line in lines)
    for verdict in ("stray_effects", "verdicts unknown", "FAIL", "unknown", "pass"):
        assert verdict in text, verdict


def test_an_approval_that_cannot_be_delivered_is_the_adapter_s_error(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    """The run would expire and look like the backend's loss: durabench names the run and
    the failed delivery instead (no traceback), and keeps what it measured."""
    path = write_scenario(
        runs=2, steps=2, approval={"after_step": 0, "delay_s": 0.05, "ttl_s": 5.0}
    )
    done = durabench(
        "run", str(path), "-b", "tests.misbehaving:ApprovalRaises", "--out", str(tmp_path)
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "the approval could not be delivered" in done.stderr
    assert "the approval endpoint refused the request" in done.stderr
    assert "partial results kept in" in done.stderr
