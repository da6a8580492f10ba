"""What durabench refuses to do to a cluster, checked before any object is touched.

A fault injector pointed at the wrong cluster is an outage. So: the context and the
namespace are always explicit and printed first; the system namespaces and
`default` are refused outright; any other namespace must carry the opt-in label
`durabench.io/chaos=enabled` (set by its owner, never by durabench); and every
object durabench creates or targets is selected by the labels durabench set.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from harness.errors import DurabenchError

__all__ = [
    "COMPONENT_LABEL",
    "CONTEXT_ENV",
    "DRY_RUN_ENV",
    "FORBIDDEN_NAMESPACES",
    "MANAGED_BY",
    "NAMESPACE_ENV",
    "OPT_IN_LABEL",
    "OPT_IN_VALUE",
    "ROLE_LABEL",
    "RUN_LABEL",
    "GuardrailError",
    "KubeTarget",
    "announce",
    "check_namespace_labels",
    "check_namespace_name",
    "label_selector",
    "run_label_value",
]

FORBIDDEN_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease", "default"})
OPT_IN_LABEL = "durabench.io/chaos"
OPT_IN_VALUE = "enabled"
RUN_LABEL = "durabench.io/run"
COMPONENT_LABEL = "durabench.io/component"
ROLE_LABEL = "durabench.io/role"
MANAGED_BY = ("app.kubernetes.io/managed-by", "durabench")
CONTEXT_ENV = "DURABENCH_KUBE_CONTEXT"
NAMESPACE_ENV = "DURABENCH_KUBE_NAMESPACE"
DRY_RUN_ENV = "DURABENCH_KUBE_DRY_RUN"
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE_MAX = 63


class GuardrailError(DurabenchError):
    """durabench refused to act on a cluster: the message says which rule and how to fix it."""


@dataclass(frozen=True)
class KubeTarget:
    """Where durabench may act: one kubeconfig context and one namespace, both explicit."""

    context: str
    namespace: str
    dry_run: bool = False
    kubeconfig: str | None = None

    def __post_init__(self) -> None:
        if not self.context:
            raise GuardrailError(
                "--context is required for the kubernetes platform (the kubeconfig context "
                "to act on); durabench never falls back to the current context"
            )
        check_namespace_name(self.namespace)

    @classmethod
    def from_environment(cls) -> KubeTarget:
        """The target the CLI put in the environment (--context, --namespace, --dry-run)."""
        return cls(
            context=os.environ.get(CONTEXT_ENV, ""),
            namespace=os.environ.get(NAMESPACE_ENV, ""),
            dry_run=os.environ.get(DRY_RUN_ENV, "") in ("1", "true", "yes"),
            kubeconfig=os.environ.get("DURABENCH_KUBECONFIG") or os.environ.get("KUBECONFIG"),
        )


def check_namespace_name(namespace: str) -> None:
    """A namespace durabench may act in, or write manifests for: given, a valid name, and
    neither a system namespace nor `default`."""
    if not namespace:
        raise GuardrailError("--namespace is required for the kubernetes platform")
    if namespace in FORBIDDEN_NAMESPACES:
        refused = ", ".join(sorted(FORBIDDEN_NAMESPACES))
        raise GuardrailError(
            f"refusing namespace {namespace!r}: durabench never acts on {refused}; "
            f"create a namespace for it and label it {OPT_IN_LABEL}={OPT_IN_VALUE}"
        )
    if not _DNS_LABEL.match(namespace):
        raise GuardrailError(f"{namespace!r} is not a valid namespace name")


def announce(target: KubeTarget, echo: Callable[[str], None]) -> None:
    """Say where durabench is about to act, before it does anything."""
    mode = " (dry run: API calls are printed, not made)" if target.dry_run else ""
    echo(f"kubernetes: context {target.context!r}, namespace {target.namespace!r}{mode}")


def check_namespace_labels(namespace: str, labels: Mapping[str, str] | None) -> None:
    """The namespace's owner opted in with the label durabench.io/chaos=enabled."""
    value = (labels or {}).get(OPT_IN_LABEL)
    if value != OPT_IN_VALUE:
        found = f" (it is {value!r})" if value is not None else ""
        raise GuardrailError(
            f"refusing namespace {namespace!r}: it lacks the opt-in label "
            f"{OPT_IN_LABEL}={OPT_IN_VALUE}{found}; its owner can opt in with "
            f"`kubectl label namespace {namespace} {OPT_IN_LABEL}={OPT_IN_VALUE}`"
        )


def run_label_value(bench_id: str) -> str:
    """A bench id as a label value (63 characters of [A-Za-z0-9._-], alphanumeric ends)."""
    value = re.sub(r"[^A-Za-z0-9._-]", "-", bench_id)[-_LABEL_VALUE_MAX:]
    return value.strip("-_.") or "run"


def label_selector(labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
