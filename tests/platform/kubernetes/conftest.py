"""Fixtures for the Kubernetes contract tests: a stub API server and targets on it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from k8s_stub_api import NOT_OPTED_IN, OPTED_IN, OPTED_OUT, StubApiServer

from harness.platform.kubernetes import KubernetesPlatform
from harness.platform.kubernetes.guardrails import OPT_IN_LABEL, OPT_IN_VALUE, KubeTarget


@pytest.fixture
def stub() -> Iterator[StubApiServer]:
    server = StubApiServer(
        namespaces={
            OPTED_IN: {OPT_IN_LABEL: OPT_IN_VALUE},
            NOT_OPTED_IN: {},
            OPTED_OUT: {OPT_IN_LABEL: "disabled"},
            "default": {OPT_IN_LABEL: OPT_IN_VALUE},  # even opted in, default is refused
        }
    )
    yield server
    server.close()


@pytest.fixture
def kubeconfig(stub: StubApiServer, tmp_path: Path) -> Path:
    return stub.kubeconfig(tmp_path)


@pytest.fixture
def target(kubeconfig: Path) -> KubeTarget:
    return KubeTarget(context="stub", namespace=OPTED_IN, kubeconfig=str(kubeconfig))


@pytest.fixture
def make_platform(
    target: KubeTarget, tmp_path: Path
) -> Iterator[Callable[..., KubernetesPlatform]]:
    """Platforms on the stub; each is stopped at the end (its port-forwards closed)."""
    made: list[KubernetesPlatform] = []

    def make(bench_id: str = "bench-1", target: KubeTarget = target) -> KubernetesPlatform:
        platform = KubernetesPlatform(tmp_path / "work", bench_id, target, echo=lambda _: None)
        made.append(platform)
        return platform

    yield make
    for platform in made:
        platform.stop_all()
