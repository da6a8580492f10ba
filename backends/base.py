"""The backend contract, the registry of built-in backends, and loading by import path.

A backend adapts one durable-execution substrate to durabench. It composes the
phase functions of `harness.agent` in its own idiom and must not re-implement
them. `inspect` must read what the backend *persisted* (store, server), never
worker memory: that is the whole point of the measurement.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from backends.options import BackendOptions, parse_options
from harness.errors import BackendError, DurabenchError
from harness.failpoints import BackendCrashPoint
from harness.masking import mask_dsn
from harness.platform.base import ComponentSpec
from harness.scenario import Scenario
from harness.state import PersistedRun

__all__ = [
    "BUILTIN_BACKENDS",
    "Backend",
    "BackendEnv",
    "BuiltinBackend",
    "DeclaresGuarantees",
    "Deployable",
    "ExternalServices",
    "FloorProgram",
    "Guarantees",
    "HasCrashPoints",
    "HasFloor",
    "RunSpec",
    "available_backends",
    "crash_points_of",
    "guarantees_of",
    "load_backend",
    "mask_dsn",
]


@dataclass(frozen=True)
class ExternalServices:
    """Existing servers the user pointed durabench at (CLI options or environment);
    `None` means durabench starts its own embedded one. Secrets are never stored:
    only the *names* of environment variables holding them."""

    pg_dsn: str | None = None
    temporal_address: str | None = None
    temporal_namespace: str = "default"
    temporal_tls_cert: str | None = None  # client certificate file (mTLS)
    temporal_tls_key: str | None = None  # client key file (mTLS)
    temporal_tls_ca: str | None = None  # server CA file
    temporal_api_key_env: str | None = None  # env var holding a Temporal Cloud API key
    restate_ingress: str | None = None  # an existing Restate server's ingress URL
    restate_admin: str | None = None  # ... and its admin URL

    def public(self) -> dict[str, Any]:
        """For the manifest: what was used, with passwords masked."""
        data = dict(self.__dict__)
        if self.pg_dsn:
            data["pg_dsn"] = mask_dsn(self.pg_dsn)
        return data


Router = Callable[[str, str, int], tuple[str, int]]


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
    external: ExternalServices = field(default_factory=lambda: ExternalServices())
    route: Router = field(default=lambda link, host, port: (host, port))

    def dial(self, link: str, host: str, port: int) -> tuple[str, int]:
        """The address a WORKER should dial to reach host:port over `link` (for example
        "worker->store"): the fault proxy's port when the scenario has network faults,
        else host:port itself. The harness's own reads (inspect) dial directly."""
        return self.route(link, host, port)


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


@runtime_checkable
class Deployable(Protocol):
    """Optional capability: the backend can run its workers on another code version
    (the `deploy` fault restarts the workers with these specs)."""

    def versions(self) -> list[str]:
        """The code versions this backend can deploy, current first."""
        ...

    def worker_components(self, env: BackendEnv, version: str) -> list[ComponentSpec]:
        """Worker specs (same names as the running ones) for `version`."""
        ...


@dataclass(frozen=True)
class FloorProgram:
    """One raw floor: a standalone program, run as `python -m MODULE --json ARGS...`, that
    performs the backend's step shape directly with its SDK and store (nothing of the
    harness in its loop) and prints its measurements as JSON. `env` carries secrets
    (DSNs) so they stay off the command line."""

    name: str  # "temporal", "pgstore", "postgres-insert", ...
    module: str
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class HasFloor(Protocol):
    """Optional capability: the backend names its raw floor(s) for the options it runs
    with, its own floor first. Called after `setup`, while the session's servers run."""

    def floor_programs(self, env: BackendEnv) -> list[FloorProgram]: ...


@dataclass(frozen=True)
class Guarantees:
    """What a backend promises beyond the protocol; the contract suite
    (tests/backends/test_contract.py) holds it to exactly these, and no more."""

    # inspect reads every run back with no worker alive, and the runs a killed worker
    # held reach the oracle's state once it is restarted
    durable: bool = False
    # an act executed again after a crash carries the key of its first execution,
    # so the tool applies it once
    stable_act_keys: bool = False


@runtime_checkable
class DeclaresGuarantees(Protocol):
    """Optional capability: the backend declares its `Guarantees` (absent: it claims nothing)."""

    @property
    def guarantees(self) -> Guarantees: ...


def guarantees_of(backend: Backend) -> Guarantees:
    """What `backend` declares it guarantees; nothing when it declares nothing."""
    return backend.guarantees if isinstance(backend, DeclaresGuarantees) else Guarantees()


@runtime_checkable
class HasCrashPoints(Protocol):
    """Optional capability: named durability boundaries inside the backend's own
    persistence path (`temporal.after_activity_effect`, ...), each namespaced by the
    backend and marked in its workers with `recorder.crash_point(name, run, step)`.
    Only declared points are accepted in a scenario for this backend."""

    def crash_points(self) -> list[BackendCrashPoint]: ...


def crash_points_of(backend: Backend) -> list[BackendCrashPoint]:
    """The backend's own crash points (none when it declares none)."""
    return list(backend.crash_points()) if isinstance(backend, HasCrashPoints) else []


@dataclass(frozen=True)
class BuiltinBackend:
    """Where a built-in backend lives, the modules it needs, and the extra that brings them.
    `floor` names the module whose `floor_programs(backend, env)` gives its raw floors;
    `options` declares its options for a backend class that does not (`Options`)."""

    path: str  # package.module:Class
    requires: tuple[str, ...] = ()
    extra: str = ""
    floor: str = ""
    options: type[BackendOptions] | None = None
    # "module:function" giving what the backend still misses outside Python (a server
    # binary), for the list of available backends; loading it raises the install hint
    tools: str = ""
    stage: str = ""  # an integration's release stage when not stable ("experimental", ...)


BUILTIN_BACKENDS: dict[str, BuiltinBackend] = {
    "baseline": BuiltinBackend(
        "backends.baseline:BaselineBackend", floor="backends.baseline.floor"
    ),
    "pgstore": BuiltinBackend(
        "backends.pgstore:PgStoreBackend", ("psycopg",), "pgstore", "backends.pgstore.floor"
    ),
    "pgstore-naive": BuiltinBackend(
        "backends.pgstore_naive:NaivePgStoreBackend",
        ("psycopg",),
        "pgstore",
        "backends.pgstore_naive.floor",
    ),
    "temporal": BuiltinBackend(
        "backends.temporal:TemporalBackend", ("temporalio",), "temporal", "backends.temporal.floor"
    ),
    "langgraph": BuiltinBackend(
        "backends.langgraph:LangGraphBackend",
        ("langgraph",),
        "langgraph",
        "backends.langgraph.floor",
    ),
    "dbos": BuiltinBackend(
        "backends.dbos:DbosBackend", ("dbos", "psycopg"), "dbos", "backends.dbos.floor"
    ),
    "restate": BuiltinBackend(
        "backends.restate:RestateBackend",
        ("restate", "hypercorn"),
        "restate",
        "backends.restate.floor",
        tools="backends.restate.server:missing_server",
    ),
    "pydantic-ai": BuiltinBackend(
        "backends.pydantic_ai.backend:PydanticAITemporalBackend",
        ("pydantic_ai", "temporalio"),
        "pydantic-ai",
        "backends.pydantic_ai.floor",
        stage="stable (pydantic-ai-slim; TemporalDurability, TemporalAgent deprecated)",
    ),
    # a variant on another substrate is an entry of its own (`family:variant`, its own class)
    "pydantic-ai:dbos": BuiltinBackend(
        "backends.pydantic_ai.dbos_backend:PydanticAIDbosBackend",
        ("pydantic_ai", "dbos", "psycopg"),
        "pydantic-ai",
        "backends.pydantic_ai.dbos_floor",
        stage="stable (pydantic-ai-slim; DBOSDurability, DBOSAgent deprecated)",
    ),
    "openai-agents": BuiltinBackend(
        "backends.openai_agents.backend:OpenAIAgentsTemporalBackend",
        ("agents", "temporalio.openai_agents"),
        "openai-agents",
        "backends.openai_agents.floor",
        stage="stable (temporalio-openai-agents; its streaming is experimental, not used)",
    ),
    "deepagents": BuiltinBackend(
        "backends.deepagents.backend:DeepAgentsBackend",
        ("deepagents", "langchain_openai", "langgraph"),
        "deepagents",
        "backends.deepagents.floor",
        stage="beta (deepagents 0.x: Development Status 4 - Beta)",
    ),
    "cloudflare": BuiltinBackend(
        "backends.cloudflare:CloudflareBackend",
        floor="backends.cloudflare.floor",
        tools="backends.cloudflare.install:missing",
    ),
}
MAX_NAME = 1000  # characters of a backend name


def _split_options(name: str) -> tuple[str, dict[str, str]]:
    base, _, query = name.partition("?")
    options: dict[str, str] = {}
    for pair in filter(None, query.split("&")):
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise BackendError(f"backend {name!r}: option {pair!r} must look like key=value")
        if key in options:
            raise BackendError(f"backend {name!r}: option {key!r} is given twice")
        options[key] = value
    return base, options


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


def _missing(backend: BuiltinBackend) -> list[str]:
    """Modules a built-in backend still misses: its own module, then its dependencies."""
    own = backend.path.partition(":")[0]
    return [m for m in (own, *backend.requires) if not _importable(m)]


def _missing_tools(backend: BuiltinBackend) -> list[str]:
    if not backend.tools:
        return []
    module, _, function = backend.tools.partition(":")
    missing: list[str] = getattr(importlib.import_module(module), function)()
    return missing


def available_backends() -> dict[str, list[str]]:
    """Built-in backend names mapped to what they still miss ([] = ready): modules, then
    the tools outside Python (a server binary) once the modules are there."""
    return {
        name: _missing(backend) or _missing_tools(backend)
        for name, backend in BUILTIN_BACKENDS.items()
    }


def _import_class(path: str, name: str) -> type[Any]:
    module_name, sep, attr = path.partition(":")
    if not sep or not attr:
        raise BackendError(f"backend {name!r}: an import path must look like package.module:Class")
    if os.getcwd() not in sys.path:  # a backend in the user's own project, as with `-m`
        sys.path.append(os.getcwd())  # last: it never shadows an installed package
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # a bad name (ValueError, TypeError) or the module's own failure
        raise BackendError(f"backend {name!r}: cannot import {module_name!r}: {exc}") from None
    try:
        cls: type[Any] = getattr(module, attr)
    except AttributeError:
        raise BackendError(f"backend {name!r}: {module_name} has no attribute {attr!r}") from None
    if not isinstance(cls, type):
        raise BackendError(f"backend {name!r}: {module_name}:{attr} is not a class")
    return cls


def _options_model(cls: type[Any], builtin: BuiltinBackend | None) -> type[BackendOptions] | None:
    """The backend's declared options: its class's `Options`, else its registry entry's."""
    declared = getattr(cls, "Options", None)
    if isinstance(declared, type) and issubclass(declared, BackendOptions):
        return declared
    return builtin.options if builtin is not None else None


def load_backend(name: str) -> Backend:
    """A backend instance from a built-in name (`baseline`, `langgraph:sqlite?durability=sync`)
    or an import path (`mypkg.mod:MyBackend`). Options after `?` are validated against the
    backend's declared options (`backends.options`) and go to the constructor typed; a
    backend that declares none gets them as text."""
    if len(name) > MAX_NAME:
        raise BackendError(f"backend name of {len(name)} characters: at most {MAX_NAME}")
    base, options = _split_options(name)
    family, _, variant = base.partition(":")
    if variant and base in BUILTIN_BACKENDS:  # a variant with a class of its own
        family, variant = base, ""
    builtin = BUILTIN_BACKENDS.get(family)
    if builtin is not None:
        missing = _missing(builtin)
        if missing:
            hint = f": pip install 'durabench[{builtin.extra}]'" if builtin.extra else ""
            raise BackendError(f"backend {family!r} needs {', '.join(missing)}{hint}")
        cls = _import_class(builtin.path, name)
    elif ":" in base:
        cls, variant = _import_class(base, name), ""
    else:
        known = ", ".join(sorted(BUILTIN_BACKENDS))
        raise BackendError(
            f"unknown backend {name!r}; built-in backends: {known}; "
            "or give an import path like package.module:Class"
        )
    model = _options_model(cls, builtin)
    arguments: dict[str, Any] = dict(options)
    if model is not None:
        if variant and "variant" not in model.model_fields:
            raise BackendError(f"backend {name!r}: {family} has no variants (':{variant}')")
        if "variant" in options:
            raise BackendError(f"backend {name!r}: give the variant as {family}:VARIANT")
        given = {"variant": variant, **options} if variant else options
        arguments = parse_options(name, model, given).model_dump(exclude_unset=True)
    elif variant:
        arguments = {"variant": variant, **options}
    try:
        backend = cls(**arguments)
    except DurabenchError:
        raise
    except TypeError as exc:
        raise BackendError(f"backend {name!r}: bad options {options}: {exc}") from None
    except Exception as exc:  # a third-party constructor's own failure, not a traceback
        raise BackendError(f"backend {name!r}: {cls.__qualname__}() failed: {exc}") from None
    if not isinstance(backend, Backend):
        raise BackendError(
            f"backend {name!r}: {cls.__qualname__} does not implement the Backend protocol"
        )
    return backend
