"""The backend contract, the registry of built-in backends, and loading by import path.

A backend adapts one durable-execution substrate to durabench. It composes the
phase functions of `harness.agent` in its own idiom and must not re-implement
them. `inspect` must read what the backend *persisted* (store, server), never
worker memory: that is the whole point of the measurement.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from harness.errors import BackendError
from harness.platform.local import ComponentSpec
from harness.scenario import Scenario
from harness.state import PersistedRun

__all__ = [
    "BUILTIN_BACKENDS",
    "Backend",
    "BackendEnv",
    "RunSpec",
    "available_backends",
    "load_backend",
]


@dataclass(frozen=True)
class BackendEnv:
    """Everything a backend is given: the scenario, where the services are, where to write."""

    scenario: Scenario
    scenario_path: Path
    bench_id: str  # unique per durabench run; namespaces workflow ids, task queues, schemas
    llm_url: str  # OpenAI-compatible base URL, e.g. http://127.0.0.1:PORT/v1
    tools_url: str
    workdir: Path  # this backend's private directory inside the results directory
    measurements_dir: Path  # where workers' Recorder files go
    options: dict[str, str] = field(default_factory=dict)  # from "name?key=value&..."


@dataclass(frozen=True)
class RunSpec:
    run_id: str  # logical id from the oracle (identical across backends)
    deadline_s: float


@runtime_checkable
class Backend(Protocol):
    """One durable-execution substrate. Methods are called in this order:
    components → (platform starts them) → setup → start/wait/approve per run →
    inspect per run → cleanup_stale → teardown."""

    name: str

    def components(self, env: BackendEnv) -> list[ComponentSpec]:
        """The processes this backend needs (workers, servers); the platform runs them."""
        ...

    async def setup(self, env: BackendEnv) -> None:
        """Connect to what `components` started; create schemas, queues."""
        ...

    async def start(self, run: RunSpec) -> None:
        """Start one agent run and return once the backend accepted it durably."""
        ...

    async def wait(self, run_id: str, timeout_s: float) -> bool:
        """Wait until the run is terminal or the timeout passes; True if terminal."""
        ...

    async def approve(self, run_id: str) -> None:
        """Deliver the human approval the run waits for."""
        ...

    async def inspect(self, run_id: str) -> PersistedRun:
        """Read the run's persisted state back from the store or server."""
        ...

    async def cleanup_stale(self, ttl_s: float) -> int:
        """Clean up runs stuck longer than the TTL (zombies); returns how many."""
        ...

    async def teardown(self) -> None: ...

    def describe(self) -> dict[str, Any]:
        """What ran, for the manifest: variant, options, versions, policies."""
        ...


# name -> (import path, the distributions it needs). Extend when a backend lands.
BUILTIN_BACKENDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "baseline": ("backends.baseline:BaselineBackend", ()),
}


def _split_options(name: str) -> tuple[str, dict[str, str]]:
    base, _, query = name.partition("?")
    options: dict[str, str] = {}
    for pair in filter(None, query.split("&")):
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise BackendError(f"backend {name!r}: option {pair!r} must look like key=value")
        options[key] = value
    return base, options


def _missing(distributions: tuple[str, ...]) -> list[str]:
    return [d for d in distributions if importlib.util.find_spec(d) is None]


def available_backends() -> dict[str, list[str]]:
    """Built-in backend names mapped to the modules they still miss ([] = ready)."""
    return {name: _missing(deps) for name, (_, deps) in BUILTIN_BACKENDS.items()}


def _import_class(path: str, name: str) -> type[Any]:
    module_name, sep, attr = path.partition(":")
    if not sep or not attr:
        raise BackendError(f"backend {name!r}: an import path must look like package.module:Class")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BackendError(f"backend {name!r}: cannot import {module_name}: {exc}") from None
    try:
        cls: type[Any] = getattr(module, attr)
    except AttributeError:
        raise BackendError(f"backend {name!r}: {module_name} has no attribute {attr!r}") from None
    return cls


def load_backend(name: str) -> Backend:
    """A backend instance from a built-in name (`baseline`, `langgraph:sqlite?durability=sync`)
    or an import path (`mypkg.mod:MyBackend`). Options after `?` go to the constructor."""
    base, options = _split_options(name)
    family, _, variant = base.partition(":")
    if family in BUILTIN_BACKENDS:
        path, deps = BUILTIN_BACKENDS[family]
        missing = _missing(deps)
        if missing:
            raise BackendError(
                f"backend {family!r} needs {', '.join(missing)}: pip install 'durabench[{family}]'"
            )
        cls = _import_class(path, name)
        if variant:
            options = {"variant": variant, **options}
    elif ":" in base:
        cls = _import_class(base, name)
    else:
        known = ", ".join(sorted(BUILTIN_BACKENDS))
        raise BackendError(
            f"unknown backend {name!r}; built-in backends: {known}; "
            "or give an import path like package.module:Class"
        )
    try:
        backend = cls(**options)
    except TypeError as exc:
        raise BackendError(f"backend {name!r}: bad options {options}: {exc}") from None
    if not isinstance(backend, Backend):
        raise BackendError(
            f"backend {name!r}: {cls.__qualname__} does not implement the Backend protocol"
        )
    return backend
