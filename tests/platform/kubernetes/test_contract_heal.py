"""Contract tests (stub API server, not a cluster): `durabench heal --platform kubernetes`
deletes only runs that are provably dead (their lease expired) or the runs named with
`--run`, and never a run whose lease is live, wherever its durabench runs."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from k8s_stub_api import OPTED_IN, StubApiServer

from harness.cli import cli
from harness.platform.base import ComponentSpec
from harness.platform.kubernetes import KubernetesPlatform, KubeTarget
from harness.platform.kubernetes.healing import sweep_namespace
from harness.platform.kubernetes.lease import DURATION_S, SKEW_S, micro_time

MakePlatform = Callable[..., KubernetesPlatform]
WORKER = ComponentSpec("pgstore-worker-0", "worker", ("python", "-m", "w"), restart=True)
MANAGED = {"app.kubernetes.io/managed-by": "durabench"}
LEASES = f"/apis/coordination.k8s.io/v1/namespaces/{OPTED_IN}/leases"


def objects_of(stub: StubApiServer, run: str) -> list[str]:
    """Every object in the stub labelled with this run, as `collection/name`."""
    with stub._lock:
        return sorted(
            f"{collection.rsplit('/', 1)[-1]}/{name}"
            for collection, items in stub.objects.items()
            if not collection.endswith("/pods")
            for name, item in items.items()
            if (item.get("metadata") or {}).get("labels", {}).get("durabench.io/run") == run
        )


def age_lease(stub: StubApiServer, run: str, seconds: float) -> None:
    """The run's durabench stopped renewing its lease `seconds` ago (it died)."""
    with stub._lock:
        for lease in stub.objects[LEASES].values():
            if lease["metadata"]["labels"]["durabench.io/run"] == run:
                lease["spec"]["renewTime"] = micro_time(time.time() - seconds)


def started_without_renewing(make_platform: MakePlatform, run: str) -> KubernetesPlatform:
    platform = make_platform(run)
    platform.lease_renew_s = 3600.0  # it dies (stops renewing) once started
    platform.start(WORKER)
    return platform


def plant(stub: StubApiServer, kind_plural: str, name: str, labels: dict[str, str]) -> None:
    body: dict[str, Any] = {"kind": "Deployment", "metadata": {"name": name, "labels": labels}}
    stub.objects.setdefault(f"/apis/apps/v1/namespaces/{OPTED_IN}/{kind_plural}", {})[name] = body


def test_contract_a_run_holds_a_lease_from_its_first_object_and_deletes_it_last(
    stub: StubApiServer, make_platform: MakePlatform
) -> None:
    platform = make_platform()
    platform.lease_renew_s = 0.05
    platform.start(WORKER)
    first = stub.calls("POST")[0]
    assert first.path == LEASES and first.body["spec"]["leaseDurationSeconds"] == DURATION_S
    for _ in range(200):  # liveness bound: renewed within 10 s
        if stub.calls("PATCH", "/leases/"):
            break
        time.sleep(0.05)
    renewal = stub.calls("PATCH", "/leases/")[0]
    assert set(renewal.body["spec"]) == {"renewTime"}
    platform.stop_all()
    assert stub.calls("DELETE")[-1].path.startswith(LEASES)
    assert objects_of(stub, "bench-1") == []


def test_contract_heal_deletes_a_dead_run_and_spares_a_live_run_driven_from_elsewhere(
    stub: StubApiServer, make_platform: MakePlatform, target: KubeTarget
) -> None:
    started_without_renewing(make_platform, "dead-run")
    age_lease(stub, "dead-run", DURATION_S + SKEW_S + 5)
    live = make_platform("live-run")  # renewing: another machine's durabench, not in `spare`
    live.start(WORKER)
    age_lease(stub, "live-run", DURATION_S)  # late, but within the clock-skew allowance
    stub.add_pod(OPTED_IN, "bystander", {"app": "payments"})
    live_objects = objects_of(stub, "live-run")

    swept = sweep_namespace(target, frozenset(), echo=lambda _: None)

    assert objects_of(stub, "dead-run") == []
    assert swept.deleted == 6  # lease, volume, file server (with its Service), worker, PDB
    assert objects_of(stub, "live-run") == live_objects
    assert "bystander" in stub.names("/pods")
    (spared,) = swept.spared
    assert spared.startswith("run live-run: alive (lease held by ") and "left alone" in spared


def test_contract_a_run_without_a_lease_is_never_taken_for_dead_unless_named(
    stub: StubApiServer, make_platform: MakePlatform, target: KubeTarget
) -> None:
    plant(stub, "deployments", "orphan-worker", {**MANAGED, "durabench.io/run": "orphan-run"})
    started_without_renewing(make_platform, "dead-run")  # lease fresh: not named, not dead
    live = make_platform("live-run")
    live.start(WORKER)

    swept = sweep_namespace(target, frozenset(), echo=lambda _: None)
    assert swept.deleted == 0
    assert any(
        "run orphan-run: has no lease" in s and "--run orphan-run" in s for s in swept.spared
    )

    named = sweep_namespace(
        target, frozenset(), echo=lambda _: None, runs=["orphan-run", "live-run", "gone-run"]
    )
    assert objects_of(stub, "orphan-run") == []
    assert named.deleted == 1
    assert objects_of(stub, "live-run") != [], "a live lease wins over a name"
    assert objects_of(stub, "dead-run") != [], "a run not named is not touched"
    assert any(s.startswith("run live-run: alive") for s in named.spared)
    assert any(s.startswith("run gone-run: nothing of it") for s in named.spared)


def test_contract_heal_spares_runs_a_live_durabench_here_owns(
    stub: StubApiServer, make_platform: MakePlatform, target: KubeTarget
) -> None:
    started_without_renewing(make_platform, "local-run")
    age_lease(stub, "local-run", DURATION_S + SKEW_S + 5)  # e.g. renewals failing for a while
    swept = sweep_namespace(target, frozenset({"local-run"}), echo=lambda _: None)
    assert swept.deleted == 0 and objects_of(stub, "local-run") != []


def test_contract_the_cli_heals_dead_runs_and_names_what_it_left_alone(
    stub: StubApiServer, make_platform: MakePlatform, kubeconfig: Path, tmp_path: Path
) -> None:
    started_without_renewing(make_platform, "dead-run")
    age_lease(stub, "dead-run", DURATION_S + SKEW_S + 5)
    plant(stub, "deployments", "orphan-worker", {**MANAGED, "durabench.io/run": "orphan-run"})
    argv = ["heal", "--platform", "kubernetes", "--context", "stub", "--namespace", OPTED_IN]
    argv += ["--state-dir", str(tmp_path / "state")]
    env = {"DURABENCH_KUBECONFIG": str(kubeconfig), "COLUMNS": "300"}
    result = CliRunner().invoke(cli, argv, env=env)
    assert result.exit_code == 0, result.output
    assert "6 kubernetes object(s) deleted" in result.output
    assert "kubernetes: run orphan-run: has no lease" in result.output
    assert objects_of(stub, "dead-run") == []

    named = CliRunner().invoke(cli, [*argv, "--run", "orphan-run"], env=env)
    assert named.exit_code == 0, named.output
    assert "1 kubernetes object(s) deleted" in named.output
    assert objects_of(stub, "orphan-run") == []


def test_contract_run_ids_are_refused_off_kubernetes(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["heal", "--run", "x", "--state-dir", str(tmp_path / "state")])
    assert result.exit_code == 2
    assert "--run applies to --platform kubernetes only" in result.output
