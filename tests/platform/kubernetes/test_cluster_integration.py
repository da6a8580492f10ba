"""Integration tests against a REAL cluster (for example kind), run only when
DURABENCH_KUBECONFIG points at one; DURABENCH_KUBE_CONTEXT and DURABENCH_KUBE_NAMESPACE
name the target (the namespace labelled durabench.io/chaos=enabled, the RBAC of
deploy/kubernetes/rbac.yaml applied), DURABENCH_KUBE_IMAGE an image the cluster can
pull (default durabench:latest, e.g. `kind load docker-image durabench:latest`)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner

from harness.cli import cli
from harness.platform.base import ComponentSpec
from harness.platform.kubernetes import KubernetesPlatform, KubeTarget

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not os.environ.get("DURABENCH_KUBECONFIG"),
        reason="DURABENCH_KUBECONFIG is not set: no Kubernetes cluster to test against",
    ),
]

TOOLS = ComponentSpec(
    "tools",
    "tools",
    ("python", "-m", "http.server", "8081", "--bind", "0.0.0.0"),
    port=8081,
    restart=True,
    ready_timeout_s=180,
)


@pytest.fixture
def platform(tmp_path: Path) -> KubernetesPlatform:
    target = KubeTarget(
        context=os.environ.get("DURABENCH_KUBE_CONTEXT", ""),
        namespace=os.environ.get("DURABENCH_KUBE_NAMESPACE", ""),
        kubeconfig=os.environ["DURABENCH_KUBECONFIG"],
    )
    return KubernetesPlatform(tmp_path, f"it-{uuid.uuid4().hex[:8]}", target)


def test_a_component_runs_is_killed_is_replaced_and_is_deleted(
    platform: KubernetesPlatform,
) -> None:
    try:
        component = platform.start(TOOLS)
        first = component.ident
        assert platform.kill("tools", 0.0) == first
        platform.restart("tools")  # waits for a ready replacement
        assert platform.pods({"durabench.io/component": "tools"}) != [first]
        entry = platform.partition("tools->worker")
        platform.heal_partition(entry)
    finally:
        platform.stop_all()
    assert platform.sweep() == 0


def test_a_pgstore_run_with_a_killed_worker_keeps_integrity_in_the_cluster(
    tmp_path: Path, write_scenario: Any
) -> None:
    """The README's `durabench run --platform kubernetes`, for real: pods, port-forwards,
    the work volume, a kill by pod delete, collection, and everything deleted after."""
    scenario = write_scenario(faults=[{"kind": "kill", "after_steps": 4}], deadline_s=180)
    result = CliRunner().invoke(
        cli,
        [
            "run",
            str(scenario),
            "--platform",
            "kubernetes",
            "--context",
            os.environ.get("DURABENCH_KUBE_CONTEXT", ""),
            "--namespace",
            os.environ.get("DURABENCH_KUBE_NAMESPACE", ""),
            "--backend",
            "pgstore",
            "--out",
            str(tmp_path / "results"),
        ],
    )
    assert result.exit_code == 0, result.output
    results = tmp_path / "results" / "latest"
    runs = pd.read_parquet(results / "runs.parquet")
    assert runs["passed"].all()
    faults = pd.read_parquet(results / "faults.parquet")
    assert faults["outcome"].tolist() == ["ok"]
