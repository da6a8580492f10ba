"""The reproduce line a headline, a report and a JUnit failure carry: a command a reader
can paste, naming the scenario as they would from the checkout."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.headline import reproduce_command


def test_a_scenario_inside_the_working_directory_is_named_relative_to_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    scenario = tmp_path / "scenarios" / "chaos" / "kill.yaml"
    assert reproduce_command(str(scenario), "pgstore") == (
        "durabench run scenarios/chaos/kill.yaml --backend pgstore"
    )


def test_a_scenario_elsewhere_keeps_its_path_and_options_are_quoted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert reproduce_command("/elsewhere/kill.yaml", "langgraph:sqlite?durability=sync") == (
        "durabench run /elsewhere/kill.yaml --backend 'langgraph:sqlite?durability=sync'"
    )
    assert reproduce_command(None, "pgstore") is None
