"""`build_report` on real results: every section is there, and every number in it is
the number the results directories hold (recomputed here from the parquet files)."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import asdict
from html import escape as html_escape
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from harness.report import ReportPaths, build_report, load_results
from harness.report.document import format_value
from harness.report.figures import KIND_STYLE
from harness.suite import Cell
from tests.report.conftest import FAULTS, Runs

pytestmark = pytest.mark.integration

# in reading order: findings first, the integrity matrix next, provenance at the end
SECTIONS = (
    "summary",
    "integrity",
    "anomalies",
    "latency",
    "durability",
    "fidelity",
    "timeline",
    "recovery",
    "bloat",
    "scaling",  # says so when no sweep was given (tests/load/test_sweep.py gives one)
    "environment",
)
QUANTILES = {"p50": 0.5, "p95": 0.95, "p99": 0.99, "p99.9": 0.999}


def data(report: ReportPaths) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(report.data.read_text())
    return loaded


def table(report: ReportPaths, section: str, name: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = data(report)["sections"][section]["tables"][name]
    return rows


def summary_of(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((path / "summary.json").read_text())
    return loaded


def manifest_of(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((path / "manifest.json").read_text())
    return loaded


def md_row(report: ReportPaths, *cells: str) -> str:
    """The Markdown table line that starts with these cells."""
    prefix = "| " + " | ".join(cells) + " |"
    lines = [line for line in report.markdown.read_text().splitlines() if line.startswith(prefix)]
    assert lines, f"no row starting {prefix!r}"
    return lines[0]


def committed_steps(path: Path) -> pd.DataFrame:
    """Per committed step, straight from steps.parquet: wall ms, LLM ms, tool ms."""
    steps = pd.read_parquet(path / "steps.parquet")
    keys = ["backend", "run_id", "step"]
    commits = steps[(steps["phase"] == "commit") & (steps["outcome"] == "ok")]
    ends = commits.groupby(keys)["end"].max()
    starts = steps.groupby(keys)["start"].min()
    timed = steps[steps["outcome"] != "invoke"]
    llm = timed[timed["phase"] == "reason"].groupby(keys)["service_ms"].sum()
    tool = timed[timed["phase"] == "act"].groupby(keys)["service_ms"].sum()
    frame = pd.DataFrame({"step_ms": (ends - starts.reindex(ends.index)) * 1000})
    frame["llm_ms"] = llm.reindex(frame.index).fillna(0.0)
    frame["tool_ms"] = tool.reindex(frame.index).fillna(0.0)
    return frame.reset_index()


def fault_class(path: Path) -> str:
    scenario = manifest_of(path)["scenario"]
    kinds = list(dict.fromkeys(f["kind"] for f in scenario["faults"]))
    return f"{scenario['name']} ({', '.join(kinds) if kinds else 'no faults'})"


def test_every_section_is_written_to_html_markdown_and_json(report: ReportPaths) -> None:
    html, markdown = report.html.read_text(), report.markdown.read_text()
    for key in SECTIONS:
        assert f'<section id="{key}">' in html
        assert f'<a id="{key}"></a>' in markdown
        section = data(report)["sections"][key]
        assert section["reading"] and "\n" not in section["reading"]
        assert f"> {section['reading']}" in markdown
    assert html.count('<p class="reading">') == len(SECTIONS)
    for figure in report.figures:
        assert figure.parent == report.markdown.parent, "PNGs sit beside report.md"
        assert figure.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
        assert f"]({figure.name})" in markdown
    names = {f.stem for f in report.figures}
    assert {"integrity", "latency_cdf", "timeline_1", "recovery", "wasted", "bloat"} <= names


def test_the_report_leads_with_findings_and_ends_with_provenance(report: ReportPaths) -> None:
    html, markdown = report.html.read_text(), report.markdown.read_text()
    at_html = [html.index(f'<section id="{key}">') for key in SECTIONS]
    at_md = [markdown.index(f'<a id="{key}"></a>') for key in SECTIONS]
    assert at_html == sorted(at_html) and at_md == sorted(at_md)
    assert list(data(report)["sections"]) == list(SECTIONS)
    first_table = html.index("<table")
    assert html.index('<section id="summary">') < first_table < html.index('id="integrity"')
    assert html.index('data-name="environment"') > html.index('<section id="scaling">')


def test_findings_say_what_was_lost_how_often_and_how_to_reproduce(
    report: ReportPaths, runs: Runs
) -> None:
    """Each cell's row is what its summary.json says, in words; the reading is the
    console's three-line headline."""
    from harness.headline import LOSS, headline_lines, outcomes_from_results

    rows = {(r["fault_class"], r["backend"]): r for r in table(report, "summary", "summary")}
    outcomes = [o for p in (runs.steady, runs.faulty) for o in outcomes_from_results(p)]
    assert len(rows) == len(outcomes) == 3
    for path in (runs.steady, runs.faulty):
        manifest = manifest_of(path)
        for backend, summary in summary_of(path).items():
            row = rows[(fault_class(path), backend)]
            evidence = summary["evidence"]
            broken = evidence["n"] - evidence["passed"]
            assert row["how_often"].startswith(f"{broken} of {evidence['n']} ")
            assert row["interval"] == f"[{evidence['lower']:.3f}, {evidence['upper']:.3f}]"
            for verdict, count in summary["anomalies"].items():
                said = f"{LOSS[verdict]} in {count} run"
                assert (said in row["what"]) == bool(count), (verdict, row["what"])
            assert row["reproduce"] == (
                f"durabench run {manifest['scenario_path']} --backend "
                + (f"'{backend}'" if "?" in backend else backend)
            )
    faulty = rows[(fault_class(runs.faulty), "baseline")]
    assert faulty["result"] == "FAIL" and "lost steps" in faulty["what"]
    assert next(iter(rows)) == (fault_class(runs.faulty), "baseline"), "failing cells first"
    lines = headline_lines(outcomes)
    reading = data(report)["sections"]["summary"]["reading"]
    assert reading.startswith("FAIL: 1 of 3 cells lost or duplicated work (baseline)")
    assert "Worst: baseline under faulty (pause, kill): lost steps in" in reading
    assert reading == ". ".join(x[:1].upper() + x[1:] for x in lines) + "."


def test_the_html_is_self_contained(report: ReportPaths) -> None:
    html = report.html.read_text()
    assert "<script" not in html and "<link" not in html and "@import" not in html
    sources = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert sources and all(s.startswith(("data:image/png;base64,", "#")) for s in sources)
    assert html.count("data:image/png;base64,") == len(report.figures)
    assert "Content-Security-Policy" in html


def test_environment_names_host_cores_versions_commit_seeds_and_the_command(
    report: ReportPaths, runs: Runs
) -> None:
    facts = {row["fact"]: row["value"] for row in table(report, "environment", "environment")}
    env = manifest_of(runs.steady)["environment"]
    assert facts["host"] == env["host"]
    assert facts["cores"] == str(env["cpus"])
    commits = [
        manifest_of(p)["environment"]["git_commit"] or "unknown" for p in (runs.steady, runs.faulty)
    ]
    assert facts["commit"] == ", ".join(dict.fromkeys(commits))
    assert facts["seeds"] == str(manifest_of(runs.steady)["seed"])
    for name, version in env["packages"].items():
        assert version in facts[f"package {name}"]
    html = report.html.read_text()
    for path in (runs.steady, runs.faulty):
        command = manifest_of(path)["command"]
        assert command and command in report.markdown.read_text()
        assert html_escape(command) in html  # quoted options (`-m 'a or b'`) included


def test_integrity_matrix_matches_each_summary(report: ReportPaths, runs: Runs) -> None:
    rows = {(r["fault_class"], r["backend"]): r for r in table(report, "integrity", "integrity")}
    for path in (runs.steady, runs.faulty):
        for backend, summary in summary_of(path).items():
            row = rows[(fault_class(path), backend)]
            assert row["runs"] == summary["runs"]
            assert row["passed"] == summary["passed"]
            assert round(row["integrity"], 6) == summary["integrity"]
            assert row["trials"] == summary["trials"]
            assert round(row["pass_k"], 6) == summary["pass_k"]
            for verdict, count in summary["anomalies"].items():
                assert row[f"anomalies.{verdict}"] == count
            evidence = summary["evidence"]  # the exposed runs' interval, or all runs'
            assert (row["n"], row["result"]) == (evidence["n"], summary["result"])
            assert row["lower"] == pytest.approx(evidence["lower"])
            assert row["upper"] == pytest.approx(evidence["upper"])
            exposure = summary["exposure"]
            assert row["exposed"] == (None if exposure is None else exposure["exposed_runs"])
            shown = md_row(report, fault_class(path), backend)
            assert f"[{evidence['lower']:.3f}, {evidence['upper']:.3f}]" in shown
            assert f"| {format_value(row['integrity'], 'integrity')} |" in shown
    assert summary_of(runs.steady)["baseline"]["trials"] == 2, "pass^k is shown for 2 trials"
    assert "pass^k" in md_row(report, "fault class", "backend")
    assert summary_of(runs.faulty)["baseline"]["integrity"] < 1.0, "the faults did damage"
    alt = data(report)["sections"]["integrity"]["figures"][0]
    assert " n=" in json.dumps(alt), "the heatmap's cells carry n"


def test_latency_quantiles_are_those_of_steps_parquet(report: ReportPaths, runs: Runs) -> None:
    rows = table(report, "latency", "latency")
    for path in (runs.steady, runs.faulty):
        steps = committed_steps(path)
        for backend, summary in summary_of(path).items():
            mine = steps[steps["backend"] == backend]
            parts = {
                "step": mine["step_ms"],
                "llm": mine["llm_ms"],
                "tool": mine["tool_ms"],
                "overhead": mine["step_ms"] - mine["llm_ms"] - mine["tool_ms"],
            }
            for component, values in parts.items():
                (row,) = [
                    r
                    for r in rows
                    if r["fault_class"] == fault_class(path)
                    and r["backend"] == backend
                    and r["component"] == component
                ]
                assert row["steps"] == len(values) == summary["committed_steps"]
                for name, q in QUANTILES.items():
                    assert row[name] == pytest.approx(float(np.quantile(values, q)), abs=1e-6)
            step = next(
                r
                for r in rows
                if r["fault_class"] == fault_class(path)
                and r["backend"] == backend
                and r["component"] == "step"
            )
            for name in ("p50", "p95", "p99"):
                assert round(step[name], 4) == summary["step_latency_ms"][name]
            shown = md_row(report, fault_class(path), backend, "step")
            assert f"| {format_value(step['p99'])} |" in shown


def test_durability_overhead_is_the_ratio_to_the_baseline_in_the_same_run(
    report: ReportPaths, runs: Runs
) -> None:
    (row,) = table(report, "durability", "durability")
    summary = summary_of(runs.steady)
    assert row["backend"] == "langgraph:sqlite"
    assert row["fault_class"] == fault_class(runs.steady)
    steps = committed_steps(runs.steady)
    overhead = steps["step_ms"] - steps["llm_ms"] - steps["tool_ms"]
    own = float(np.quantile(overhead[steps["backend"] == "langgraph:sqlite"], 0.5))
    base = float(np.quantile(overhead[steps["backend"] == "baseline"], 0.5))
    assert round(own, 4) == summary["langgraph:sqlite"]["overhead_ms"]["p50"]
    assert row["ratio_p50"] == pytest.approx(own / base)
    assert row["extra_ms_p50"] == pytest.approx(own - base)
    assert row["floor_ratio_p50"] is None
    notes = data(report)["sections"]["durability"]["notes"]
    assert any("--with-floor" in n for n in notes), "where the floor ratios are is said"
    assert "x the baseline" in data(report)["sections"]["durability"]["reading"]


def test_fidelity_section_says_when_no_floor_was_measured(report: ReportPaths) -> None:
    section = data(report)["sections"]["fidelity"]
    assert "durabench run --with-floor" in section["reading"]
    (row, *_) = table(report, "fidelity", "fidelity")
    assert row["step_vs_floor"] is None and row["start_p50"] is not None


def test_timeline_shades_each_fault_where_faults_parquet_puts_it(
    report: ReportPaths, runs: Runs
) -> None:
    faults = pd.read_parquet(runs.faulty / "faults.parquet")
    zero = pd.read_parquet(runs.faulty / "steps.parquet")["start"].min()
    windows = table(report, "timeline", "faults_1")
    assert [w["kind"] for w in windows] == [f["kind"] for f in FAULTS]
    for window in windows:
        (fault,) = faults[faults["kind"] == window["kind"]].to_dict("records")
        assert window["start_s"] == pytest.approx(fault["actual_start"] - zero)
        assert window["end_s"] == pytest.approx(fault["actual_end"] - zero)
    # the figure really carries one colour per fault kind: the pause's translucent
    # span over white, and the kill's line
    pixels = (imread(report.markdown.parent / "timeline_1.png")[..., :3] * 255).reshape(-1, 3)

    def present(rgb: tuple[float, float, float]) -> bool:
        return bool((np.abs(pixels - np.array(rgb)).max(axis=1) <= 4).any())

    def hex_rgb(colour: str) -> np.ndarray:
        return np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)], dtype=float)

    pause = 0.72 * 255 + 0.28 * hex_rgb(KIND_STYLE["pause"][0])
    kill = 0.1 * 255 + 0.9 * hex_rgb(KIND_STYLE["kill"][0])
    assert present(tuple(pause)), "pause window shaded in its colour"
    assert present(tuple(kill)), "kill drawn in its colour"
    assert len(data(report)["sections"]["timeline"]["figures"]) == 1, "only faulty had faults"


def test_recovery_times_and_wasted_work_match_the_summary(report: ReportPaths, runs: Runs) -> None:
    summary = summary_of(runs.faulty)["baseline"]
    recovery = {r["kind"]: r for r in table(report, "recovery", "recovery")}
    pause = summary["faults"]["pause"]
    assert pause["affected_runs"] > 0, "the pause caught runs mid-flight"
    assert recovery["pause"]["affected"] == pause["affected_runs"]
    assert recovery["pause"]["unrecovered"] == pause["unrecovered_runs"]
    for name in ("p50", "p95", "p99"):
        assert round(recovery["pause"][name], 4) == pause["recovery_ms"][name]
    wasted = {(r["fault_class"], r["backend"]): r for r in table(report, "recovery", "wasted")}
    for path in (runs.steady, runs.faulty):
        for backend, s in summary_of(path).items():
            row = wasted[(fault_class(path), backend)]
            assert row["wasted_llm_calls"] == s["wasted"]["llm_calls"]
            assert row["wasted_tool_executions"] == s["wasted"]["tool_executions"]
            assert row["wasted_tokens"] == s["wasted"]["llm_tokens"], "beyond the oracle's"
            assert row["acts_indeterminate"] == s["acts_indeterminate"]


def test_state_bloat_is_what_runs_parquet_says_was_persisted(
    report: ReportPaths, runs: Runs
) -> None:
    rows = {(r["fault_class"], r["backend"]): r for r in table(report, "bloat", "bloat")}
    persisted = pd.read_parquet(runs.steady / "runs.parquet")
    for backend, s in summary_of(runs.steady).items():
        row = rows[(fault_class(runs.steady), backend)]
        mine = persisted[persisted["backend"] == backend]
        assert row["steps_persisted"] == mine["steps_persisted"].sum()
        assert row["bytes_persisted"] == mine["bytes_persisted"].sum()
        assert round(row["bytes_per_step"], 2) == s["bytes_per_step"]
        assert row["history_per_step"] == pytest.approx(
            mine["history_length"].sum() / mine["steps_persisted"].sum()
        )
    assert rows[(fault_class(runs.steady), "langgraph:sqlite")]["bytes_per_step"] > 0


def test_anomalies_show_the_first_and_worst_run_with_the_checker_detail(
    report: ReportPaths, runs: Runs
) -> None:
    summary = summary_of(runs.faulty)["baseline"]
    rows = {r["verdict"]: r for r in table(report, "anomalies", "anomalies")}
    failing = {v: n for v, n in summary["anomalies"].items() if n}
    assert failing and set(rows) == set(failing)
    persisted = pd.read_parquet(runs.faulty / "runs.parquet").sort_values("started_at")
    notes = data(report)["sections"]["anomalies"]["notes"]
    for verdict, count in failing.items():
        assert rows[verdict]["false"] == count
        bad = persisted[(persisted[verdict] == False) | persisted[verdict].isna()]  # noqa: E712
        first = bad.iloc[0]
        assert rows[verdict]["first_run"].startswith(str(first["run_id"]))
        detail = json.loads(first["verdict_detail"])[verdict]
        (note,) = [n for n in notes if n.startswith(f"{verdict} = ") and ", first" in n]
        for key, value in detail.items():
            if not isinstance(value, list | dict):
                assert f"{key}={json.dumps(value)}" in note or f"{key}={value}" in note
    if "state_match" in failing:
        diffs = json.loads(
            persisted[persisted["state_match"] == False].iloc[0]["verdict_detail"]  # noqa: E712
        )["state_match"]["diffs"]
        markdown = report.markdown.read_text()
        for diff in diffs:
            assert (diff["path"] or "(the whole state)") in markdown


def test_absent_data_is_said_not_failed(runs: Runs, tmp_path: Path) -> None:
    # a run killed right after it started: a manifest and nothing else
    stopped = tmp_path / "stopped"
    stopped.mkdir()
    manifest = {**manifest_of(runs.steady), "status": "interrupted", "bench_id": "stopped"}
    (stopped / "manifest.json").write_text(json.dumps(manifest))
    paths = build_report([runs.steady, stopped], tmp_path / "out")
    sections = data(paths)["sections"]
    assert "No results here injected a fault" in sections["timeline"]["reading"]
    assert sections["recovery"]["notes"] == [
        "No recovery times: no fault was injected while runs were in flight."
    ]
    intact = all(n == 0 for s in summary_of(runs.steady).values() for n in s["anomalies"].values())
    assert sections["anomalies"]["reading"].startswith("No anomalies") == intact
    results = {r["results"]: r for r in sections["environment"]["tables"]["results"]}
    assert results["stopped"]["status"] == "interrupted" and results["stopped"]["runs"] == 0

    only_stopped = build_report([stopped], tmp_path / "out2")
    sections = data(only_stopped)["sections"]
    assert sections["integrity"]["reading"] == "No agent runs were judged in these results."
    assert sections["latency"]["reading"].startswith("No step committed")
    assert only_stopped.figures == []


def test_a_suite_directory_stands_for_its_cells(runs: Runs, tmp_path: Path) -> None:
    suite = tmp_path / "suite-20250101T000000-quick"
    (suite / "cells").mkdir(parents=True)
    # a suite directory that was moved: the matrix names the old place, the cell is in cells/
    shutil.copytree(runs.faulty, suite / "cells" / runs.faulty.name)
    cells = [
        Cell("steady", "baseline", results=str(runs.steady), status="ok"),
        Cell("faulty", "baseline", results=f"/gone/cells/{runs.faulty.name}", status="ok"),
        Cell("restart", "baseline", status="failed", error="ComponentError: no store"),
    ]
    (suite / "matrix.json").write_text(
        json.dumps({"exit_code": 3, "cells": [asdict(c) for c in cells]})
    )
    results = load_results([suite])
    assert [i.path for i in results.items] == [runs.steady, suite / "cells" / runs.faulty.name]
    assert [c["fault_class"] for c in results.missing] == ["restart"]

    paths = build_report([suite], tmp_path / "out")
    sections = data(paths)["sections"]
    assert sections["environment"]["notes"] == [
        "Suite cell restart x baseline has no results (failed: ComponentError: no store)."
    ]
    assert len(sections["integrity"]["tables"]["integrity"]) == 3


def test_a_directory_that_is_not_results_is_refused_by_name(tmp_path: Path) -> None:
    from harness.errors import ResultsError

    with pytest.raises(ResultsError, match="neither a results directory"):
        build_report([tmp_path], tmp_path / "out")
    with pytest.raises(ResultsError, match="no such directory"):
        build_report([tmp_path / "nope"], tmp_path / "out")
