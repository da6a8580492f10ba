"""`durabench explore`: drawn fault schedules are a pure function of the seed and only of
kinds the backend supports; shrinking only simplifies; on pgstore-naive a small budget
finds a duplicated effect and shrinks it to a reproducer that `durabench run` re-runs,
while pgstore under the same budget shows nothing."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from harness.cli.explore import parse_budget
from harness.explore import Case, base_case, draw_case, refuser
from harness.report import build_report
from harness.scenario import load_scenario
from harness.shrink import candidates

SCENARIO = load_scenario("explore")


def _cases(backend: str, seed: int, tmp_path: Path, n: int = 12) -> list[Case]:
    refuse = refuser(backend, "local", tmp_path)
    return [draw_case(SCENARIO, backend, seed, i, 2, refuse) for i in range(n)]


def test_the_same_seed_draws_the_same_trials_and_another_seed_others(tmp_path: Path) -> None:
    first = _cases("pgstore-naive", 5, tmp_path)
    assert first == _cases("pgstore-naive", 5, tmp_path)
    assert first != _cases("pgstore-naive", 6, tmp_path)


def test_trials_draw_between_one_and_max_faults_inside_the_scenario(tmp_path: Path) -> None:
    ids = {f"run-{i:06d}" for i in range(SCENARIO.runs)}
    for case in _cases("pgstore-naive", 1, tmp_path, 30):
        assert 1 <= len(case.faults) <= 2
        for fault in case.faults:
            if fault["kind"] == "crash_point":
                assert fault["run"] in ids and 0 <= fault.get("step", 0) < SCENARIO.steps
            else:
                assert fault["at_s"] >= 0


def test_crash_points_are_drawn_from_the_backends_own_points_too(tmp_path: Path) -> None:
    points = {
        f["point"]
        for case in _cases("pgstore-naive", 3, tmp_path, 60)
        for f in case.faults
        if f["kind"] == "crash_point"
    }
    assert any(p.startswith("pgstore-naive.") for p in points)
    assert points & {"after_reason", "after_act", "after_verify", "before_commit", "after_commit"}


def test_only_faults_the_backend_has_a_target_for_are_drawn(tmp_path: Path) -> None:
    kinds = {
        (f["kind"], f.get("target"))
        for case in _cases("baseline", 2, tmp_path, 40)
        for f in case.faults
    }
    assert not any(kind == "restart" for kind, _ in kinds)  # baseline has no store
    assert ("network", "worker->store") not in kinds
    store = {f.get("target") for c in _cases("pgstore", 2, tmp_path, 40) for f in c.faults}
    assert "store" in store or "worker->store" in store


def test_every_shrink_candidate_is_simpler_and_stays_inside_its_sizes() -> None:
    case = Case(
        faults=(
            {"kind": "crash_point", "point": "after_act", "run": "run-000003", "step": 3},
            {"kind": "pause", "target": "worker", "duration_s": 0.8, "at_s": 0.437},
        ),
        runs=4,
        steps=4,
        workers=2,
        concurrency=2,
    )
    seen = list(candidates(case))
    assert seen[0].faults == case.faults[1:] and seen[1].faults == case.faults[:1]
    for smaller in seen:
        sizes = [smaller.runs, smaller.steps, smaller.workers, smaller.concurrency]
        assert all(a <= b for a, b in zip(sizes, [4, 4, 2, 2], strict=True))
        assert len(smaller.faults) <= 2 and smaller != case
        for fault in smaller.faults:
            if fault["kind"] == "crash_point":
                assert int(fault["run"].removeprefix("run-")) < smaller.runs
                assert fault["step"] < smaller.steps
    one = Case(
        faults=case.faults[:1], **{s: 1 for s in ("runs", "steps", "workers", "concurrency")}
    )
    assert next(c.faults for c in candidates(one)) == ()  # does it need a fault at all?
    assert all(c.faults for c in candidates(one, without_faults_tried=True))


def test_a_case_is_written_as_the_base_scenario_with_its_exact_faults() -> None:
    case = base_case(SCENARIO)
    data = case.scenario_data(SCENARIO.model_dump(mode="json"), "explore-t1")
    assert data["faults"] == [] and data["runs"] == SCENARIO.runs and data["name"] == "explore-t1"


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("20m", 1200), ("1h", 3600), ("5", 5)])
def test_budgets_read_as_durations(text: str, seconds: float) -> None:
    assert parse_budget(text) == seconds


def test_a_bad_budget_is_refused_by_name() -> None:
    with pytest.raises(click.BadParameter, match="'soon'"):
        parse_budget("soon")


# -- real processes ------------------------------------------------------------------

BUDGET = ["--budget", "3m", "--seed", "0", "--trials", "3", "--max-faults", "2"]


def _explore(backend: str, out: Path, *extra: str) -> dict[str, Any]:
    from tests.test_cli import durabench

    done = durabench(
        "explore",
        "explore",
        "--backend",
        backend,
        *BUDGET,
        *extra,
        "--out",
        str(out),
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    (directory,) = [p for p in out.iterdir() if p.name.startswith("explore-")]
    record: dict[str, Any] = json.loads((directory / "explore.json").read_text())
    record["directory"] = str(directory)
    assert "trials" in done.stderr and "anomalies" in done.stderr  # progress was shown
    return record


@pytest.mark.integration
@pytest.mark.slow  # a search, a shrink and the explanation: about 60 s
def test_explore_finds_shrinks_and_explains_a_duplicated_effect_on_pgstore_naive(
    tmp_path: Path,
) -> None:
    record = _explore(
        "pgstore-naive", tmp_path, "--max-findings", "1", "--shrink-trials", "6", "--reruns", "5"
    )
    (finding,) = record["findings"]
    assert {"effects_exactly_once", "no_lost_step"} & set(finding["broken"])
    assert finding["faults_count"] <= 2
    assert finding["reproduced"] >= 4 and finding["reruns"] == 5
    reproducer = Path(finding["reproducer"])
    scenario = yaml.safe_load(reproducer.read_text())
    assert scenario["faults"] == finding["minimal"]["faults"]  # the exact schedule, not a seed
    assert "durabench run" in reproducer.read_text()
    load_scenario(reproducer)  # valid as a scenario: `durabench run` takes it
    explanation = Path(finding["explanation"]).read_text()
    assert "run-0000" in explanation and "applied" in explanation and "committed" in explanation
    assert "effects_exactly_once fails" in explanation or "no_lost_step fails" in explanation
    report = build_report([Path(str(record["directory"]))], tmp_path / "report")
    markdown = report.markdown.read_text()
    assert markdown.index("## Findings from explore") < markdown.index("## Provenance")
    assert str(reproducer) in markdown


@pytest.mark.integration
@pytest.mark.slow  # a full explore budget; CI runs it with -m slow
def test_explore_finds_nothing_on_pgstore_under_the_same_budget(tmp_path: Path) -> None:
    record = _explore("pgstore", tmp_path)
    assert record["trials_run"] == 3
    assert record["findings"] == [] and record["anomalous_trials"] == 0
    assert all(t["error"] is None for t in record["trials"])


def readme_explore_commands() -> list[str]:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("### Explore: random fault schedules", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.+?)\n```", section, flags=re.S)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def test_the_readme_explore_section_shows_explore_on_both_stores_and_the_report() -> None:
    commands = readme_explore_commands()
    backends = {shlex.split(c)[shlex.split(c).index("--backend") + 1] for c in commands[:2]}
    assert backends == {"pgstore", "pgstore-naive"}
    assert all(c.startswith("durabench explore ") for c in commands[:2])
    assert commands[2].startswith("durabench report ")


@pytest.mark.integration
@pytest.mark.parametrize("command", readme_explore_commands()[:2])
@pytest.mark.slow  # CI runs the README explore commands with -m slow
def test_each_readme_explore_command_runs_as_written_for_one_trial(
    command: str, tmp_path: Path
) -> None:
    from tests.test_cli import durabench

    args = shlex.split(command)[1:]
    bounded = [*args, "--trials", "1", "--reruns", "1", "--shrink-trials", "0"]
    done = durabench(*bounded, "--out", str(tmp_path), timeout=300)
    assert done.returncode == 0, done.stderr
    assert "1 trials in" in done.stdout
    report = durabench("report", str(tmp_path / "latest"), "--out", str(tmp_path / "r"))
    assert report.returncode == 0, report.stderr
    assert "## Findings from explore" in (tmp_path / "r" / "report.md").read_text()


def test_explore_has_help_and_refuses_bad_input_in_one_line(tmp_path: Path) -> None:
    from tests.test_cli import durabench

    assert "Usage: durabench explore" in durabench("explore", "--help").stdout
    for args, words in (
        (["explore", "--backend", "pgstore", "--budget", "soon"], "'soon'"),
        (["explore", "--backend", "no-such-backend"], "no-such-backend"),
        (["no-such-scenario", "--backend", "pgstore"], "no-such-scenario"),
    ):
        done = durabench("explore", *args, "--out", str(tmp_path))
        assert done.returncode != 0 and words in done.stderr
        assert "Traceback" not in done.stderr
    assert not list(tmp_path.glob("explore-*"))  # nothing was started


def test_a_finding_matches_a_known_fixture_of_its_backend_with_the_same_kinds_of_fault() -> None:
    from harness.known import known_fixtures
    from harness.report.findings import known_matches

    fixture = next(f for f in known_fixtures() if f.scenario.get("faults"))
    backend = next(iter(fixture.known.expect))
    assert fixture.name in known_matches(backend, fixture.scenario["faults"])
    crash = [{"kind": "crash_point", "point": "before_commit", "run": "run-000000", "step": 0}]
    assert known_matches("pgstore-naive", crash) == []
