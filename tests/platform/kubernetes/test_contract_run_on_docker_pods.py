"""Contract test, end to end: `durabench run --platform kubernetes` against the stub API
server whose pods run as Docker containers (`k8s_docker_pods`). No cluster runs here:
the API server is a stand-in, so this is a contract test, not an integration test.

What it proves that the stand-in-server tests cannot: the manifests durabench makes
are enough for its components to start and find each other (commands, env, Service
names, the work volume, the host files from ConfigMaps, readiness probes), the
harness reaches them only through port-forwards, reads what workers wrote only
through `collect`, and a `kill` (pod delete, grace 0) loses nothing. Every container
shares one loopback-only network namespace: no traffic leaves 127.0.0.0/8.

Needs a reachable Docker engine, its CLI, and the local image (built when missing).
Without an engine the test skips, except under CI=true, where it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from k8s_docker_pods import DockerPods
from k8s_stub_api import OPTED_IN, StubApiServer

from harness.errors import ComponentError
from harness.platform.base import ComponentSpec
from harness.platform.kubernetes import KubernetesPlatform
from harness.platform.kubernetes.platform import IMAGE_ENV

ROOT = Path(__file__).resolve().parents[3]
BUILD_SCRIPT = ROOT / "deploy" / "docker" / "build-local-image.sh"
IMAGE = "durabench-local:latest"
RUN_TIMEOUT_S = 150
SCENARIO: dict[str, Any] = {
    "name": "k8s-docker-pods",
    "seed": 5,
    "runs": 4,
    "steps": 16,  # runs last a few seconds: the kill (after 3 commits) lands mid-run
    "load": {"concurrency": 4},
    "workers": 1,  # the killed pod holds every run in flight: its replacement resumes them
    "thought_bytes": 256,
    "tool_mix": {"search_supplier": 1, "get_quotes": 1, "reserve_budget": 1},
    "verify": {"failure_probability": 0.1, "on_failure": "retry_act", "max_attempts": 3},
    "llm": {"latency": {"distribution": "constant", "ms": 200}},
    "tool_latency": {"distribution": "constant", "ms": 10},
    "deadline_s": 60,
    "faults": [{"kind": "kill", "target": "worker", "after_steps": 3}],
}


def _fail_or_skip(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


@pytest.fixture
def docker_pods(stub: StubApiServer, tmp_path: Path) -> Iterator[DockerPods]:
    """The stub's pods on the Docker engine; every container is removed afterwards."""
    from harness.platform.docker import docker_client

    try:
        client = docker_client()
    except ComponentError as exc:
        _fail_or_skip(f"no Docker engine is reachable: {exc}")
    if shutil.which("docker") is None:
        _fail_or_skip("the docker CLI (port-forward relays run through `docker exec`) is missing")
    if not client.images.list(name=IMAGE):
        if not Path("/bin/busybox").exists():
            pytest.fail(f"image {IMAGE} missing and busybox-static is not installed to build it")
        subprocess.run(["sh", str(BUILD_SCRIPT), IMAGE], check=True, capture_output=True)
    pods = DockerPods(client, IMAGE, tmp_path / "cluster")
    stub.pods_on = pods
    try:
        yield pods
    finally:
        pods.close()
        client.close()


def _durabench_objects(stub: StubApiServer) -> list[str]:
    with stub._lock:
        return [
            f"{collection}/{name}"
            for collection, items in stub.objects.items()
            for name, item in items.items()
            if "durabench.io/run" in (item["metadata"].get("labels") or {})
        ]


def test_contract_a_pgstore_run_with_a_killed_worker_pod_keeps_integrity(
    stub: StubApiServer, docker_pods: DockerPods, kubeconfig: Path, tmp_path: Path
) -> None:
    """The CLI, as a user runs it, on the stub's context: every run passes, the kill
    deleted the worker's pod with grace 0 and a replacement resumed its runs, the
    harness went through port-forwards, and nothing of the run is left (objects,
    containers, the work volume's directory)."""
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(yaml.safe_dump(SCENARIO, sort_keys=False))
    out = tmp_path / "results"
    env = {
        **os.environ,
        "DURABENCH_KUBECONFIG": str(kubeconfig),
        "DURABENCH_KUBE_IMAGE": IMAGE,
    }
    started = time.monotonic()
    done = subprocess.run(
        [
            *(sys.executable, "-m", "harness.cli", "run", str(scenario)),
            *("--platform", "kubernetes", "--context", "stub", "--namespace", OPTED_IN),
            *("--backend", "pgstore", "--out", str(out)),
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    took = time.monotonic() - started
    assert done.returncode == 0, (
        f"exit {done.returncode} after {took:.0f}s\n{done.stdout}\n{done.stderr}"
    )

    results = out / "latest"
    runs = pd.read_parquet(results / "runs.parquet")
    assert len(runs) == SCENARIO["runs"]
    assert runs["passed"].all(), runs.to_dict("records")
    assert json.loads((results / "summary.json").read_text())["pgstore"]["integrity"] == 1.0

    faults = pd.read_parquet(results / "faults.parquet")
    kill = faults[faults["kind"] == "kill"].iloc[0]
    assert kill["outcome"] == "ok", kill.to_dict()
    ((worker, pod),) = [entry.split(":") for entry in kill["selected"]]
    assert worker.startswith("pgstore-worker-")
    deletes = stub.calls("DELETE", f"/pods/{pod}")
    assert [r.query.get("gracePeriodSeconds") for r in deletes] == ["0"]
    workload = pod.rsplit("-", 1)[0]  # the stub names pods <workload>-<counter>
    later = docker_pods.started[docker_pods.started.index(pod) + 1 :]
    assert any(p.startswith(f"{workload}-") for p in later), "the killed pod was not replaced"
    steps = pd.read_parquet(results / "steps.parquet")
    commits = steps[(steps["phase"] == "commit") & (steps["outcome"] == "ok")]
    before = set(commits.loc[commits["end"] < kill["actual_start"], "run_id"])
    after = set(commits.loc[commits["end"] > kill["actual_end"], "run_id"])
    assert before & after, "the kill hit no run in flight"

    forwarded = stub.calls("GET", "/portforward")
    assert forwarded, "the harness reached no pod through the API"

    assert _durabench_objects(stub) == []
    docker_pods.settle()
    assert docker_pods.containers() == []
    assert docker_pods.claims() == []  # the deleted work volume's directory is gone


def test_contract_an_evicted_worker_gets_the_sigterm_it_could_drain_on(
    stub: StubApiServer,
    docker_pods: DockerPods,
    make_platform: Callable[..., KubernetesPlatform],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker has no SIGTERM handler (SIGTERM ends it, as on the local and docker
    platforms). Were it its pod's PID 1, the kernel would ignore the eviction's SIGTERM
    and the pod would die only at the grace's SIGKILL (exit 137): the SIGTERM ends it
    (exit 143)."""
    monkeypatch.setenv(IMAGE_ENV, IMAGE)
    platform = make_platform()
    sleeper = (sys.executable, "-c", "import time; time.sleep(600)")
    worker = platform.start(ComponentSpec("pgstore-worker-0", "worker", sleeper))
    platform.evict("pgstore-worker-0", 5)
    docker_pods.settle(timeout_s=30)
    assert docker_pods.exit_codes()[worker.ident] == 128 + signal.SIGTERM
