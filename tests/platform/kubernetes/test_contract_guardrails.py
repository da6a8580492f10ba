"""Contract tests (stub API server, not a cluster): every guardrail refuses what it must,
before durabench touches anything, and dry runs make no call at all."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from k8s_stub_api import NOT_OPTED_IN, OPTED_IN, OPTED_OUT, StubApiServer

from harness.cli import cli
from harness.platform.base import ComponentSpec
from harness.platform.kubernetes import GuardrailError, KubernetesPlatform, KubeTarget

WORKER = ComponentSpec("pgstore-worker-0", "worker", ("python", "-m", "w"), restart=True)


@pytest.mark.parametrize("namespace", ["kube-system", "kube-public", "default"])
def test_contract_system_namespaces_and_default_are_refused(namespace: str) -> None:
    with pytest.raises(GuardrailError, match=f"refusing namespace '{namespace}'"):
        KubeTarget(context="stub", namespace=namespace)


def test_contract_context_and_namespace_are_required() -> None:
    with pytest.raises(GuardrailError, match="--context is required"):
        KubeTarget(context="", namespace=OPTED_IN)
    with pytest.raises(GuardrailError, match="--namespace is required"):
        KubeTarget(context="stub", namespace="")


@pytest.mark.parametrize("namespace", [NOT_OPTED_IN, OPTED_OUT])
def test_contract_a_namespace_without_the_opt_in_label_is_refused_before_any_change(
    stub: StubApiServer, kubeconfig: Path, tmp_path: Path, namespace: str
) -> None:
    said: list[str] = []
    target = KubeTarget(context="stub", namespace=namespace, kubeconfig=str(kubeconfig))
    with pytest.raises(GuardrailError, match=r"durabench\.io/chaos=enabled"):
        KubernetesPlatform(tmp_path, "bench-1", target, echo=said.append)
    assert said[0] == f"kubernetes: context 'stub', namespace '{namespace}'"
    assert [(r.method, r.path) for r in stub.requests] == [
        ("GET", f"/api/v1/namespaces/{namespace}")
    ]


def test_contract_dry_run_prints_every_call_and_makes_only_a_read_of_the_namespace(
    stub: StubApiServer, kubeconfig: Path, tmp_path: Path
) -> None:
    """The opt-in label is read (a GET changes nothing); every other call is printed."""
    said: list[str] = []
    target = KubeTarget("stub", OPTED_IN, dry_run=True, kubeconfig=str(kubeconfig))
    platform = KubernetesPlatform(tmp_path, "bench-1", target, echo=said.append)
    platform.start(WORKER)
    platform.kill(WORKER.name, 0.2)
    platform.partition("worker->store")
    platform.stop_all()
    assert [(r.method, r.path) for r in stub.requests] == [
        ("GET", f"/api/v1/namespaces/{OPTED_IN}")
    ]
    assert said[0].endswith("(dry run: API calls are printed, not made)")
    assert said[1] == (
        f"kubernetes: namespace '{OPTED_IN}' carries the opt-in label "
        "durabench.io/chaos=enabled (checked read-only)"
    )
    printed = said[2:]
    assert any(
        line.startswith(f"dry-run: POST /apis/apps/v1/namespaces/{OPTED_IN}/deployments")
        and "pgstore-worker-0" in line
        for line in printed
    )
    assert any("networkpolicies" in line and line.startswith("dry-run: POST") for line in printed)
    assert any("deployments/pgstore-worker-0" in line and "DELETE" in line for line in printed)
    assert len(printed) == len(platform.api.calls) - 1  # all but the read


@pytest.mark.parametrize("namespace", [NOT_OPTED_IN, OPTED_OUT])
def test_contract_a_dry_run_on_a_reachable_cluster_refuses_a_namespace_not_opted_in(
    stub: StubApiServer, kubeconfig: Path, tmp_path: Path, namespace: str
) -> None:
    target = KubeTarget("stub", namespace, dry_run=True, kubeconfig=str(kubeconfig))
    with pytest.raises(GuardrailError, match=r"lacks the opt-in label durabench\.io/chaos"):
        KubernetesPlatform(tmp_path, "bench-1", target, echo=lambda _: None)
    assert [(r.method, r.path) for r in stub.requests] == [
        ("GET", f"/api/v1/namespaces/{namespace}")
    ]


def test_contract_a_dry_run_says_plainly_when_the_label_could_not_be_checked(
    tmp_path: Path,
) -> None:
    """No cluster answers (nothing listens at the kubeconfig's server): the plan is still
    printed, and the first lines say the label was NOT checked, and why."""
    closed = StubApiServer()
    kubeconfig = closed.kubeconfig(tmp_path)
    closed.close()  # its port is closed now
    said: list[str] = []
    target = KubeTarget("stub", OPTED_IN, dry_run=True, kubeconfig=str(kubeconfig))
    platform = KubernetesPlatform(tmp_path, "bench-1", target, echo=said.append)
    platform.start(WORKER)
    platform.stop_all()
    assert said[1].startswith(
        f"kubernetes: dry run: could NOT check the opt-in label durabench.io/chaos=enabled "
        f"of namespace '{OPTED_IN}' ("
    )
    assert said[1].endswith("a real run checks it before it creates anything")
    assert any(line.startswith("dry-run: POST") for line in said[2:])


def test_contract_targets_are_selected_only_by_durabench_labels(
    stub: StubApiServer, target: KubeTarget, tmp_path: Path
) -> None:
    """A pod durabench did not create survives kills, stop_all and the final sweep."""
    stub.add_pod(OPTED_IN, "someone-elses-pod", {"app": "payments"})
    platform = KubernetesPlatform(tmp_path, "bench-1", target, echo=lambda _: None)
    platform.start(WORKER)
    platform.kill(WORKER.name, 0.2)
    platform.stop_all()
    assert "someone-elses-pod" in stub.names("/pods")
    pod_lists = stub.calls("GET", "/pods")
    assert pod_lists
    assert all("durabench.io/run=bench-1" in r.query["labelSelector"] for r in pod_lists)
    assert all("someone-elses-pod" not in r.path for r in stub.calls("DELETE"))


def test_contract_the_cli_prints_the_target_and_refuses_before_anything_starts(
    tmp_path: Path,
) -> None:
    runner = CliRunner()
    refused = runner.invoke(
        cli,
        [
            "run",
            "smoke",
            "--platform",
            "kubernetes",
            "--context",
            "prod",
            "--namespace",
            "kube-system",
            "--out",
            str(tmp_path),
        ],
    )
    assert refused.exit_code == 2
    assert "kubernetes: context prod, namespace kube-system" in refused.output
    assert "refusing namespace 'kube-system'" in refused.output
    assert not any(tmp_path.iterdir())  # no results directory: nothing started
    missing = runner.invoke(
        cli,
        ["run", "smoke", "--platform", "kubernetes"],
        env={"DURABENCH_KUBE_CONTEXT": "", "DURABENCH_KUBE_NAMESPACE": ""},
    )
    assert missing.exit_code == 2
    assert "--context is required" in missing.output


def test_contract_a_dry_run_prints_the_whole_plan_of_a_run_and_runs_nothing(
    tmp_path: Path,
) -> None:
    """The README's command: every object a run would create and delete, then exit 0."""
    result = CliRunner().invoke(
        cli,
        [
            "run",
            "smoke",
            "--platform",
            "kubernetes",
            "--context",
            "kind-kind",
            "--namespace",
            "durabench-chaos",
            "--dry-run",
            "--backend",
            "pgstore",
            "--out",
            str(tmp_path),
        ],
        env={"DURABENCH_KUBECONFIG": str(tmp_path / "never-read.yaml")},
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    created = [line.split("(")[-1].rstrip(")") for line in lines if "dry-run: POST" in line]
    kinds = [c.split()[0] for c in created]
    # the run's lease first (what tells `heal` it died), the work volume, its file server
    assert kinds[:2] == ["Lease", "PersistentVolumeClaim"]
    assert {"Deployment", "StatefulSet", "Service", "ConfigMap", "PodDisruptionBudget"} <= set(
        kinds
    )
    deleted = [line for line in lines if "dry-run: DELETE" in line]
    assert len(deleted) == len(created)  # everything it would create, it would delete
    assert "dry run: nothing was created or run" in result.output
    assert "could NOT check the opt-in label" in result.output  # no kubeconfig to read
    bench = tmp_path / "latest"
    assert json.loads((bench / "manifest.json").read_text())["status"] == "dry-run"


def test_contract_a_backend_that_shares_files_with_its_workers_is_refused_with_the_fix(
    tmp_path: Path,
) -> None:
    argv = ["run", "smoke", "--platform", "kubernetes", "--context", "kind-kind"]
    argv += ["--namespace", "durabench-chaos", "--dry-run", "--backend", "langgraph:sqlite"]
    result = CliRunner().invoke(cli, [*argv, "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "shares files between the harness and its workers" in result.output
    assert "langgraph:postgres" in result.output
    assert "dry-run: POST" not in result.output  # refused before anything was planned
