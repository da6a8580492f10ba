"""`--junit` and `--summary-md` as a CI system reads them: the JUnit file of a real suite
with a failing and an inconclusive cell is valid against the JUnit structure CI systems
read (junit.xsd, with xmlschema) and reads back with a JUnit parser (junitparser) with
the right failures, skips and counts; the Markdown summary carries the same headline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import xmlschema
from junitparser import Failure, JUnitXml, Skipped

from harness.headline import Outcome
from harness.junit import case_from_outcome, junit_xml
from tests.test_cli import durabench

SCHEMA = xmlschema.XMLSchema(Path(__file__).with_name("junit.xsd"))


def cases_of(path: Path) -> dict[tuple[str, str], Any]:
    xml = JUnitXml.fromfile(str(path))
    return {(c.classname, c.name): c for suite in xml for c in suite}


@pytest.fixture(scope="module")
def suite_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """`durabench suite --quick` on kill and outage with the baseline (which loses work
    under kill, and has no server or store for an outage: not applicable) and pgstore
    (which holds); GITHUB_STEP_SUMMARY set as GitHub Actions sets it."""
    root = tmp_path_factory.mktemp("ci-suite")
    step_summary = root / "step-summary.md"
    step_summary.write_text("earlier step\n")
    import os

    os.environ["GITHUB_STEP_SUMMARY"] = str(step_summary)
    try:
        done = durabench(
            "suite", "--quick", "--only", "kill", "--only", "outage",
            "--backend", "baseline", "--backend", "pgstore",
            "--out", str(root / "results"),
            "--junit", str(root / "junit.xml"), "--summary-md", str(root / "summary.md"),
            timeout=600,
        )  # fmt: skip
    finally:
        del os.environ["GITHUB_STEP_SUMMARY"]
    (suite,) = (root / "results").glob("suite-*")
    matrix = json.loads((suite / "matrix.json").read_text())
    return {"root": root, "done": done, "matrix": matrix, "step_summary": step_summary}


@pytest.mark.integration
@pytest.mark.slow  # the suite behind it takes about 30 s
def test_the_suite_junit_is_valid_and_reads_back_with_failures_and_skips(
    suite_run: dict[str, Any],
) -> None:
    done, junit = suite_run["done"], suite_run["root"] / "junit.xml"
    assert done.returncode == 0, done.stderr  # no expectation failed: the exit code is unchanged
    SCHEMA.validate(str(junit))  # raises on anything the schema does not allow

    xml = JUnitXml.fromfile(str(junit))
    (suite,) = list(xml)
    cells = {(c["fault_class"], c["backend"]): c for c in suite_run["matrix"]["cells"]}
    assert suite.tests == len(cells) == 4
    assert (suite.failures, suite.skipped, suite.errors) == (1, 1, 0)
    cases = cases_of(junit)
    assert set(cases) == {(f"durabench.{f}", b) for f, b in cells}

    (failure,) = [r for r in cases[("durabench.kill", "baseline")].result if isinstance(r, Failure)]
    kill = json.loads((Path(cells[("kill", "baseline")]["results"]) / "summary.json").read_text())[
        "baseline"
    ]
    assert failure.type == "no_lost_step"
    for verdict, count in kill["anomalies"].items():
        if count:
            assert f"{verdict}={count}" in failure.text
    assert "first example: run run-" in failure.text
    assert "why this is an anomaly:" in failure.text, "the witness of the first example"
    assert "reproduce: durabench run " in failure.text and "kill.yaml --backend baseline" in (
        failure.text
    )

    (skip,) = [r for r in cases[("durabench.outage", "baseline")].result if isinstance(r, Skipped)]
    assert skip.message.startswith("not applicable: nothing tested")
    for held in (("durabench.kill", "pgstore"), ("durabench.outage", "pgstore")):
        assert cases[held].is_passed, held
    assert cases[("durabench.kill", "baseline")].time > 0


@pytest.mark.integration
@pytest.mark.slow  # shares the suite above
def test_the_summary_markdown_leads_with_the_headline_and_reaches_the_step_summary(
    suite_run: dict[str, Any],
) -> None:
    root, done = suite_run["root"], suite_run["done"]
    text = (root / "summary.md").read_text()
    lines = done.stdout.strip().splitlines()[-3:]
    assert lines[0].startswith("FAIL: 1 of 4 cells lost or duplicated work (baseline)")
    assert f"**{lines[0]}**" in text and lines[1] in text
    assert "| baseline | kill | **FAIL** | lost steps in" in text
    assert "| baseline | outage | not applicable |" in text
    step = suite_run["step_summary"].read_text()
    assert step.startswith("earlier step\n") and text in step, "appended, not overwritten"


@pytest.mark.integration
@pytest.mark.slow  # a real explore with a shrink: about 15 s
def test_explore_junit_carries_each_finding_with_its_explanation(tmp_path: Path) -> None:
    from tests.conftest import TINY

    scenario = tmp_path / "tiny.yaml"
    scenario.write_text(json.dumps(TINY))
    junit = tmp_path / "explore.xml"
    done = durabench(
        "explore", str(scenario), "--backend", "baseline", "--trials", "2",
        "--shrink-trials", "0", "--reruns", "1", "--out", str(tmp_path / "out"),
        "--junit", str(junit),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    SCHEMA.validate(str(junit))
    (record_path,) = (tmp_path / "out").glob("explore-*/explore.json")
    record = json.loads(record_path.read_text())
    cases = cases_of(junit)
    assert len(cases) == max(1, len(record["findings"]))
    for finding in record["findings"]:
        case = cases[(f"durabench.explore_tiny_finding_{finding['finding']}", "baseline")]
        (failure,) = case.result
        assert Path(finding["explanation"]).read_text().strip() in failure.text
        assert f"durabench run {finding['reproducer']} --backend baseline" in failure.text


def test_cells_not_judged_fail_as_harness_errors_and_text_stays_valid_xml() -> None:
    """The schema has no per-case <error>: a cell the harness could not judge is a
    failure of type harness-error; control characters from a backend's error text
    never make the file unreadable."""
    broken = Outcome("pgstore", "restart", "error", reason="ComponentError: no store\x00\x1b[31m")
    fine = Outcome("pgstore", "kill", "pass", runs=6, exposed=3, n=3, passed=3, lower=0.29, upper=1)
    unsure = Outcome("temporal", "pause", "inconclusive", runs=6, exposed=0)
    met = Outcome(
        "x", "kill", "fail", runs=10, n=10, passed=9, lower=0.55, upper=1.0, expected=0.8, met=True,
        anomalies={"no_lost_step": 1},
    )  # fmt: skip
    text = junit_xml("t", [case_from_outcome(o) for o in (broken, fine, unsure, met)])
    SCHEMA.validate(text)
    assert 'type="harness-error"' in text and "\x00" not in text
    assert '<skipped message="inconclusive: nothing tested: its faults exposed no run"' in text
    assert text.count("<failure") == 1, "an expectation met passes despite its anomaly"


def test_the_schema_refuses_what_ci_readers_refuse() -> None:
    """The validation can fail: two outcomes on one case, a negative count, a case with
    no classname are each refused."""
    case = '<testcase classname="c" name="n" time="0.1">{}</testcase>'
    suite = '<testsuites><testsuite name="s" tests="{}">{}</testsuite></testsuites>'
    assert SCHEMA.is_valid(suite.format(1, case.format("<skipped/>")))
    assert not SCHEMA.is_valid(suite.format(1, case.format("<skipped/><failure/>")))
    assert not SCHEMA.is_valid(suite.format(-1, case.format("")))
    assert not SCHEMA.is_valid(suite.format(1, '<testcase name="n"/>'))
