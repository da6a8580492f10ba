"""The docker platform against a real Docker engine: scenarios run in containers, and
kill and pause faults reach real containers (the engine's own event log shows them).

Needs a reachable engine and the local image (`sh deploy/docker/build-local-image.sh`,
built here when missing). Without an engine these tests skip, except under CI=true,
where a missing engine fails them: CI promised an engine.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from harness.errors import ComponentError
from harness.platform.base import ComponentSpec
from harness.runner import BenchmarkRun

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = ROOT / "deploy" / "docker" / "build-local-image.sh"
WAIT_S = 90.0  # bounded waits on a loaded 2-core machine


@pytest.fixture(scope="module")
def engine() -> Iterator[Any]:
    """A Docker client that answers, with the local durabench image built."""
    from harness.platform.docker import DEFAULT_IMAGE, IMAGE_ENV, docker_client

    try:
        client = docker_client()
    except ComponentError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but no Docker engine is reachable: {exc}")
        pytest.skip(f"no Docker engine reachable: {exc}")
    image = os.environ.get(IMAGE_ENV, DEFAULT_IMAGE)
    if not client.images.list(name=image):
        if shutil.which("sh") is None or not Path("/bin/busybox").exists():
            pytest.fail(f"image {image} missing and busybox-static is not installed to build it")
        subprocess.run(["sh", str(BUILD_SCRIPT), image], check=True, capture_output=True)
    yield client
    client.close()


def _events(client: Any, bench_id: str, since: float) -> list[dict[str, Any]]:
    """The engine's record of what happened to this run's containers."""
    stream = client.events(
        since=int(since) - 1,
        until=int(time.time()) + 1,
        filters={"label": f"durabench.run={bench_id}", "type": "container"},
        decode=True,
    )
    return list(stream)


def _run(scenario: Path, backend: str, out: Path) -> BenchmarkRun:
    bench = BenchmarkRun(scenario, [backend], out, platform_name="docker")
    asyncio.run(bench.execute())
    return bench


def _summary(bench: BenchmarkRun, backend: str) -> dict[str, Any]:
    assert bench.results is not None
    summary: dict[str, Any] = bench.results.read_json("summary.json")[backend]
    return summary


@pytest.mark.parametrize("backend", ["baseline", "pgstore", "temporal", "langgraph:sqlite"])
def test_the_smoke_scenario_runs_in_containers_with_full_integrity(
    engine: Any, backend: str, tmp_path: Path
) -> None:
    """Every component (llm, tools, store or server, workers) is a container labelled with
    the run; all are gone afterwards; integrity is 1.0 as on the local platform."""
    since = time.time()
    bench = _run(ROOT / "scenarios" / "smoke.yaml", backend, tmp_path)
    assert bench.results is not None
    bench_id = bench.results.path.name
    assert _summary(bench, backend)["integrity"] == 1.0
    assert bench.results.read_json("manifest.json")["platform"] == "docker"
    created = {
        e["Actor"]["Attributes"]["durabench.component"]
        for e in _events(engine, bench_id, since)
        if e.get("Action") == "create"
    }
    assert {"llm", "tools"} <= created
    assert any(name.endswith("worker-0") for name in created)
    assert engine.containers.list(all=True, filters={"label": f"durabench.run={bench_id}"}) == []


def test_a_kill_fault_kills_a_real_worker_container_which_is_restarted(
    engine: Any, write_scenario: Any, tmp_path: Path
) -> None:
    since = time.time()
    scenario = write_scenario(
        steps=8,
        workers=2,
        llm={"latency": {"distribution": "constant", "ms": 20}},
        faults=[{"kind": "kill", "after_steps": 3, "restart_delay_s": 0.2}],
    )
    bench = _run(scenario, "pgstore", tmp_path / "out")
    assert bench.results is not None
    faults = pd.read_parquet(bench.results.path / "faults.parquet")
    kill = faults[faults["kind"] == "kill"].iloc[0]
    assert kill["outcome"] == "ok"
    name, short_id = next(iter(kill["selected"])).split(":")
    events = [
        e
        for e in _events(engine, bench.results.path.name, since)
        if e["Actor"]["ID"].startswith(short_id)
    ]
    actions = [e["Action"] for e in events]
    killed = actions.index("kill")
    assert events[killed]["Actor"]["Attributes"]["signal"] == "9"
    assert "start" in actions[killed:], f"{name} was not started again: {actions}"
    assert _summary(bench, "pgstore")["integrity"] == 1.0


def test_a_deploy_fault_recreates_the_workers_from_another_image_tag(
    engine: Any, write_scenario: Any, tmp_path: Path
) -> None:
    """The local image under a second tag stands for the next release: after the deploy
    every worker container runs it, and the durable backend loses nothing."""
    from harness.platform.docker import DEFAULT_IMAGE, IMAGE_ENV

    repository = "durabench-local"
    next_tag = f"deploy-{uuid.uuid4().hex[:8]}"
    next_image = f"{repository}:{next_tag}"
    assert engine.images.get(os.environ.get(IMAGE_ENV, DEFAULT_IMAGE)).tag(repository, next_tag)
    try:
        since = time.time()
        scenario = write_scenario(
            steps=8,
            workers=2,
            llm={"latency": {"distribution": "constant", "ms": 20}},
            faults=[{"kind": "deploy", "image": next_image, "after_steps": 3}],
        )
        bench = _run(scenario, "pgstore", tmp_path / "out")
        assert bench.results is not None
        faults = pd.read_parquet(bench.results.path / "faults.parquet")
        deploy = faults[faults["kind"] == "deploy"].iloc[0]
        assert deploy["outcome"] == "ok", deploy["detail"]
        assert deploy["detail"] == f"deployed image {next_image}"
        workers = sorted(deploy["selected"])
        assert workers == ["pgstore-worker-0", "pgstore-worker-1"]
        images: dict[str, list[str]] = {}  # worker -> the image of each container, in order
        for event in _events(engine, bench.results.path.name, since):
            attributes = event["Actor"]["Attributes"]
            if event.get("Action") == "create" and attributes["durabench.role"] == "worker":
                images.setdefault(attributes["durabench.component"], []).append(attributes["image"])
        assert sorted(images) == workers
        for worker in workers:
            assert images[worker][-1] == next_image, f"{worker} ran {images[worker]}"
            assert len(images[worker]) == 2, f"{worker} was created once before the deploy"
        assert _summary(bench, "pgstore")["integrity"] == 1.0
    finally:
        engine.images.remove(next_image)  # only the tag: the image keeps its first name


def test_a_pause_fault_freezes_a_real_container_and_unpauses_it(
    engine: Any, write_scenario: Any, tmp_path: Path
) -> None:
    since = time.time()
    scenario = write_scenario(
        steps=6,
        llm={"latency": {"distribution": "constant", "ms": 20}},
        faults=[{"kind": "pause", "after_steps": 3, "duration_s": 1.0}],
    )
    bench = _run(scenario, "baseline", tmp_path / "out")
    assert bench.results is not None
    faults = pd.read_parquet(bench.results.path / "faults.parquet")
    pause = faults[faults["kind"] == "pause"].iloc[0]
    assert pause["outcome"] == "ok"
    assert pause["actual_end"] - pause["actual_start"] >= 1.0
    _, short_id = next(iter(pause["selected"])).split(":")
    actions = [
        e["Action"]
        for e in _events(engine, bench.results.path.name, since)
        if e["Actor"]["ID"].startswith(short_id)
    ]
    assert actions.index("pause") < actions.index("unpause")
    assert _summary(bench, "baseline")["integrity"] == 1.0


def test_heal_unpauses_and_removes_containers_a_killed_durabench_left(
    engine: Any, write_scenario: Any, tmp_path: Path
) -> None:
    """durabench is SIGKILLed while a worker container is paused; `durabench heal`
    unpauses it (by container id, after checking its run label) and removes the rest."""
    state_dir = tmp_path / "state"
    scenario = write_scenario(
        runs=4,
        steps=6,
        deadline_s=120,
        llm={"latency": {"distribution": "constant", "ms": 20}},
        faults=[{"kind": "pause", "after_steps": 2, "duration_s": 300}],
    )
    env = {**os.environ, "DURABENCH_STATE_DIR": str(state_dir)}
    durabench = [sys.executable, "-m", "harness.cli"]
    since = time.time()
    run = subprocess.Popen(
        [
            *durabench,
            "run",
            str(scenario),
            "--backend",
            "baseline",
            "--platform",
            "docker",
            "--out",
            str(tmp_path / "out"),
        ],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + WAIT_S
        paused: list[Any] = []
        while not paused and time.monotonic() < deadline and run.poll() is None:
            paused = engine.containers.list(filters={"label": "durabench.run", "status": "paused"})
            paused = [c for c in paused if c.attrs["Created"] and _created_after(c, since)]
            time.sleep(0.2)
        assert paused, "no container was paused in time"
    finally:
        run.send_signal(signal.SIGKILL)
        run.wait()
    bench_id = paused[0].labels["durabench.run"]
    assert engine.containers.list(all=True, filters={"label": f"durabench.run={bench_id}"})

    healed = subprocess.run(
        [*durabench, "heal", "--state-dir", str(state_dir)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "1 container(s) unpaused" in healed.stdout
    actions = [
        e["Action"] for e in _events(engine, bench_id, since) if e["Actor"]["ID"] == paused[0].id
    ]
    assert actions.index("pause") < actions.index("unpause") < actions.index("destroy")
    assert engine.containers.list(all=True, filters={"label": f"durabench.run={bench_id}"}) == []


def _created_after(container: Any, since: float) -> bool:
    created = pd.Timestamp(container.attrs["Created"]).timestamp()
    return bool(created >= since - 1)


def test_heal_never_touches_a_container_of_another_run(engine: Any) -> None:
    from harness.platform.docker import DEFAULT_IMAGE, LABEL_RUN, ContainerStarted, heal_container

    other = engine.containers.run(
        DEFAULT_IMAGE,
        ["sleep", "60"],
        labels={LABEL_RUN: f"other-{uuid.uuid4().hex}"},
        detach=True,
        network_mode="host",
    )
    try:
        entry = ContainerStarted(other.id, "mine")
        assert heal_container(entry, engine) == "foreign"
        other.reload()
        assert other.status == "running"
    finally:
        other.remove(force=True)


def test_a_component_that_exits_while_starting_reports_its_log_tail(
    engine: Any, tmp_path: Path
) -> None:
    from harness.platform.docker import DockerPlatform

    spec = ComponentSpec(
        name="broken",
        role="tools",
        argv=(sys.executable, "-c", "print('no ledger here'); raise SystemExit(3)"),
        port=1,
    )
    with DockerPlatform(tmp_path, f"test-{uuid.uuid4().hex[:8]}", client=engine) as platform:
        with pytest.raises(ComponentError, match=r"(?s)exited with code 3.*no ledger here"):
            platform.start(spec)
        assert platform.components() == []
