"""The worker command line, written once: what a backend tells each worker process,
and how the worker's main reads it back.

A backend builds one `WorkerArgs` per worker and runs `command(module)`; the
worker's main calls `WorkerArgs.parse(Options, ...)` and gets the same values back,
typed. What every worker needs is a field of `WorkerArgs`; what one backend's
workers need is a frozen dataclass of that backend's own (`options`), whose fields
become `--kebab-case` flags (str, int, float, Path, or one of them `| None`; a
field without a default is a required flag, a `None` value is left out). Every
value is one argv element after its flag, so the Kubernetes platform's rewriting
of paths and loopback addresses sees it whole.

Secrets must NOT go here (a command line is visible to `ps`): they travel in the
component's environment (`DURABENCH_PG_DSN`, the variable a Temporal API key is in).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import aiohttp

from backends.base import BackendEnv
from harness.agent import AgentContext, api_key
from harness.measure import Recorder
from harness.scenario import Scenario

__all__ = ["NoOptions", "WorkerArgs"]

DEFAULT_HOST = "127.0.0.1"
SCALARS = (str, int, float, Path)

OptionsT = TypeVar("OptionsT")


@dataclass(frozen=True)
class NoOptions:
    """For workers that need nothing beyond what every worker gets."""


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _scalar(owner: type, name: str, hint: Any) -> tuple[type, bool]:
    """(the field's scalar type, whether it may be None); TypeError for anything else."""
    optional = False
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional, hint = True, args[0] if len(args) == 1 else None
    if hint not in SCALARS:
        raise TypeError(
            f"{owner.__qualname__}.{name}: a worker option must be str, int, "
            "float or Path (or one of them | None)"
        )
    return hint, optional


def _text(value: object) -> str:
    return repr(value) if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class WorkerArgs(Generic[OptionsT]):
    """What every worker is told: where the scenario, the services and its measurement
    files are, which worker slot it is, and its backend's own options."""

    scenario: Path
    llm_url: str
    tools_url: str
    measurements: Path
    worker_id: str  # the worker's slot ("worker-0"): names its measurement file, its leases
    backend_name: str
    options: OptionsT
    port: int | None = None  # the worker's own HTTP endpoint (health, runs), if it serves one
    host: str = DEFAULT_HOST

    @classmethod
    def for_env(
        cls,
        env: BackendEnv,
        backend_name: str,
        worker_id: str,
        options: OptionsT,
        port: int | None = None,
    ) -> WorkerArgs[OptionsT]:
        """The arguments of one worker of a backend set up in `env`."""
        return cls(
            scenario=env.scenario_path,
            llm_url=env.llm_url,
            tools_url=env.tools_url,
            measurements=env.measurements_dir,
            worker_id=worker_id,
            backend_name=backend_name,
            options=options,
            port=port,
        )

    def to_argv(self) -> tuple[str, ...]:
        """The command-line arguments (no program): common flags, then the options."""
        argv = [
            "--scenario",
            str(self.scenario),
            "--llm-url",
            self.llm_url,
            "--tools-url",
            self.tools_url,
            "--measurements",
            str(self.measurements),
            "--worker-id",
            self.worker_id,
            "--backend-name",
            self.backend_name,
        ]
        if self.port is not None:
            argv += ["--port", str(self.port)]
        if self.host != DEFAULT_HOST:  # absent, so a platform may add its own bind
            argv += ["--host", self.host]
        options: Any = self.options
        hints = typing.get_type_hints(type(options))
        for item in dataclasses.fields(options):
            _scalar(type(options), item.name, hints[item.name])
            value = getattr(options, item.name)
            if value is not None:
                argv += [_flag(item.name), _text(value)]
        return tuple(argv)

    def command(self, module: str) -> tuple[str, ...]:
        """The worker's whole argv: this interpreter running `module`."""
        return (sys.executable, "-m", module, *self.to_argv())

    @classmethod
    def parse(
        cls,
        options: type[OptionsT],
        argv: Sequence[str] | None = None,
        *,
        description: str = "durabench worker",
        needs_port: bool = False,
    ) -> WorkerArgs[OptionsT]:
        """Read back what `to_argv` wrote (argv None: this process's). A bad command line
        exits 2 with argparse's usage message, as any command-line tool does."""
        parser = argparse.ArgumentParser(description=description)
        parser.add_argument("--scenario", type=Path, required=True)
        parser.add_argument("--llm-url", required=True)
        parser.add_argument("--tools-url", required=True)
        parser.add_argument("--measurements", type=Path, required=True)
        parser.add_argument("--worker-id", required=True)
        parser.add_argument("--backend-name", required=True)
        parser.add_argument("--port", type=int, required=needs_port, help="its HTTP endpoint")
        parser.add_argument("--host", default=DEFAULT_HOST)
        hints = typing.get_type_hints(options)
        fields = dataclasses.fields(typing.cast(Any, options))
        for item in fields:
            kind, _ = _scalar(options, item.name, hints[item.name])
            required = item.default is dataclasses.MISSING
            parser.add_argument(
                _flag(item.name),
                dest=f"option_{item.name}",
                type=kind,
                required=required,
                default=None if required else item.default,
                choices=item.metadata.get("choices"),
                help=item.metadata.get("help"),
            )
        ns = parser.parse_args(argv)
        values = {item.name: getattr(ns, f"option_{item.name}") for item in fields}
        return cls(
            scenario=ns.scenario,
            llm_url=ns.llm_url,
            tools_url=ns.tools_url,
            measurements=ns.measurements,
            worker_id=ns.worker_id,
            backend_name=ns.backend_name,
            options=options(**values),
            port=ns.port,
            host=ns.host,
        )

    def recorder(self) -> Recorder:
        """This worker's measurement file."""
        return Recorder(self.measurements, self.backend_name, self.worker_id)

    def agent_context(self, scenario: Scenario, http: aiohttp.ClientSession) -> AgentContext:
        """The phase functions' context for this worker (its recorder: `ctx.recorder`)."""
        return AgentContext(
            scenario=scenario,
            http=http,
            llm_url=self.llm_url,
            tools_url=self.tools_url,
            recorder=self.recorder(),
            api_key=api_key(scenario),
        )
