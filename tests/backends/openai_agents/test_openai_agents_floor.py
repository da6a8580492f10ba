"""`openai-agents:temporal`'s raw floor: the framework's own program (`Runner.run` in a
plain workflow, the adapter's `activity_as_tool` tools, Temporal's `OpenAIAgentsPlugin`)
on a real Temporal dev server, listed before the hand-written Temporal floor
(tests/backends/framework_floors.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.backends.temporal.support import DevServer
from tests.conftest import ScenarioFactory, Services

pytest.importorskip("agents")
from tests.backends.framework_floors import (
    floor_lists_its_own_program_first,
    floor_times_every_committed_step,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BACKEND = "openai-agents:temporal"


def test_the_floor_program_times_every_committed_step_of_every_run(
    services: Services, temporal_server: DevServer
) -> None:
    floor_times_every_committed_step(
        "backends.openai_agents.floor", BACKEND, services, temporal_server
    )


async def test_with_floor_lists_the_framework_floor_before_the_temporal_floor(
    write_scenario: ScenarioFactory, tmp_path: Path, temporal_server: DevServer
) -> None:
    await floor_lists_its_own_program_first(
        BACKEND, BACKEND, write_scenario, tmp_path, temporal_server
    )
