"""What every `durabench` command shares: the consoles, the error exit, signal handling,
the log file, and the options several commands take (backends, results directory,
existing servers), so each is declared once."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn, TypeVar

import click
from rich.console import Console
from rich.markup import escape

from harness.errors import DurabenchError
from harness.masking import mask_text

__all__ = [
    "backends_option",
    "console",
    "execute_bench",
    "external_from",
    "external_options",
    "fail",
    "fmt",
    "installed_backends",
    "log_to",
    "out",
    "out_option",
    "stop_on_signals",
]

console = Console(stderr=True)  # progress, errors, notes
out = Console()  # the results a user pipes or reads

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = 2) -> NoReturn:
    """One red line and an exit code: no traceback ever reaches a user, nor a secret
    that an error message carried (a DSN's password)."""
    text = escape(mask_text(message))
    console.print(f"[bold red]error:[/] {text}", highlight=False, soft_wrap=True)  # no wrap
    sys.exit(code)


class _MaskSecrets(logging.Filter):
    """Log records are written with their secrets masked (a library may log a DSN)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = mask_text(record.getMessage())
        record.args = None
        return True


def log_to(directory: Path) -> None:
    """Library warnings (a database pool reconnecting during a store restart, a retried
    gRPC call) are expected under faults: they go to a log file, not over the progress."""
    directory.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(directory / "durabench.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    handler.addFilter(_MaskSecrets())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def _terminate_as_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def stop_on_signals() -> None:
    """SIGINT and SIGTERM stop a command as Ctrl-C does: every process durabench started
    is stopped and what was measured is kept. SIGINT's handler is installed explicitly: a
    durabench started as a background job inherits SIGINT ignored, and `kill -INT` would
    do nothing."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminate_as_interrupt)


def fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def installed_backends() -> list[str]:
    """The built-in backends whose dependencies are installed (the default set)."""
    from backends.base import available_backends

    return [n for n, missing in available_backends().items() if not missing]


def backends_option(help: str, *, required: bool = False) -> Callable[[F], F]:
    return click.option(
        "--backend",
        "-b",
        "backends",
        multiple=True,
        required=required,
        metavar="NAME",
        help=help,
    )


def out_option(help: str = "Directory that receives the results.") -> Callable[[F], F]:
    return click.option(
        "--out",
        "out_dir",
        type=click.Path(path_type=Path),
        default=Path("results"),
        show_default=True,
        help=help,
    )


_EXTERNAL_OPTIONS = (
    click.option(
        "--pg-dsn",
        envvar="DURABENCH_PG_DSN",
        metavar="DSN",
        help="Use this existing Postgres (postgresql://...) instead of starting an embedded "
        "one; durabench creates its own schema per run and touches nothing else. "
        "[env: DURABENCH_PG_DSN]",
    ),
    click.option(
        "--temporal-address",
        envvar="DURABENCH_TEMPORAL_ADDRESS",
        metavar="HOST:PORT",
        help="Use this Temporal frontend instead of starting the dev server. "
        "[env: DURABENCH_TEMPORAL_ADDRESS]",
    ),
    click.option(
        "--temporal-namespace",
        envvar="DURABENCH_TEMPORAL_NAMESPACE",
        default="default",
        show_default=True,
        help="Temporal namespace. [env: DURABENCH_TEMPORAL_NAMESPACE]",
    ),
    click.option(
        "--temporal-tls-cert",
        type=click.Path(exists=True, dir_okay=False),
        help="Client certificate for mTLS to Temporal.",
    ),
    click.option(
        "--temporal-tls-key",
        type=click.Path(exists=True, dir_okay=False),
        help="Client private key for mTLS to Temporal.",
    ),
    click.option(
        "--temporal-tls-ca",
        type=click.Path(exists=True, dir_okay=False),
        help="CA certificate of the Temporal server.",
    ),
    click.option(
        "--temporal-api-key-env",
        metavar="VAR",
        help="Name of the environment variable holding a Temporal Cloud API key "
        "(the key itself is never stored).",
    ),
    click.option(
        "--restate-ingress",
        envvar="DURABENCH_RESTATE_INGRESS",
        metavar="URL",
        help="Use this Restate server's ingress (http://host:8080) instead of starting one; "
        "give --restate-admin too. [env: DURABENCH_RESTATE_INGRESS]",
    ),
    click.option(
        "--restate-admin",
        envvar="DURABENCH_RESTATE_ADMIN",
        metavar="URL",
        help="That Restate server's admin API (http://host:9070). [env: DURABENCH_RESTATE_ADMIN]",
    ),
)
_EXTERNAL_NAMES = (
    "pg_dsn",
    "temporal_address",
    "temporal_namespace",
    "temporal_tls_cert",
    "temporal_tls_key",
    "temporal_tls_ca",
    "temporal_api_key_env",
    "restate_ingress",
    "restate_admin",
)


def external_options(function: F) -> F:
    """The options that point durabench at existing servers instead of its own."""
    for option in reversed(_EXTERNAL_OPTIONS):
        function = option(function)
    return function


def external_from(options: dict[str, Any]) -> Any:
    """ExternalServices from the parameters `external_options` added (popped from
    `options`, so the rest are the command's own)."""
    from backends.base import ExternalServices

    return ExternalServices(**{name: options.pop(name) for name in _EXTERNAL_NAMES})


def execute_bench(bench: Any, progress: Any = None) -> Any:
    """Run a BenchmarkRun to the end: Ctrl-C or SIGTERM exits 130, a durabench error exits
    1, both naming where the partial results are kept."""
    try:
        if progress is None:
            return asyncio.run(bench.execute())
        with progress:
            return asyncio.run(bench.execute())
    except KeyboardInterrupt:
        where = f" (partial results kept in {bench.results.path})" if bench.results else ""
        fail(f"interrupted{where}", 130)
    except DurabenchError as exc:
        where = f"\n(partial results kept in {bench.results.path})" if bench.results else ""
        fail(f"{exc}{where}", 1)
