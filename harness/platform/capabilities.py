"""What a platform can do beyond running components, as small Protocols (Jepsen's `Kill`,
`Pause`): an injector declares the ones it needs, a platform has them or not, and the
check is `isinstance(platform, Pause)`, never a probe for a method name.

Every platform shipped has the process faults (Kill, Evict, Pause, Restart, Outage);
the others belong to some platforms only: Kubernetes faults links itself (LinkFaults),
writes files where the harness must fetch them (CollectFiles) and can print instead of
act (DryRun); Docker and Kubernetes run images (RunImages); local and Docker components
see this machine's files at the same paths (SharedFilesystem).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from harness.faults import NetworkFault
from harness.heal_entry import HealEntry
from harness.platform.base import Handle

__all__ = [
    "CAPABILITIES",
    "CollectFiles",
    "DryRun",
    "Evict",
    "Kill",
    "LinkFaults",
    "Outage",
    "Pause",
    "Restart",
    "RunImages",
    "SharedFilesystem",
]


@runtime_checkable
class Kill(Protocol):
    def kill(self, name: str, restart_delay_s: float) -> str:
        """Kill at once (a node lost); restarted after the delay if the spec says restart.
        Returns what was killed (a pid, a container, pods)."""
        ...


@runtime_checkable
class Evict(Protocol):
    def evict(self, name: str, grace_s: float) -> str:
        """Ask to stop, wait up to the grace period, then kill (blocking)."""
        ...


@runtime_checkable
class Pause(Protocol):
    def pause(self, name: str) -> HealEntry:
        """Freeze a component; the entry is what `resume` and `durabench heal` undo."""
        ...

    def resume(self, entry: HealEntry) -> None: ...


@runtime_checkable
class Restart(Protocol):
    def restart(self, name: str, down_s: float = 0.0) -> Handle:
        """Kill at once, stay down `down_s`, start again on the same data."""
        ...


@runtime_checkable
class Outage(Protocol):
    def kill_now(self, name: str) -> Handle:
        """Kill at once and forget the component until `revive`."""
        ...

    def revive(self, handle: Handle) -> Handle: ...


@runtime_checkable
class LinkFaults(Protocol):
    """The platform cuts and slows links itself (no fault proxy in the components' path)."""

    def refuse_network_fault(self, fault: NetworkFault) -> str | None:
        """Why this fault cannot be applied here (None: it can), asked before anything
        starts."""
        ...

    def network_fault(self, fault: NetworkFault) -> HealEntry: ...

    def heal_network_fault(self, entry: HealEntry) -> None: ...


@runtime_checkable
class CollectFiles(Protocol):
    """Components write their files elsewhere (a volume); `collect` brings them here."""

    def collect(self, paths: Sequence[str]) -> None:
        """Bring `paths` (relative to the work directory) into the work directory."""
        ...


@runtime_checkable
class RunImages(Protocol):
    """Components run from an image; a spec's `image` replaces this default."""

    image: str


@runtime_checkable
class DryRun(Protocol):
    @property
    def dry_run(self) -> bool:
        """True: API calls are printed, not made (a run stops once its plan is printed)."""
        ...


@runtime_checkable
class SharedFilesystem(Protocol):
    """Components see this machine's files at the same paths as the harness."""

    @property
    def shares_host_filesystem(self) -> bool: ...


CAPABILITIES: dict[type, str] = {
    Kill: "kill components",
    Evict: "evict components",
    Pause: "pause components",
    Restart: "restart components",
    Outage: "take components down and bring them back",
    LinkFaults: "fault links itself",
    CollectFiles: "collect files",
    RunImages: "run images",
    DryRun: "dry-run",
    SharedFilesystem: "share this machine's filesystem",
}
"""What each capability lets a platform do, for messages that say why it cannot."""
