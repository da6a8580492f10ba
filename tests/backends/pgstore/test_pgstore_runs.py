"""Both Postgres state stores end to end: complete runs on an existing server
(`--pg-dsn`) and on their own embedded one, human approvals that arrive or never
do, persisted bytes, and bad DSNs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from backends.base import BackendEnv, ExternalServices, RunSpec, load_backend
from backends.pgstore import PgStoreBackend
from backends.pgstore.backend_base import PostgresStoreBackend
from harness.errors import BackendError
from harness.oracle import expected_run, run_ids
from harness.platform.base import free_port
from harness.platform.local import LocalPlatform
from harness.postgres import EmbeddedServer
from harness.runner import BenchmarkRun, service_specs
from harness.scenario import load_scenario
from tests.backends.pgstore.pgstore_support import query, run_bench
from tests.conftest import ScenarioFactory

pytestmark = pytest.mark.integration

BOTH = ["pgstore", "pgstore-naive"]
WAIT_S = 30.0


async def test_both_stores_complete_every_run_on_an_existing_server(
    write_scenario: ScenarioFactory, tmp_path: Path, pg_dsn: str
) -> None:
    path = write_scenario(
        verify={"failure_probability": 0.3, "on_failure": "replan", "max_attempts": 3},
        approval={"after_step": 1, "delay_s": 0.05, "ttl_s": 5},
    )
    outcomes = await run_bench(path, BOTH, tmp_path / "r", pg_dsn)
    scenario = load_scenario(path)
    oracle = [expected_run(scenario, run_id) for run_id in run_ids(scenario)]
    for outcome in outcomes:
        assert outcome.summary["integrity"] == 1.0, outcome.report()
        assert outcome.summary["committed_steps"] == sum(len(o.state.steps) for o in oracle)
        assert outcome.details["store"].startswith("external postgresql://postgres:***@")
        runs = outcome.runs
        assert (runs["bytes_persisted"] > 0).all()
        assert (runs["llm_calls"] == runs["llm_calls_expected"]).all()
        commits = [r for r in outcome.rows if r["phase"] == "commit"]
        assert commits and all(r["bytes"] > 0 for r in commits)

    pgstore = outcomes[0]
    persisted = {
        p["run_id"]: p
        for p in pgstore.results.read_jsonl("persisted.jsonl")
        if p["backend"] == "pgstore"
    }
    for o in oracle:
        extra = persisted[o.state.run_id]["extra"]
        assert persisted[o.state.run_id]["history_length"] == extra["events"]
        assert persisted[o.state.run_id]["bytes_persisted"] >= extra["event_bytes"] > 0
    # every approval a run waited for arrived as an event in its log
    schema = pgstore.details["schema"]
    approved = await query(pg_dsn, schema, "SELECT run_id FROM events WHERE type = 'approved'")
    # a run waits after step 1 unless it aborted at (or before) step 1
    waited = {
        o.state.run_id
        for o in oracle
        if len(o.state.steps) > 2 or (len(o.state.steps) == 2 and o.state.status != "aborted")
    }
    assert waited and waited <= {r for (r,) in approved}
    # durabench created one schema per backend for this run, and nothing else
    bench = pgstore.results.path.name.lower().replace("-", "_")
    schemas = await query(
        pg_dsn,
        "public",
        "SELECT nspname FROM pg_namespace WHERE nspname LIKE %s ORDER BY 1",
        f"db_{bench}%",
    )
    assert [s for (s,) in schemas] == sorted(o.details["schema"] for o in outcomes)


async def test_both_stores_start_their_own_embedded_postgres(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    outcomes = await run_bench(write_scenario(runs=4), BOTH, tmp_path / "r")
    for outcome in outcomes:
        assert outcome.summary["integrity"] == 1.0, outcome.report()
        assert outcome.details["store"] == "embedded (fsync=on, synchronous_commit=on)"
        assert (outcome.workdir / "store" / "data" / "PG_VERSION").is_file()
        log = (outcome.workdir / "logs" / "store.log").read_text()
        assert "-c fsync=on -c synchronous_commit=on" in log


async def test_runs_nobody_approves_expire_after_the_ttl_and_are_counted(
    write_scenario: ScenarioFactory, tmp_path: Path, pg_dsn: str
) -> None:
    path = write_scenario(runs=4, approval={"after_step": 1, "delay_s": None, "ttl_s": 0.5})
    for outcome in await run_bench(path, BOTH, tmp_path / "r", pg_dsn):
        assert outcome.summary["integrity"] == 1.0, outcome.report()
        runs = outcome.runs
        expired = runs[runs["expected_status"] == "expired"]
        assert len(expired) >= 1
        assert (expired["status"] == "expired").all()
        assert outcome.details["stale_cleaned"] == len(expired)


@contextlib.asynccontextmanager
async def running_backend(
    name: str, path: Path, workdir: Path, pg_dsn: str
) -> AsyncIterator[PostgresStoreBackend]:
    """Services, the backend's workers and setup, without the runner's load driver."""
    scenario = load_scenario(path)
    with LocalPlatform(workdir) as platform:
        started = {s.role: platform.start(s) for s in service_specs(scenario, path, workdir)}
        backend = load_backend(name)
        assert isinstance(backend, PostgresStoreBackend)
        env = BackendEnv(
            scenario=scenario,
            scenario_path=path,
            bench_id=f"cleanup-{workdir.name}",
            llm_url=f"http://127.0.0.1:{started['llm'].spec.port}/v1",
            tools_url=f"http://127.0.0.1:{started['tools'].spec.port}",
            workdir=workdir / name,
            measurements_dir=workdir / name / "measurements",
            external=ExternalServices(pg_dsn=pg_dsn),
        )
        for spec in backend.components(env):
            platform.start(spec)
        await backend.setup(env)
        try:
            yield backend
        finally:
            await backend.teardown()


@pytest.mark.parametrize("name", BOTH)
async def test_cleanup_stale_closes_runs_waiting_past_the_ttl(
    name: str, write_scenario: ScenarioFactory, tmp_path: Path, pg_dsn: str
) -> None:
    """The zombie case through `cleanup_stale` itself: the scenario's own TTL is an
    hour, so only the call with a short TTL can close the waiting runs."""
    path = write_scenario(
        runs=3,
        verify={"failure_probability": 0.0},
        approval={"after_step": 0, "delay_s": None, "ttl_s": 3600},
    )
    ids = run_ids(load_scenario(path))
    async with running_backend(name, path, tmp_path, pg_dsn) as backend:
        for run_id in ids:
            await backend.start(RunSpec(run_id, WAIT_S))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_S
        while True:
            states = [(await backend.inspect(r)).state for r in ids]
            if all(s is not None and s.status == "waiting_approval" for s in states):
                break
            assert loop.time() < deadline, states
            await asyncio.sleep(0.05)
        assert await backend.cleanup_stale(3600) == 0  # nobody waited an hour yet
        await asyncio.sleep(0.3)
        assert await backend.cleanup_stale(0.2) == len(ids)
        for run_id in ids:
            assert await backend.wait(run_id, WAIT_S)
            persisted = await backend.inspect(run_id)
            assert persisted.state is not None and persisted.state.status == "expired"
            assert len(persisted.state.steps) == 1
        if isinstance(backend, PgStoreBackend):
            per_step = await backend.bytes_by_step(ids[0])
            assert list(per_step) == [0] and per_step[0] > 0


@pytest.mark.parametrize(
    ("dsn", "problem"),
    [
        ("postgresql://postgres:s3cret@127.0.0.1:{closed}/postgres", "connection refused"),
        ("postgresql://postgres:s3cret@127.0.0.1:{port}/postgres", "wrong credentials"),
        ("postgresql://postgres:{password}@127.0.0.1:{port}/nosuchdb", "database does not exist"),
    ],
    ids=["unreachable", "wrong-password", "missing-database"],
)
async def test_a_bad_pg_dsn_fails_with_one_clear_error(
    dsn: str,
    problem: str,
    write_scenario: ScenarioFactory,
    tmp_path: Path,
    pg_server: EmbeddedServer,
) -> None:
    dsn = dsn.format(closed=free_port(), port=pg_server.port, password=pg_server.password)
    bench = BenchmarkRun(
        write_scenario(), ["pgstore"], tmp_path / "r", external=ExternalServices(pg_dsn=dsn)
    )
    with pytest.raises(BackendError) as caught:
        await bench.execute()
    message = str(caught.value)
    assert problem in message
    assert "s3cret" not in message and pg_server.password not in message
    assert "postgresql://postgres:***@127.0.0.1:" in message
    assert "tried to connect to 127.0.0.1:" in message
    assert not list((bench.results.path / "pgstore").glob("logs/pgstore-worker-*"))  # type: ignore[union-attr]


def test_bad_options_are_refused_before_anything_starts() -> None:
    with pytest.raises(BackendError, match="lease_s"):
        load_backend("pgstore?lease_s=0")
    with pytest.raises(BackendError, match="bad options"):
        load_backend("pgstore?crash=after_act:run-000001:1")  # crash points are scenario faults
    with pytest.raises(BackendError, match="stale_s"):
        load_backend("pgstore-naive?stale_s=x")
    with pytest.raises(BackendError, match="bad options"):
        load_backend("pgstore-naive?lease_s=1")
