"""Platforms run components: local processes (default), Docker containers, Kubernetes pods.

`make_platform` is the registry: a platform is chosen by name (`--platform`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from harness.errors import DurabenchError
from harness.platform.base import ComponentSpec, Handle, Platform
from harness.platform.local import Component, LocalPlatform, free_port

__all__ = [
    "PLATFORMS",
    "Component",
    "ComponentSpec",
    "Handle",
    "LocalPlatform",
    "Platform",
    "closing_platform",
    "free_port",
    "make_platform",
]


# name -> factory(workdir, bench_id). Platforms that need optional packages import lazily.
def _docker(workdir: Path, bench_id: str) -> Platform:
    from harness.platform.docker import DockerPlatform

    return DockerPlatform(workdir, bench_id)


def _kubernetes(workdir: Path, bench_id: str) -> Platform:
    from harness.platform.kubernetes import KubernetesPlatform

    return KubernetesPlatform.from_environment(workdir, bench_id)


PLATFORMS: dict[str, Callable[[Path, str], Platform]] = {
    "local": lambda workdir, bench_id: LocalPlatform(workdir),
    "docker": _docker,
    "kubernetes": _kubernetes,
}


def make_platform(name: str, workdir: Path, bench_id: str) -> Platform:
    try:
        factory = PLATFORMS[name]
    except KeyError:
        known = ", ".join(sorted(PLATFORMS))
        raise DurabenchError(f"unknown platform {name!r}; platforms: {known}") from None
    return factory(workdir, bench_id)


@contextmanager
def closing_platform(platform: Platform) -> Iterator[Platform]:
    """Stop every component the platform started, whatever happens."""
    try:
        yield platform
    finally:
        platform.stop_all()
