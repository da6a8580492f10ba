"""Contract tests (stub API server, not a cluster): the Kubernetes injectors issue the
right API calls, and everything they create is cleaned up."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from k8s_stub_api import StubApiServer

from harness.faults import NetworkFault
from harness.heal_entry import HealEntry
from harness.healing import ActiveFaults
from harness.nemesis import CommitCounter, Nemesis
from harness.platform import closing_platform, free_port
from harness.platform.base import ComponentSpec
from harness.platform.kubernetes import (
    EvictionRefused,
    KubernetesPlatform,
    UnsupportedFault,
)
from harness.platform.kubernetes.healing import KubeObject, heal_kube_entry
from harness.scenario import load_scenario

WORKER_PORT = free_port()
WORKER = ComponentSpec(
    "pgstore-worker-0",
    "worker",
    ("python", "-m", "w"),
    port=WORKER_PORT,
    health_url=f"http://127.0.0.1:{WORKER_PORT}/health",
    restart=True,
)
STORE = ComponentSpec(
    "store", "store", ("python", "-m", "harness.postgres", "serve"), port=free_port()
)
MakePlatform = Callable[..., KubernetesPlatform]


def _durabench_objects(stub: StubApiServer) -> list[str]:
    return [
        name
        for suffix in (
            "/deployments",
            "/statefulsets",
            "/services",
            "/networkpolicies",
            "/podchaos",
            "/networkchaos",
            "/poddisruptionbudgets",
            "/persistentvolumeclaims",
            "/configmaps",
            "/secrets",
            "/leases",
        )
        for name in stub.names(suffix)
    ]


def test_contract_start_creates_labelled_workloads_and_stop_all_deletes_them(
    stub: StubApiServer, make_platform: MakePlatform, tmp_path: Path
) -> None:
    platform = make_platform()
    store = platform.start(STORE)
    worker = platform.start(WORKER)
    assert (store.kind, worker.kind) == ("StatefulSet", "Deployment")
    assert worker.name == f"pgstore-worker-0-{platform.suffix}"  # runs never collide
    assert worker.ident.startswith(worker.name)  # its ready pod
    created = stub.calls("POST")
    assert [r.body["kind"] for r in created] == [
        "Lease",  # the run's, before anything else: what tells `heal` the run is dead
        "PersistentVolumeClaim",  # the work volume, and the file server that reads it
        "Deployment",
        "Service",
        "StatefulSet",
        "Service",
        "PodDisruptionBudget",  # with the first worker: at most one evicted at a time
        "Deployment",
        "Service",
    ]
    assert all(r.body["metadata"]["labels"]["durabench.io/run"] == "bench-1" for r in created)
    platform.stop_all()
    assert _durabench_objects(stub) == []


def test_contract_a_secret_env_value_travels_in_a_secret_never_in_the_workload(
    stub: StubApiServer, make_platform: MakePlatform
) -> None:
    dsn = "host=127.0.0.1 port=5432 user=u password=pl4ntedS3cret"
    platform = make_platform()
    platform.start(replace(WORKER, env={"DURABENCH_WORKER_DSN": dsn, "PLAIN": "1"}))
    created = {r.body["kind"]: r.body for r in stub.calls("POST")}
    secret, deployment = created["Secret"], created["Deployment"]
    assert "pl4ntedS3cret" in secret["stringData"]["DURABENCH_WORKER_DSN"]
    assert "pl4ntedS3cret" not in str(deployment)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item for item in container["env"]}
    ref = env["DURABENCH_WORKER_DSN"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": secret["metadata"]["name"], "key": "DURABENCH_WORKER_DSN"}
    assert env["PLAIN"] == {"name": "PLAIN", "value": "1"}
    platform.stop_all()
    assert _durabench_objects(stub) == [], "the Secret is deleted with its component"


def test_contract_kill_deletes_the_pod_with_grace_zero(
    stub: StubApiServer, make_platform: MakePlatform, tmp_path: Path
) -> None:
    platform = make_platform()
    worker = platform.start(WORKER)
    killed = platform.kill(WORKER.name, 0.2)
    assert killed == worker.ident
    delete = stub.calls("DELETE", f"/pods/{killed}")[0]
    assert delete.query["gracePeriodSeconds"] == "0"
    assert delete.body["gracePeriodSeconds"] == 0
    assert killed not in stub.names("/pods")
    assert any(p.startswith("pgstore-worker-0-") for p in stub.names("/pods"))  # replaced
    platform.stop_all()


def test_contract_evict_uses_the_eviction_api(
    stub: StubApiServer, make_platform: MakePlatform, tmp_path: Path
) -> None:
    platform = make_platform()
    worker = platform.start(WORKER)
    platform.evict(WORKER.name, 3)
    eviction = stub.calls("POST", f"/pods/{worker.ident}/eviction")[0]
    assert eviction.body["kind"] == "Eviction"
    assert eviction.body["apiVersion"] == "policy/v1"
    assert eviction.body["deleteOptions"] == {"gracePeriodSeconds": 3}
    platform.stop_all()


def test_contract_a_refused_eviction_is_reported_as_the_faults_outcome(
    stub: StubApiServer, make_platform: MakePlatform, tmp_path: Path, write_scenario: Any
) -> None:
    """The PodDisruptionBudget says no (HTTP 429): the nemesis records why."""
    platform = make_platform()
    worker = platform.start(WORKER)
    stub.refuse_evictions.add(worker.ident)
    with pytest.raises(EvictionRefused, match=r"HTTP 429.*disruption budget"):
        platform.evict(WORKER.name, 3)
    scenario = load_scenario(write_scenario(faults=[{"kind": "evict", "at_s": 0, "grace_s": 3}]))
    (tmp_path / "measurements").mkdir()
    nemesis = Nemesis(
        scenario,
        "pgstore",
        platform,
        log_path=tmp_path / "faults.jsonl",
        active=ActiveFaults(tmp_path / "state.json"),
        commits=CommitCounter(tmp_path / "measurements"),
        proxy_url=None,
        llm_admin_url=None,
        tools_admin_url="http://127.0.0.1:9",
    )
    asyncio.run(nemesis.run(0.0, asyncio.Event()))
    (record,) = nemesis.records
    assert record.outcome == "failed"
    assert "refused (HTTP 429)" in record.detail
    assert record.selected == [f"{WORKER.name}:{worker.ident}"]
    platform.stop_all()


def test_contract_a_partition_is_a_network_policy_pair_removed_on_heal(
    stub: StubApiServer, make_platform: MakePlatform, tmp_path: Path
) -> None:
    platform = make_platform()
    platform.start(STORE)
    platform.start(WORKER)
    entry = platform.partition("worker->store")
    policies = [r.body for r in stub.calls("POST", "/networkpolicies")]
    assert len(policies) == 2
    selected = [p["spec"]["podSelector"]["matchLabels"] for p in policies]
    assert selected == [
        {"durabench.io/run": "bench-1", "durabench.io/role": "worker"},
        {"durabench.io/run": "bench-1", "durabench.io/role": "store"},
    ]
    denied = policies[0]["spec"]["ingress"][0]["from"][0]["podSelector"]["matchExpressions"]
    assert denied == [{"key": "durabench.io/role", "operator": "NotIn", "values": ["store"]}]
    assert set(policies[0]["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    assert len(stub.names("/networkpolicies")) == 2
    platform.heal_partition(entry)
    assert stub.names("/networkpolicies") == []
    assert len(stub.calls("DELETE", "/networkpolicies/")) == 2
    platform.stop_all()


def test_contract_a_partition_left_behind_is_removed_by_stop_all(
    stub: StubApiServer, make_platform: MakePlatform, tmp_path: Path
) -> None:
    with closing_platform(make_platform()) as platform:
        platform.start(WORKER)
        platform.start(STORE)
        assert isinstance(platform, KubernetesPlatform)
        platform.partition("worker->store")
    assert _durabench_objects(stub) == []


def test_contract_ctrl_c_deletes_everything_created(
    stub: StubApiServer, make_platform: MakePlatform, tmp_path: Path
) -> None:
    with pytest.raises(KeyboardInterrupt), closing_platform(make_platform()) as p:
        p.start(WORKER)
        raise KeyboardInterrupt
    assert _durabench_objects(stub) == []


def test_contract_pause_without_chaos_mesh_is_unsupported(
    stub: StubApiServer, make_platform: MakePlatform, tmp_path: Path
) -> None:
    platform = make_platform()
    platform.start(WORKER)
    with pytest.raises(UnsupportedFault, match="Chaos Mesh"):
        platform.pause(WORKER.name, lambda _: None)
    assert stub.calls("POST", "/podchaos") == []
    platform.stop_all()


def test_contract_pause_with_chaos_mesh_is_a_pod_chaos_deleted_on_resume(
    stub: StubApiServer, make_platform: MakePlatform, tmp_path: Path
) -> None:
    stub.chaos_mesh = True
    platform = make_platform()
    platform.start(WORKER)
    recorded: list[HealEntry] = []
    platform.pause(WORKER.name, recorded.append)
    (entry,) = recorded
    (chaos,) = [r.body for r in stub.calls("POST", "/podchaos")]
    assert isinstance(entry, KubeObject) and entry.name == chaos["metadata"]["name"]
    assert chaos["spec"]["selector"]["labelSelectors"] == {
        "durabench.io/run": "bench-1",
        "durabench.io/component": platform.object_name("pgstore-worker-0"),
    }
    platform.resume(entry)
    assert stub.names("/podchaos") == []
    platform.stop_all()


def test_contract_heal_deletes_only_objects_still_labelled_with_the_entrys_run(
    stub: StubApiServer, make_platform: MakePlatform, tmp_path: Path
) -> None:
    platform = make_platform()
    worker = platform.start(WORKER)
    entry = platform.started_entry(worker)
    foreign = replace(entry, run="another-run")
    assert heal_kube_entry(foreign) is False
    assert worker.name in stub.names("/deployments")
    assert heal_kube_entry(entry) is True
    assert worker.name not in stub.names("/deployments") + stub.names("/services")


def _network_nemesis(
    platform: KubernetesPlatform, tmp_path: Path, write_scenario: Any, **fault: Any
) -> Nemesis:
    network = {"kind": "network", "target": "worker->store", "at_s": 0, "duration_s": 0.2}
    scenario = load_scenario(write_scenario(faults=[{**network, **fault}]))
    (tmp_path / "measurements").mkdir(exist_ok=True)
    return Nemesis(
        scenario,
        "pgstore",
        platform,
        log_path=tmp_path / "faults.jsonl",
        active=ActiveFaults(tmp_path / "state.json"),
        commits=CommitCounter(tmp_path / "measurements"),
        proxy_url=None,  # Kubernetes faults links itself: no fault proxy in the pods' path
        llm_admin_url=None,
        tools_admin_url="http://127.0.0.1:9",
    )


def test_contract_latency_is_a_network_chaos_between_the_links_sides_deleted_on_heal(
    stub: StubApiServer, make_platform: MakePlatform, tmp_path: Path, write_scenario: Any
) -> None:
    stub.chaos_mesh = True
    platform = make_platform()
    platform.start(STORE)
    platform.start(WORKER)
    nemesis = _network_nemesis(
        platform,
        tmp_path,
        write_scenario,
        mode="latency",
        latency_ms=150,
        jitter_ms=20,
        direction="upstream",
    )
    asyncio.run(nemesis.run(0.0, asyncio.Event()))
    (record,) = nemesis.records
    assert (record.outcome, record.selected) == ("ok", ["worker->store"])
    (chaos,) = [r.body for r in stub.calls("POST", "/networkchaos")]
    spec = chaos["spec"]
    assert spec["action"] == "delay"
    assert spec["delay"] == {"latency": "150ms", "jitter": "20ms", "correlation": "0"}
    assert spec["direction"] == "to"  # upstream: from the workers towards the store
    assert spec["selector"]["labelSelectors"] == {
        "durabench.io/run": "bench-1",
        "durabench.io/role": "worker",
    }
    assert spec["target"]["selector"]["labelSelectors"] == {
        "durabench.io/run": "bench-1",
        "durabench.io/role": "store",
    }
    assert stub.names("/networkchaos") == []  # healed when the fault's duration ended
    assert stub.calls("DELETE", f"/networkchaos/{chaos['metadata']['name']}")


def test_contract_bandwidth_and_blackhole_map_to_chaos_mesh_actions(
    stub: StubApiServer, make_platform: MakePlatform
) -> None:
    stub.chaos_mesh = True
    platform = make_platform()
    platform.start(WORKER)
    link = {"kind": "network", "target": "worker->tools", "at_s": 0, "duration_s": 1}
    for fault in (
        NetworkFault(**link, mode="bandwidth", bandwidth_kbps=64),
        NetworkFault(**link, mode="blackhole", direction="downstream"),
    ):
        recorded: list[HealEntry] = []
        platform.network_fault(fault, recorded.append)
        platform.heal_network_fault(recorded[0])
    bandwidth, blackhole = [r.body["spec"] for r in stub.calls("POST", "/networkchaos")]
    assert bandwidth["action"] == "bandwidth" and bandwidth["bandwidth"]["rate"] == "64kbps"
    assert blackhole["action"] == "loss" and blackhole["loss"]["loss"] == "100"
    assert blackhole["direction"] == "from"
    assert stub.names("/networkchaos") == []


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ({"mode": "latency", "latency_ms": 100}, "needs Chaos Mesh"),
        ({"mode": "reset"}, "reset needs durabench's fault proxy"),
    ],
)
def test_contract_a_network_fault_kubernetes_cannot_apply_is_skipped_with_its_reason(
    stub: StubApiServer,
    make_platform: MakePlatform,
    tmp_path: Path,
    write_scenario: Any,
    fault: dict[str, Any],
    reason: str,
) -> None:
    platform = make_platform()
    platform.start(WORKER)
    nemesis = _network_nemesis(platform, tmp_path, write_scenario, **fault)
    asyncio.run(nemesis.run(0.0, asyncio.Event()))
    (record,) = nemesis.records
    assert record.outcome == "skipped"
    assert reason in record.detail
    assert stub.calls("POST", "/networkchaos") == []


def test_contract_a_partition_through_the_nemesis_needs_no_chaos_mesh(
    stub: StubApiServer, make_platform: MakePlatform, tmp_path: Path, write_scenario: Any
) -> None:
    platform = make_platform()
    platform.start(STORE)
    platform.start(WORKER)
    nemesis = _network_nemesis(platform, tmp_path, write_scenario, mode="partition")
    asyncio.run(nemesis.run(0.0, asyncio.Event()))
    (record,) = nemesis.records
    assert record.outcome == "ok"
    assert len(stub.calls("POST", "/networkpolicies")) == 2
    assert stub.names("/networkpolicies") == []
