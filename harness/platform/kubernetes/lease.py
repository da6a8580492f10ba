"""A run's lease: how `durabench heal --platform kubernetes` tells a dead run from a live
one driven from another machine.

A running durabench holds one `coordination.k8s.io/v1` Lease per run in the namespace,
created before any other object of the run and renewed every RENEW_S seconds
(`spec.renewTime`). A run is provably dead only when its lease exists and has not been
renewed for its `leaseDurationSeconds` plus SKEW_S (clocks of two machines differ). A
run without a lease (its durabench died before making it, or predates leases) is never
taken for dead: only naming it (`heal --run ID`) deletes it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "DURATION_S",
    "RENEW_S",
    "SKEW_S",
    "LeaseKeeper",
    "LeaseState",
    "lease_manifest",
    "lease_state",
    "micro_time",
]

DURATION_S = 60  # a lease not renewed for this long (plus SKEW_S) belongs to a dead run
RENEW_S = 15.0
SKEW_S = 30  # allowance for the clocks of the machine that renews and the one that heals


def micro_time(at: float) -> str:
    """Kubernetes MicroTime (RFC 3339 with microseconds, UTC)."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(text: Any) -> float | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def lease_manifest(
    name: str, namespace: str, labels: dict[str, str], holder: str, now: float
) -> dict[str, Any]:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": DURATION_S,
            "acquireTime": micro_time(now),
            "renewTime": micro_time(now),
        },
    }


@dataclass(frozen=True)
class LeaseState:
    """What a lease says of its run: `dead` only when provably so."""

    dead: bool
    holder: str
    age_s: float | None  # since its last renewal (None: no readable renewTime)

    def describe(self) -> str:
        age = "never renewed" if self.age_s is None else f"renewed {self.age_s:.0f}s ago"
        return f"lease held by {self.holder or 'unknown'}, {age}"


def lease_state(lease: dict[str, Any], now: float) -> LeaseState:
    spec = lease.get("spec") or {}
    renewed = _parse_time(spec.get("renewTime")) or _parse_time(spec.get("acquireTime"))
    duration = spec.get("leaseDurationSeconds")
    holder = str(spec.get("holderIdentity") or "")
    if renewed is None or not isinstance(duration, int) or duration <= 0:
        return LeaseState(False, holder, None)  # unreadable: never taken for dead
    age = now - renewed
    return LeaseState(age > duration + SKEW_S, holder, age)


class LeaseKeeper:
    """Renews a lease every RENEW_S seconds in a daemon thread until `stop`. A failed
    renewal is retried at the next turn (the lease lasts DURATION_S, several turns)."""

    def __init__(self, renew: Callable[[str], None], every_s: float = RENEW_S) -> None:
        self._renew = renew
        self._every_s = every_s
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="durabench-lease", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stopping.wait(self._every_s):
            try:
                self._renew(micro_time(time.time()))
            except Exception:  # a missed renewal: the lease outlasts several of them
                continue

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
