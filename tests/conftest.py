"""Shared fixtures: scenarios written to disk, and real service processes on loopback."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.platform.local import LocalPlatform
from harness.postgres import EmbeddedServer, embedded_server, wait_ready
from harness.runner import service_specs
from harness.scenario import Scenario, load_scenario

TINY: dict[str, Any] = {
    "name": "tiny",
    "seed": 11,
    "runs": 6,
    "steps": 4,
    "load": {"concurrency": 3},
    "workers": 1,
    "thought_bytes": 64,
    "tool_mix": {"search_supplier": 1, "reserve_budget": 1},
    "verify": {"failure_probability": 0.3, "on_failure": "retry_act", "max_attempts": 3},
    "deadline_s": 30,
    "faults": [],
}


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


ScenarioFactory = Callable[..., Path]


@pytest.fixture
def write_scenario(tmp_path: Path) -> ScenarioFactory:
    """Write TINY with overrides (nested dicts merge; None removes a key) to a YAML file."""

    def write(name: str = "scenario.yaml", **overrides: Any) -> Path:
        data = _merge(TINY, overrides)
        data = {k: v for k, v in data.items() if v is not None}
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    return write


@dataclass(frozen=True)
class Services:
    scenario: Scenario
    scenario_path: Path
    llm_url: str  # OpenAI-compatible base URL (…/v1)
    tools_url: str
    workdir: Path
    platform: LocalPlatform


@pytest.fixture
def services(write_scenario: ScenarioFactory, tmp_path: Path) -> Iterator[Services]:
    """The simulated LLM and the tool service for TINY, as real processes."""
    path = write_scenario()
    workdir = tmp_path / "services"
    workdir.mkdir()
    scenario = load_scenario(path)
    with LocalPlatform(workdir) as platform:
        started = {
            spec.role: platform.start(spec) for spec in service_specs(scenario, path, workdir)
        }
        yield Services(
            scenario=scenario,
            scenario_path=path,
            llm_url=f"http://127.0.0.1:{started['llm'].spec.port}/v1",
            tools_url=f"http://127.0.0.1:{started['tools'].spec.port}",
            workdir=workdir,
            platform=platform,
        )


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    """One embedded Postgres (harness.postgres) for the whole session, for every test that
    runs against an existing server (the `--pg-dsn` path)."""
    root = tmp_path_factory.mktemp("embedded-postgres")
    server = embedded_server(root / "store")
    with LocalPlatform(root) as platform:
        platform.start(server.component())
        wait_ready(server.dsn)
        yield server


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The default run leaves the `slow` cases out (CI runs them with `-m slow`); a run
    that selects by marker (`-m ...`) or measures (`--benchmark-enable`) keeps them."""
    if config.option.markexpr or config.getoption("benchmark_enable", default=False):
        return
    slow = [item for item in items if item.get_closest_marker("slow")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if not item.get_closest_marker("slow")]
