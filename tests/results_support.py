"""A real, small results directory for the tests that read results back (check, the
report loader, the fuzz test): the TINY scenario on the baseline, run once per module,
and copies of it for each test to damage."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import yaml

from harness.results import ResultsDir
from harness.runner import BenchmarkRun
from tests.conftest import TINY

__all__ = ["copy_results", "make_results"]


def make_results(root: Path) -> Path:
    """A complete baseline run of TINY under `root`; its results directory. The process
    umask is kept as it was (creating results sets it)."""
    root.mkdir(parents=True, exist_ok=True)
    scenario = root / "tiny.yaml"
    scenario.write_text(yaml.safe_dump(TINY, sort_keys=False))
    mask = os.umask(0o077)
    os.umask(mask)
    try:
        results: ResultsDir = asyncio.run(
            BenchmarkRun(scenario, ["baseline"], root / "results").execute()
        )
    finally:
        os.umask(mask)
    return results.path


def copy_results(source: Path, target: Path) -> Path:
    """A private copy of a results directory (without its backend's raw files)."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("baseline", "report"))
    return target
