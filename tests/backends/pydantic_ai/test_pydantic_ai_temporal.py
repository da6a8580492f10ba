"""`pydantic-ai:temporal` end to end through the runner on a real Temporal dev server,
with real worker processes killed by SIGKILL (tests/backends/temporal_frameworks.py),
and the integration's own shape: the verify check as `ModelRetry`, the state read from
the workflow result, the query, or the history alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.backends.temporal.support import DevServer
from tests.conftest import ScenarioFactory

pytest.importorskip("pydantic_ai")
from tests.backends.temporal_frameworks import (
    crash_points_are_survived,
    killed_mid_tool_call_loses_nothing,
)

pytestmark = pytest.mark.integration

BACKEND = "pydantic-ai:temporal?heartbeat_s=1&sticky_s=1&task_timeout_s=2"


@pytest.mark.slow  # the contract suite kills its worker by default; CI runs this with -m slow
async def test_a_worker_killed_mid_tool_call_loses_nothing(
    write_scenario: ScenarioFactory, tmp_path: Path, temporal_server: DevServer
) -> None:
    await killed_mid_tool_call_loses_nothing(BACKEND, write_scenario, tmp_path, temporal_server)


@pytest.mark.slow
async def test_crashes_at_phase_boundaries_and_between_steps_are_survived(
    write_scenario: ScenarioFactory, tmp_path: Path, temporal_server: DevServer
) -> None:
    await crash_points_are_survived(BACKEND, write_scenario, tmp_path, temporal_server)
