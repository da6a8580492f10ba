"""Contract tests (stub API server; no pod runs): how `durabench run --platform
kubernetes` reaches its components from outside the cluster, gives every pod the
paths its command names, and reads back what the workers wrote on the work volume.

Where a pod would answer, a real local server stands in for it, and the bytes travel
through the real client's portforward websocket and the stub's real server side."""

from __future__ import annotations

import sys
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from typing import Any

import pytest
import yaml
from k8s_stub_api import StubApiServer

from harness.faults import NetworkFault
from harness.nemesis import CommitCounter
from harness.platform import LocalPlatform, free_port
from harness.platform.base import ComponentSpec
from harness.platform.kubernetes import KubernetesPlatform

MakePlatform = Callable[..., KubernetesPlatform]
FILES_ARGV = (sys.executable, "-m", "harness.services.files")
BIG = b"x" * 300_000  # several websocket frames and socket reads


class _PodStandIn(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = BIG if self.path == "/big" else f"pod answered {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def pod_stand_in() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _PodStandIn)
    Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return bytes(response.read())


def test_contract_a_component_answers_on_its_loopback_port_through_the_api(
    stub: StubApiServer, make_platform: MakePlatform, pod_stand_in: int
) -> None:
    port = free_port()
    stub.port_map[port] = pod_stand_in
    platform = make_platform()
    tools = platform.start(ComponentSpec("tools", "tools", ("python", "-m", "t"), port=port))
    assert _get(f"http://127.0.0.1:{port}/ledger") == b"pod answered /ledger"
    assert _get(f"http://127.0.0.1:{port}/big") == BIG
    forwarded = stub.calls("GET", "/portforward")
    assert {r.path for r in forwarded} == {
        f"/api/v1/namespaces/{platform.namespace}/pods/{tools.ident}/portforward"
    }
    assert {r.query["ports"] for r in forwarded} == {str(port)}


def test_contract_after_a_kill_the_next_connection_reaches_the_replacement_pod(
    stub: StubApiServer, make_platform: MakePlatform, pod_stand_in: int
) -> None:
    port = free_port()
    stub.port_map[port] = pod_stand_in
    platform = make_platform()
    platform.start(ComponentSpec("tools", "tools", ("python", "-m", "t"), port=port))
    killed = platform.kill("tools", 0.0)
    assert _get(f"http://127.0.0.1:{port}/after") == b"pod answered /after"
    (replacement,) = platform.ready_pods({"durabench.io/component": platform.object_name("tools")})
    assert replacement != killed
    assert stub.calls("GET", "/portforward")[-1].path.endswith(f"/pods/{replacement}/portforward")


def test_contract_every_pod_mounts_the_work_volume_and_the_host_files_at_their_paths(
    stub: StubApiServer, make_platform: MakePlatform, tmp_path: Path
) -> None:
    scenario = tmp_path / "scenarios" / "smoke.yaml"
    scenario.parent.mkdir()
    scenario.write_text("name: smoke\n")
    platform = make_platform()
    workdir = str(platform.workdir)
    argv = ("python", "-m", "w", "--scenario", str(scenario), "--measurements", f"{workdir}/m")
    platform.start(ComponentSpec("pgstore-worker-0", "worker", argv))
    (claim,) = [r.body for r in stub.calls("POST", "/persistentvolumeclaims")]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    worker = next(
        r.body
        for r in stub.calls("POST", "/deployments")
        if r.body["metadata"]["name"] == platform.object_name("pgstore-worker-0")
    )
    pod = worker["spec"]["template"]["spec"]
    mounts = {m["mountPath"]: m for m in pod["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes[mounts[workdir]["name"]]["persistentVolumeClaim"] == {
        "claimName": claim["metadata"]["name"]
    }
    copy = mounts[str(scenario)]
    (config,) = [r.body for r in stub.calls("POST", "/configmaps")]
    assert volumes[copy["name"]]["configMap"]["name"] == config["metadata"]["name"]
    assert config["data"][copy["subPath"]] == "name: smoke\n"
    assert pod["containers"][0]["command"] == list(argv)  # the same paths as here
    affinity = pod["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert affinity[0]["labelSelector"]["matchLabels"]["durabench.io/component"] == (
        platform.object_name("files")  # one node mounts a ReadWriteOnce volume
    )


def test_contract_servers_listen_on_the_pod_network(
    stub: StubApiServer, make_platform: MakePlatform
) -> None:
    platform = make_platform()
    temporal = str(Path(sys.prefix) / "bin" / "temporal")
    platform.start(
        ComponentSpec("temporal", "server", (temporal, "server", "start-dev", "--ip", "127.0.0.1"))
    )
    platform.start(
        ComponentSpec("store", "store", (sys.executable, "-m", "harness.postgres", "serve"))
    )
    commands = {
        r.body["metadata"]["name"]: r.body["spec"]["template"]["spec"]["containers"][0]["command"]
        for r in stub.calls("POST", "/statefulsets")
    }
    assert commands[platform.object_name("temporal")] == [
        "temporal",  # the image's, not this virtualenv's
        "server",
        "start-dev",
        "--ip",
        "0.0.0.0",
    ]
    assert commands[platform.object_name("store")] == [
        "python",
        "-m",
        "harness.postgres",
        "serve",
        "--admit-network",
    ]


def test_contract_collect_brings_the_workers_files_from_the_volume(
    stub: StubApiServer, make_platform: MakePlatform, tmp_path: Path
) -> None:
    """A real file server on a directory standing in for the volume answers every
    forwarded port; the measurement files arrive in the harness's work directory."""
    volume = tmp_path / "volume"
    (volume / "measurements").mkdir(parents=True)
    rows = volume / "measurements" / "worker-0.jsonl"
    rows.write_text('{"phase":"commit","outcome":"ok"}\n')
    port = free_port()
    with LocalPlatform(tmp_path / "stand-in") as local:
        local.start(
            ComponentSpec(
                "files",
                "files",
                (*FILES_ARGV, "--root", str(volume), "--port", str(port)),
                port=port,
                health_url=f"http://127.0.0.1:{port}/health",
            )
        )
        stub.default_port = port
        platform = make_platform()
        platform.start(ComponentSpec("pgstore-worker-0", "worker", ("python", "-m", "w")))
        commits = CommitCounter(
            platform.workdir / "measurements",
            refresh=lambda: platform.collect(["measurements", "failpoints"]),
            refresh_every_s=0.0,
        )
        assert commits.poll() == 1
        with rows.open("a") as more:
            more.write('{"phase":"commit","outcome":"ok"}\n{"phase":"act","outcome":"ok"}\n')
        assert commits.poll() == 2
    assert (platform.workdir / "measurements" / "worker-0.jsonl").read_text() == rows.read_text()


def _rbac_verb(method: str, path: str) -> tuple[str, str, str]:
    """(API group, resource[/subresource], verb) of one namespaced request."""
    parts = path.strip("/").split("/")
    group = "" if parts[0] == "api" else parts[1]
    rest = parts[parts.index("namespaces") + 2 :]
    resource = "/".join(rest[:1] + rest[2:3])
    verbs = {"POST": "create", "DELETE": "delete", "PATCH": "patch"}
    verb = verbs.get(method) or ("list" if len(rest) == 1 else "get")
    return group, resource, verb


def test_contract_the_shipped_role_allows_every_call_of_a_whole_run(
    stub: StubApiServer, make_platform: MakePlatform, pod_stand_in: int
) -> None:
    """Start, forward, kill, evict, partition, pause and latency (Chaos Mesh), restart,
    stop: every call the stub saw is granted by deploy/kubernetes/rbac.yaml, and nothing
    cluster-wide is asked."""
    stub.chaos_mesh = True
    stub.default_port = pod_stand_in
    platform = make_platform()
    port = free_port()
    platform.start(ComponentSpec("store", "store", ("python", "-m", "harness.postgres", "serve")))
    platform.start(ComponentSpec("tools", "tools", ("python", "-m", "t"), port=port))
    platform.start(ComponentSpec("pgstore-worker-0", "worker", ("python", "-m", "w")))
    _get(f"http://127.0.0.1:{port}/x")
    platform.kill("pgstore-worker-0", 0.0)
    platform.evict("pgstore-worker-0", 1)
    platform.heal_partition(platform.partition("worker->store"))
    platform.resume(platform.pause("tools"))
    slow = NetworkFault(
        kind="network", target="worker->tools", mode="latency", latency_ms=50, duration_s=1, at_s=0
    )
    platform.heal_network_fault(platform.network_fault(slow))
    platform.restart("store", down_s=0.01)
    platform.stop_all()
    rbac = Path(__file__).resolve().parents[3] / "deploy" / "kubernetes" / "rbac.yaml"
    role = next(d for d in yaml.safe_load_all(rbac.read_text()) if d["kind"] == "Role")
    granted = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    namespace = f"/api/v1/namespaces/{platform.namespace}"
    inside = f"/namespaces/{platform.namespace}/"
    outside = {r.path for r in stub.requests if inside not in r.path}
    # the opt-in label (the shipped ClusterRole, this namespace only) and API discovery
    assert outside == {namespace, "/apis/chaos-mesh.org/v1alpha1"}
    asked = {_rbac_verb(r.method, r.path) for r in stub.requests if r.path not in outside}
    assert asked - granted == set()
    assert ("", "pods/portforward", "get") in asked
