"""Integration tests against a REAL cluster (for example kind), run only when
DURABENCH_KUBECONFIG points at one; DURABENCH_KUBE_CONTEXT and DURABENCH_KUBE_NAMESPACE
name the target (the namespace labelled durabench.io/chaos=enabled, the RBAC of
deploy/kubernetes/rbac.yaml applied), DURABENCH_KUBE_IMAGE an image the cluster can
pull (default durabench:latest, e.g. `kind load docker-image durabench:latest`)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

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
