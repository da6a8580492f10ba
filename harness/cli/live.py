"""`--metrics-port P`: Prometheus metrics on 127.0.0.1:P while the command runs
(harness/metrics.py), for `run`, `suite` and `load`."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import click

from harness.cli.common import console, fail
from harness.errors import DurabenchError

__all__ = ["metrics_option", "metrics_served"]

F = TypeVar("F", bound=Callable[..., Any])


def metrics_option(function: F) -> F:
    return click.option(
        "--metrics-port",
        type=click.IntRange(min=0, max=65535),
        default=None,
        metavar="P",
        help="Serve Prometheus metrics on 127.0.0.1:P/metrics while this runs (committed "
        "steps, step and overhead latency per backend, active faults, runs in flight, "
        "anomalies so far); deploy/grafana has a dashboard and the scrape config.",
    )(function)


@contextlib.contextmanager
def metrics_served(port: int | None) -> Iterator[None]:
    if port is None:
        yield
        return
    from harness.metrics import serve_metrics

    server = serve_metrics(port)
    try:
        server.__enter__()
    except DurabenchError as exc:
        fail(str(exc))
    console.print(f"metrics: http://{server.host}:{server.port}/metrics", highlight=False)
    try:
        yield
    finally:
        server.__exit__(None, None, None)
