"""Workflow code versions against histories captured from real runs (the SDK's Replayer).

A v2 that changes the command sequence without `workflow.patched` must be caught
as non-determinism before it is deployed; the patched v2 must replay v1 histories.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory

from backends.temporal.connection import ConnectSettings, connect
from backends.temporal.versioning import WORKFLOW_VERSIONS, fetch_histories, replay_histories
from harness.oracle import run_ids
from harness.runner import BenchmarkRun
from tests.backends.temporal.support import DevServer
from tests.conftest import ScenarioFactory

pytestmark = pytest.mark.integration


async def _histories_of(
    write_scenario: ScenarioFactory, tmp_path: Path, server: DevServer, backend: str
) -> list[WorkflowHistory]:
    """Run a scenario with verify retries and an approval signal; fetch every history."""
    path = write_scenario(approval={"after_step": 1, "delay_s": 0.05, "ttl_s": 10})
    bench = BenchmarkRun(path, [backend], tmp_path / "r", external=server.external())
    results = await bench.execute()
    assert results.read_json("summary.json")[backend]["integrity"] == 1.0
    prefix = f"durabench-{results.path.name}"
    client = await connect(ConnectSettings(server.address))
    ids = [f"{prefix}-{run_id}" for run_id in run_ids(bench.scenario)]
    return await fetch_histories(client, ids)


async def _kinds(histories: list[WorkflowHistory], version: str) -> set[str]:
    findings = await replay_histories(histories, WORKFLOW_VERSIONS[version])
    assert [f.workflow_id for f in findings] == [h.workflow_id for h in histories]
    assert all(f.version == version for f in findings)
    return {f.kind for f in findings}


async def test_v1_histories_replay_on_v1_and_patched_v2_but_not_on_unpatched_v2(
    write_scenario: ScenarioFactory, tmp_path: Path, temporal_server: DevServer
) -> None:
    histories = await _histories_of(write_scenario, tmp_path, temporal_server, "temporal")

    assert await _kinds(histories, "v1") == {"ok"}
    assert await _kinds(histories, "v2-patched") == {"ok"}
    findings = await replay_histories(histories, WORKFLOW_VERSIONS["v2-unpatched"])
    assert {f.kind for f in findings} == {"nondeterminism"}
    assert all(f.anomaly and "Nondeterminism" in f.message for f in findings)


async def test_runs_on_patched_v2_complete_and_their_histories_need_v2(
    write_scenario: ScenarioFactory, tmp_path: Path, temporal_server: DevServer
) -> None:
    histories = await _histories_of(
        write_scenario, tmp_path, temporal_server, "temporal?version=v2-patched"
    )

    assert await _kinds(histories, "v2-patched") == {"ok"}
    assert await _kinds(histories, "v1") == {"nondeterminism"}  # no rolling back past it
