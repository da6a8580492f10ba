"""The README's two quickstart commands are the ones CI and the tests run."""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
pytest_plugins = ["pytester"]


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


def fidelity_commands() -> list[str]:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Fidelity: raw floors", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.+?)\n```", section, flags=re.S)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def test_the_fidelity_section_shows_the_floor_command_and_the_run_with_floor() -> None:
    commands = fidelity_commands()
    assert any(c.startswith("durabench floor ") for c in commands)
    assert any(c.startswith("durabench run ") and "--with-floor" in c for c in commands)


@pytest.mark.integration
@pytest.mark.slow  # CI runs the README fidelity commands with -m slow
@pytest.mark.parametrize("command", fidelity_commands())
def test_each_fidelity_command_runs_as_written(command: str, tmp_path: Path) -> None:
    from tests.test_cli import durabench

    args = shlex.split(command)
    assert args[0] == "durabench"
    done = durabench(*args[1:], "--out", str(tmp_path), timeout=900)
    assert done.returncode == 0, done.stderr
    (results,) = [p for p in tmp_path.iterdir() if p.is_dir() and not p.is_symlink()]
    if args[1] == "run":
        summary = json.loads((results / "summary.json").read_text())
        assert all(entry["floor"]["step_vs_floor"] > 0 for entry in summary.values())
    else:
        assert (results / "floors.parquet").is_file()


# -- "MCP transport" and "Bring your own model": every command block runs as written ----

OWN_SECTIONS = ("MCP transport", "Bring your own model")
# the LiteLLM proxy's start and its runs take about 25 s: with the long cases
SECTION_CASES = (OWN_SECTIONS[0], pytest.param(OWN_SECTIONS[1], marks=pytest.mark.slow))


def command_blocks(title: str) -> list[list[str]]:
    readme = (REPO / "README.md").read_text()
    section = readme.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.+?)\n```", section, flags=re.S)
    return [[line for line in block.splitlines() if line.strip()] for block in blocks]


def test_the_mcp_and_byom_sections_show_their_commands() -> None:
    mcp = [c for block in command_blocks("MCP transport") for c in block]
    assert "durabench run scenarios/mcp/procurement.yaml --backend pgstore" in mcp
    byom = [c for block in command_blocks("Bring your own model") for c in block]
    assert any("scenarios/byom/procurement.yaml" in c for c in byom)
    assert any("litellm --config deploy/litellm/config.yaml" in c for c in byom)
    readme = (REPO / "README.md").read_text()
    for path in re.findall(r"`python -m pytest (tests/\S+\.py)", readme):
        assert (REPO / path).is_file(), path


@pytest.mark.integration
@pytest.mark.parametrize("title", SECTION_CASES)
def test_each_mcp_and_byom_command_runs_as_written(title: str, tmp_path: Path) -> None:
    """The section's commands in order, as a reader follows it: background lines
    (`... &`) are started, and waited for on their port, until the section ends; each
    `durabench run` runs with `--out`, and every backend it ran keeps integrity 1.0.
    Without the LiteLLM proxy installed, the commands from its line on are left out."""
    import os
    import socket
    import subprocess
    import sys
    import time
    import warnings

    from tests.services.gateway_support import litellm_binary
    from tests.test_cli import DURABENCH

    for name in ("scenarios", "deploy"):
        (tmp_path / name).symlink_to(REPO / name)
    started: list[subprocess.Popen[bytes]] = []
    lines = [line for block in command_blocks(title) for line in block]
    try:
        for line in lines:
            words = shlex.split(line.removesuffix("&"))
            env = dict(os.environ, COLUMNS="200")
            while "=" in words[0] and not words[0].startswith("-"):
                key, _, value = words.pop(0).partition("=")
                env[key] = value
            program = {"durabench": DURABENCH, "python": sys.executable}.get(words[0])
            if words[0].endswith("bin/litellm"):
                program = litellm_binary()
                if program is None:
                    warnings.warn(
                        "LiteLLM is not installed: its README commands not run", stacklevel=1
                    )
                    return
                env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
            assert program is not None, f"unknown program in {line!r}"
            if line.rstrip().endswith("&"):
                log = (tmp_path / f"background-{len(started)}.log").open("wb")
                started.append(
                    subprocess.Popen(
                        [program, *words[1:]], cwd=tmp_path, env=env, stdout=log, stderr=log
                    )
                )
                port = int(words[words.index("--port") + 1])
                deadline = time.monotonic() + 180
                while True:
                    with socket.socket() as probe:
                        if probe.connect_ex(("127.0.0.1", port)) == 0:
                            break
                    assert time.monotonic() < deadline, f"{line!r} did not listen"
                    assert started[-1].poll() is None, f"{line!r} exited"
                    time.sleep(0.5)
                continue
            assert words[:2] == ["durabench", "run"], line
            args = [*words[1:], "--out", str(tmp_path / f"results-{lines.index(line)}")]
            done = subprocess.run(
                [program, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900
            )
            assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
            out = tmp_path / f"results-{lines.index(line)}"
            (results,) = [p for p in out.iterdir() if p.is_dir() and not p.is_symlink()]
            summary = json.loads((results / "summary.json").read_text())
            for backend, entry in summary.items():
                assert entry["integrity"] == 1.0, (backend, entry["result_reason"])
    finally:
        for process in started:
            process.terminate()
            process.wait(timeout=30)


def section_blocks(title: str, language: str = "bash") -> list[str]:
    readme = (REPO / "README.md").read_text()
    section = readme.split(f"## {title}", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"```{language}\n(.+?)\n```", section, flags=re.S)


def ci_commands() -> list[str]:
    return [
        line for b in section_blocks("CI: JUnit XML and job summaries") for line in b.split("\n")
    ]


def test_the_ci_suite_command_is_the_one_the_junit_test_runs() -> None:
    """tests/ci/test_junit.py runs the README's suite command and reads its JUnit back."""
    suite = ci_commands()[0]
    assert suite.startswith("durabench suite ") and "--junit junit.xml" in suite
    flat = " ".join((REPO / "tests" / "ci" / "test_junit.py").read_text().split())
    for arg in shlex.split(suite)[1:]:
        if not arg.endswith((".xml", ".md")):
            assert f'"{arg}"' in flat, arg


@pytest.mark.integration
def test_the_ci_run_command_writes_junit_as_written(tmp_path: Path) -> None:
    from tests.test_cli import durabench

    args = shlex.split(ci_commands()[1])
    assert args[:2] == ["durabench", "run"]
    done = durabench(*args[1:], "--out", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    junit = (tmp_path / "junit.xml").read_text()
    assert '<testcase classname="durabench.smoke_no_faults" name="baseline"' in junit
    assert done.stdout.splitlines()[-3].startswith("PASS: 0 of 1 cell lost or duplicated work")


@pytest.mark.integration
def test_the_pytest_example_runs_as_written(pytester: pytest.Pytester) -> None:
    (example,) = section_blocks("pytest: durability assertions in your own suite", "python")
    pytester.makepyfile(test_example=example)
    shutil.copytree(REPO / "scenarios", pytester.path / "scenarios")
    result = pytester.runpytest_subprocess(
        "-p", "no:durabench", "-p", "harness.pytest_plugin", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=2)
    assert any(line.startswith("durabench: 2 run(s) in 2 test(s)") for line in result.outlines)


@pytest.mark.integration
def test_the_metrics_command_serves_while_it_runs(tmp_path: Path) -> None:
    from tests.test_cli import durabench

    (command,) = [
        line
        for block in section_blocks("Metrics and dashboard (Prometheus, Grafana)")
        for line in block.split("\n")
    ]
    args = shlex.split(command)
    assert args[:2] == ["durabench", "run"] and "--metrics-port" in args
    done = durabench(*args[1:], "--out", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    port = args[args.index("--metrics-port") + 1]
    assert f"metrics: http://127.0.0.1:{port}/metrics" in done.stderr


def _readme_durabench_lines() -> list[str]:
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, re.S)
    joined = [b.replace("\\\n", " ") for b in blocks]
    return [
        line.split("#", 1)[0].strip()
        for block in joined
        for line in block.splitlines()
        if line.strip().startswith("durabench ")
    ]


def test_every_backend_and_scenario_a_readme_command_names_exists() -> None:
    """Each `durabench run|floor|suite|load|sweep|explore` line of the README names
    scenarios that resolve and backends that load with their options (the runs
    themselves are each backend's integration tests)."""
    import itertools
    import shlex

    from backends.base import load_backend
    from harness.scenario import resolve_scenario_path

    checked = 0
    for line in _readme_durabench_lines():
        words = shlex.split(line)
        command, args = words[1], words[2:]
        if command not in ("run", "floor", "suite", "load", "sweep", "explore"):
            continue
        scenario = args[0] if command != "suite" and args else "-"
        if not scenario.startswith(("-", "results/")):
            assert resolve_scenario_path(scenario).exists(), line
        for flag, value in itertools.pairwise(args):
            # mypackage.mymodule:MyBackend is the README's example of a third-party backend
            if flag in ("--backend", "-b") and not value.startswith("mypackage."):
                load_backend(value)
                checked += 1
    assert checked >= 20, checked


@pytest.mark.integration
def test_the_results_browser_command_serves_as_written(tmp_path: Path) -> None:
    """The README's `durabench serve` command, run from a directory with a results root
    (its port swapped for a free one), answers with the listing page."""
    import subprocess
    import urllib.request

    from tests.test_cli import DURABENCH

    (command,) = [line for b in section_blocks("Results browser") for line in b.split("\n")]
    args = shlex.split(command)
    assert args[:2] == ["durabench", "serve"] and "--port" in args
    (tmp_path / args[2]).mkdir()
    process = subprocess.Popen(
        [DURABENCH, *args[1:], "--port", "0"], cwd=tmp_path, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        url = re.findall(r"on (http://127\.0\.0\.1:\d+/)", process.stdout.readline())[0]
        with urllib.request.urlopen(url, timeout=60) as page:
            assert "no results directories under results" in page.read().decode()
    finally:
        process.terminate()
        process.wait(timeout=30)
