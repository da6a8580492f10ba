"""The Temporal backend's API driven directly: reading state back with and without a
live worker, refusing to mix runs, and a mid-run deploy of new workflow code."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from temporalio.client import WorkflowExecutionStatus

from backends.base import RunSpec
from backends.temporal import TemporalBackend
from backends.temporal.server import plan_server
from harness.errors import BackendError
from harness.oracle import expected_run, run_ids
from harness.state import PersistedRun
from tests.backends.temporal.support import DevServer, Stack, temporal_stack
from tests.conftest import ScenarioFactory

pytestmark = pytest.mark.integration

WAIT_S = 60.0
POLL_S = 0.1
WORKER = "temporal-worker-0"


async def _until(
    stack: Stack, run_id: str, done: Callable[[PersistedRun], bool], what: str
) -> PersistedRun:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while True:
        persisted = await stack.backend.inspect(run_id)
        if done(persisted):
            return persisted
        assert loop.time() < deadline, f"{run_id}: {what} not seen in {WAIT_S}s: {persisted}"
        await asyncio.sleep(POLL_S)


def _waiting(persisted: PersistedRun) -> bool:
    return persisted.state is not None and persisted.state.status == "waiting_approval"


def _deploy(stack: Stack, version: str) -> None:
    """Replace the running worker by one running another workflow code version."""
    [spec] = TemporalBackend(version=version).components(stack.env)
    stack.platform.stop(WORKER)
    stack.platform.start(spec)


@pytest.fixture
def waiting_scenario(write_scenario: ScenarioFactory) -> Path:
    """Runs that stop after step 1 for an approval nobody gives within the test."""
    return write_scenario(
        runs=2,
        steps=3,
        verify={"failure_probability": 0.0},
        approval={"after_step": 1, "delay_s": None, "ttl_s": 300},
        deadline_s=300,
    )


async def test_inspect_reads_the_history_when_no_worker_answers(
    waiting_scenario: Path, tmp_path: Path, temporal_server: DevServer
) -> None:
    async with temporal_stack(waiting_scenario, tmp_path, temporal_server.address) as stack:
        run_id = run_ids(stack.scenario)[0]
        await stack.backend.start(RunSpec(run_id, stack.scenario.deadline_s))
        queried = await _until(stack, run_id, _waiting, "waiting_approval")
        assert queried.extra["source"] == "query"

        stack.platform.stop(WORKER)
        persisted = await stack.backend.inspect(run_id)

        assert persisted.extra["source"] == "history"
        assert persisted.extra["temporal_status"] == "RUNNING"
        assert "query_error" in persisted.extra
        assert persisted.state == queried.state  # the same facts, read from the history
        expected = expected_run(stack.scenario, run_id).state.steps
        assert persisted.state is not None
        assert persisted.state.steps == expected[:2]


async def test_a_second_run_with_the_same_prefix_is_refused(
    waiting_scenario: Path, tmp_path: Path, temporal_server: DevServer
) -> None:
    async with temporal_stack(waiting_scenario, tmp_path, temporal_server.address) as stack:
        await stack.backend.start(RunSpec(run_ids(stack.scenario)[0], 60))
        intruder = TemporalBackend()
        with pytest.raises(BackendError, match=r"already exist.*refusing to mix"):
            await intruder.setup(stack.env)
        handle = stack.backend.handle(run_ids(stack.scenario)[0])

    # teardown terminated the run it left open
    description = await handle.describe()
    assert description.status == WorkflowExecutionStatus.TERMINATED


async def test_a_mid_run_deploy_without_a_patch_is_reported_and_the_patch_heals_it(
    waiting_scenario: Path, tmp_path: Path, temporal_server: DevServer
) -> None:
    """Runs wait for approval on v1 workers; v2 is deployed, the approval arrives, and
    the worker must replay the v1 history. Unpatched v2 cannot (non-determinism, the
    run is stuck and inspect says why); the patched v2 replays it and finishes."""
    async with temporal_stack(
        waiting_scenario, tmp_path, temporal_server.address, task_timeout_s="2"
    ) as stack:
        run_id = run_ids(stack.scenario)[0]
        await stack.backend.start(RunSpec(run_id, stack.scenario.deadline_s))
        await _until(stack, run_id, _waiting, "waiting_approval")

        _deploy(stack, "v2-unpatched")
        await stack.backend.approve(run_id)
        stuck = await _until(
            stack, run_id, lambda p: "nondeterminism" in p.extra, "a non-determinism failure"
        )
        assert "Nondeterminism" in stuck.extra["nondeterminism"][0]
        assert stuck.extra["temporal_status"] == "RUNNING"

        _deploy(stack, "v2-patched")
        assert await stack.backend.wait(run_id, WAIT_S)
        healed = await stack.backend.inspect(run_id)
        approved = stack.scenario.model_copy(update={"approval": None})
        assert healed.state == expected_run(approved, run_id).state
        assert healed.extra["temporal_status"] == "COMPLETED"


async def test_zombie_runs_are_cleaned_once_older_than_the_ttl(
    waiting_scenario: Path, tmp_path: Path, temporal_server: DevServer
) -> None:
    async with temporal_stack(waiting_scenario, tmp_path, temporal_server.address) as stack:
        ids = run_ids(stack.scenario)
        for run_id in ids:
            await stack.backend.start(RunSpec(run_id, stack.scenario.deadline_s))
            await _until(stack, run_id, _waiting, "waiting_approval")

        assert await stack.backend.cleanup_stale(3600) == 0  # none is an hour old
        assert await stack.backend.cleanup_stale(0) == len(ids)
        for run_id in ids:
            cleaned = await stack.backend.inspect(run_id)
            assert cleaned.extra["temporal_status"] == "TERMINATED"
            assert "stale" in cleaned.extra["reason"]
            assert cleaned.state is not None and len(cleaned.state.steps) == 2


def test_the_embedded_server_lifts_the_single_shard_queue_poll_cap(tmp_path: Path) -> None:
    """One history shard read 20 times a second would cap every task dispatch at ~20/s
    (the default): the embedded server lifts it, and a test's own settings still win."""
    argv = plan_server(tmp_path, dynamic_config={"limit.historyCount.error": "50"}).spec.argv
    values = [argv[i + 1] for i, a in enumerate(argv) if a == "--dynamic-config-value"]
    assert "history.transferProcessorMaxPollRPS=10000" in values
    assert "history.timerProcessorMaxPollRPS=10000" in values
    assert "limit.historyCount.error=50" in values
    own = plan_server(tmp_path, dynamic_config={"history.timerProcessorMaxPollRPS": "20"})
    assert "history.timerProcessorMaxPollRPS=20" in own.spec.argv
