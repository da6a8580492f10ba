"""The README's two quickstart commands are the ones CI and the tests run."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def quickstart_commands() -> list[str]:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section)


def test_quickstart_has_exactly_two_commands() -> None:
    commands = quickstart_commands()
    assert len(commands) == 2
    assert all("\n" not in c for c in commands)


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    test_command = quickstart_commands()[1]
    assert "pytest" in test_command
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert test_command in ci


def test_the_benchmark_command_is_the_one_the_cli_test_runs() -> None:
    run_command = quickstart_commands()[0]
    assert run_command.endswith(".venv/bin/durabench run scenarios/smoke.yaml")
    cli_tests = (REPO / "tests" / "test_cli.py").read_text()
    assert '"run", "scenarios/smoke.yaml"' in cli_tests
