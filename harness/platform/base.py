"""What every platform offers: run components (local processes, containers, pods).

What a platform can do beyond that (kill, pause, fault links, run images, ...) is a
capability Protocol in harness/platform/capabilities.py: the injectors ask for those,
so every fault works on every platform that has what it needs, and every backend gets
it for free.
"""

from __future__ import annotations

import random
import socket
import subprocess
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

from harness.errors import ComponentError
from harness.heal_entry import HealEntry

__all__ = [
    "ComponentSpec",
    "Handle",
    "Platform",
    "binary_version",
    "find_component",
    "free_port",
    "with_role",
]


def binary_version(binary: Path) -> str:
    """What a server binary says of itself (`BINARY --version`), or `unknown`."""
    try:
        out = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip()


# Ports are picked from here up to the kernel's ephemeral range (never inside it).
LOWEST_PICKED_PORT = 10000
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_PICK_ATTEMPTS = 200
_picked: set[int] = set()
_picked_lock = threading.Lock()
_random = random.SystemRandom()


def free_port() -> int:
    """A free TCP port on 127.0.0.1 for a component to listen on, never the same twice
    in one process.

    It is picked below the kernel's ephemeral range. A port the kernel hands out (a bind
    to port 0) is free again once released, so the kernel can hand it to any other
    process's next bind to 0 or outgoing connection before our component binds it: the
    Temporal dev server picks its internal services' ports that way, took one of ours and
    died while starting. Below the range the kernel never picks, so the port waits for us.
    """
    low, high = _picked_range()
    with _picked_lock:
        for _ in range(_PICK_ATTEMPTS if high > low else 0):
            port = _random.randrange(low, high)
            if port not in _picked and _bindable(port):
                _picked.add(port)
                return port
        while True:  # no room below the ephemeral range: the kernel's pick
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = int(sock.getsockname()[1])
            if port not in _picked:
                _picked.add(port)
                return port


def _picked_range() -> tuple[int, int]:
    try:
        ephemeral_low = int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral_low = 32768  # Linux's default range starts here
    return LOWEST_PICKED_PORT, ephemeral_low


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass(frozen=True)
class ComponentSpec:
    """What to run. `health_url` (HTTP 200) or else `port` (TCP accept) means ready."""

    name: str
    role: str  # llm | tools | server | store | worker | proxy
    argv: tuple[str, ...]
    port: int | None = None
    health_url: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    restart: bool = False
    restart_delay_s: float = 0.2
    ready_timeout_s: float = 30.0
    # the image to run, on platforms that run images; None = the platform's image
    image: str | None = None


class Handle(Protocol):
    """A running component."""

    spec: ComponentSpec

    @property
    def ident(self) -> str:
        """What identifies the running instance (a pid, a container id): for fault records."""
        ...


class Platform(Protocol):
    """Runs components. Implementations must undo nothing silently: every change a fault
    makes is reversed by the matching method of its capability."""

    name: str

    def start(self, spec: ComponentSpec) -> Handle:
        """Start a component and wait until it is ready (ComponentError with its log tail)."""
        ...

    def stop(self, name: str) -> None: ...

    def stop_all(self) -> None: ...

    def component(self, name: str) -> Handle: ...

    def components(self, role: str | None = None) -> Sequence[Handle]: ...

    def started_entry(self, handle: Handle) -> HealEntry:
        """The entry `durabench heal` needs to end this component if durabench dies."""
        ...


H = TypeVar("H", bound=Handle)


def find_component(components: Mapping[str, H], name: str) -> H:
    """The running component called `name`; a ComponentError naming those running."""
    try:
        return components[name]
    except KeyError:
        known = ", ".join(sorted(components)) or "none"
        raise ComponentError(f"no component {name!r} (running: {known})") from None


def with_role(components: Mapping[str, H], role: str | None) -> list[H]:
    """The running components with this role (all of them for None)."""
    return [c for c in components.values() if role is None or c.spec.role == role]
