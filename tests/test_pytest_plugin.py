"""The pytest plugin as a user meets it (pytester: a real pytest session in a
subprocess): the `durabench` fixture runs a scenario and returns the evidence to assert
on, the marker gives it defaults, each test keeps its results, and the terminal report
ends with one line. A session that does not use it sees no difference."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.conftest import TINY

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parent.parent
# the plugin by module, whether or not the installed entry point registers it already
PLUGIN = ("-p", "no:durabench", "-p", "harness.pytest_plugin")
KILLS = [{"kind": "kill", "after_steps": 4}, {"kind": "kill", "after_steps": 10}]
# slow enough answers that runs are still in flight when the kills land: at zero latency
# the baseline can finish all 24 steps before the first kill, and nothing is exposed
SLOWER_LLM = {"latency": {"distribution": "constant", "ms": 30}}


def test_the_plugin_is_registered_through_the_pytest11_entry_point() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["entry-points"]["pytest11"] == {"durabench": "harness.pytest_plugin"}


def test_loading_the_plugin_imports_nothing_of_the_harness() -> None:
    """So registering it does not slow any pytest session: the harness (pandas, the
    runner) is imported on the first durabench.run(), not before."""
    code = (
        "import sys, harness.pytest_plugin; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('harness', 'backends', 'pandas', 'pyarrow', 'matplotlib')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "['harness', 'harness.pytest_plugin']"


def test_a_session_that_does_not_use_it_is_unchanged(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_plain():\n    assert True\n")
    result = pytester.runpytest_subprocess(*PLUGIN)
    result.assert_outcomes(passed=1)
    assert "durabench" not in result.stdout.str()


@pytest.mark.integration
def test_users_assert_durability_in_their_own_tests(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", steady=json.dumps(TINY))
    pytester.makefile(
        ".yaml", killed=json.dumps({**TINY, "name": "killed", "llm": SLOWER_LLM, "faults": KILLS})
    )
    pytester.makepyfile(
        """
        import pytest

        def test_baseline_holds_without_faults(durabench):
            result = durabench.run("steady.yaml", backend="baseline")
            assert result.passed and result.integrity == 1.0
            assert 0 < result.integrity_lower_bound < 1.0, "6 runs bound it, no more"
            assert result.n == result.runs == 6 and result.anomalies == {}
            assert (result.results / "summary.json").is_file()
            assert durabench.results == [result]

        @pytest.mark.durabench(scenario="killed.yaml", backend="baseline")
        def test_baseline_survives_kills(durabench):
            result = durabench.run()
            assert result.integrity_lower_bound >= 0.9, result.headline
        """
    )
    out = pytester.path / "durabench-results"
    junit = pytester.path / "junit.xml"
    result = pytester.runpytest_subprocess(
        *PLUGIN, f"--durabench-out={out}", f"--junitxml={junit}", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=1, failed=1)
    text = result.stdout.str()
    # the failure says why, in durabench's words: the headline of the run
    assert "AssertionError: FAIL: 1 of 1 cell lost or duplicated work (baseline)" in text
    assert "worst: baseline under killed (kill): lost steps in" in text
    summary = [line for line in result.outlines if line.startswith("durabench: ")]
    assert summary == [
        summary[0]  # one line
    ] and summary[0].startswith("durabench: 2 run(s) in 2 test(s), 1 passed every verdict; ")
    assert "weakest: baseline killed: fail, integrity " in summary[0]
    # results kept per test, in a directory named after it
    dirs = sorted(p.name for p in out.iterdir())
    assert dirs == [
        "test_users_assert_durability_in_their_own_tests.py_test_baseline_holds_without_faults",
        "test_users_assert_durability_in_their_own_tests.py_test_baseline_survives_kills",
    ]
    for directory in out.iterdir():
        (run,) = [p for p in directory.iterdir() if p.is_dir() and not p.is_symlink()]
        assert (run / "runs.parquet").is_file()
    assert 'name="durabench:baseline" value="pass integrity=1.000' in junit.read_text()
