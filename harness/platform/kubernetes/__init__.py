"""The Kubernetes platform: manifests, guardrails, the API wrapper and the injectors.

`durabench k8s render` writes the manifests for review (`render`); `durabench run
--platform kubernetes` applies them through the API (`KubernetesPlatform`). Nothing
happens before the guardrails passed (`guardrails`).
"""

from __future__ import annotations

from harness.platform.kubernetes.api import ApiError, KubeApi
from harness.platform.kubernetes.guardrails import GuardrailError, KubeTarget
from harness.platform.kubernetes.platform import (
    EvictionRefused,
    KubeComponent,
    KubernetesPlatform,
    UnsupportedFault,
)

__all__ = [
    "ApiError",
    "EvictionRefused",
    "GuardrailError",
    "KubeApi",
    "KubeComponent",
    "KubeTarget",
    "KubernetesPlatform",
    "UnsupportedFault",
]
