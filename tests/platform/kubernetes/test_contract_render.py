"""Contract tests: `durabench k8s render` writes manifests that validate offline
(kubernetes-validate, strict) and carry durabench's labels; and `durabench heal
--platform kubernetes` sweeps a namespace through the stub API server."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from click.testing import CliRunner

from harness.cli import cli
from harness.platform.kubernetes.render import render_manifests

K8S_VERSION = "1.30.0"


@pytest.mark.parametrize(
    "backend",
    ["baseline", "pgstore", "temporal", "langgraph:sqlite", "langgraph:postgres", "restate"],
)
def test_contract_rendered_manifests_validate_offline(backend: str) -> None:
    objects = render_manifests("smoke", backend, "durabench-chaos")
    for manifest in objects:
        kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)
        labels = manifest["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "durabench"
        assert labels["durabench.io/run"] == f"render-smoke-{backend.replace(':', '-')}"
    kinds = {m["kind"] for m in objects}
    assert {"Deployment", "Service", "PodDisruptionBudget", "ConfigMap"} <= kinds
    deployments = {m["metadata"]["name"] for m in objects if m["kind"] == "Deployment"}
    assert {"llm", "tools"} <= deployments
    assert any(name.endswith("worker-0") for name in deployments)


def test_contract_postgres_and_temporal_are_stateful_sets_unless_external() -> None:
    pg = render_manifests("smoke", "pgstore", "durabench-chaos")
    store = next(m for m in pg if m["kind"] == "StatefulSet")
    container = store["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][:4] == ["python", "-m", "harness.postgres", "serve"]
    assert container["command"][-1] == "--admit-network"  # other pods dial its Service
    (claim,) = store["spec"]["volumeClaimTemplates"]  # its data outlives a deleted pod
    assert {"name": claim["metadata"]["name"], "mountPath": "/var/lib/durabench"} in container[
        "volumeMounts"
    ]
    worker = next(m for m in pg if m["metadata"]["name"] == "pgstore-worker-0")
    dsn = worker["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"]
    assert "host=store " in dsn and "127.0.0.1" not in dsn
    temporal = render_manifests("smoke", "temporal", "durabench-chaos")
    server = next(m for m in temporal if m["kind"] == "StatefulSet")
    command = server["spec"]["template"]["spec"]["containers"][0]["command"]
    assert server["spec"]["volumeClaimTemplates"]  # temporal.db outlives a deleted pod
    assert command[:3] == ["temporal", "server", "start-dev"]
    assert command[command.index("--ip") + 1] == "0.0.0.0"
    external = render_manifests(
        "smoke", "temporal", "durabench-chaos", temporal_address="temporal.prod:7233"
    )
    assert "StatefulSet" not in {m["kind"] for m in external}


def test_contract_the_render_command_writes_one_file_per_object(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "k8s",
            "render",
            "smoke",
            "--backend",
            "baseline",
            "--namespace",
            "durabench-chaos",
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    files = sorted(tmp_path.glob("*.yaml"))
    assert [f.name for f in files][:2] == [
        "00-configmap-durabench-scenario.yaml",
        "01-deployment-llm.yaml",
    ]
    for path in files:
        kubernetes_validate.validate(yaml.safe_load(path.read_text()), K8S_VERSION, strict=True)


@pytest.mark.parametrize(
    ("namespace", "says"),
    [
        ("kube-system", "refusing namespace 'kube-system'"),
        ("default", "refusing namespace 'default'"),
        ("../x", "not a valid namespace name"),
        ("Chaos", "not a valid namespace name"),
    ],
)
def test_contract_render_refuses_the_namespaces_run_refuses(
    tmp_path: Path, namespace: str, says: str
) -> None:
    out = tmp_path / "manifests"
    result = CliRunner().invoke(
        cli,
        ["k8s", "render", "smoke", "-b", "baseline", "--namespace", namespace, "--out", str(out)],
    )
    assert result.exit_code == 2, result.output
    assert says in result.output
    assert not out.exists(), "nothing is written for a refused namespace"
    assert list(tmp_path.iterdir()) == []


def test_contract_render_never_writes_a_pg_dsn_password(tmp_path: Path) -> None:
    out = tmp_path / "manifests"
    dsn = "postgresql://u:pl4ntedS3cret@db.example:5432/x"
    args = ["k8s", "render", "smoke", "-b", "pgstore", "--namespace", "durabench-chaos"]
    result = CliRunner().invoke(cli, [*args, "--pg-dsn", dsn, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "pl4ntedS3cret" not in result.output
    assert "create secret generic durabench-secrets" in result.output
    files = list(out.glob("*.yaml"))
    assert files and all("pl4ntedS3cret" not in f.read_text() for f in files)
    assert any("secretKeyRef" in f.read_text() for f in files)


def test_contract_the_shipped_rbac_validates_and_is_namespaced() -> None:
    rbac = Path(__file__).resolve().parents[3] / "deploy" / "kubernetes" / "rbac.yaml"
    documents = list(yaml.safe_load_all(rbac.read_text()))
    for document in documents:
        kubernetes_validate.validate(document, K8S_VERSION, strict=True)
    cluster_rules = [d for d in documents if d["kind"] == "ClusterRole"]
    assert all(rule["resourceNames"] for d in cluster_rules for rule in d["rules"])
