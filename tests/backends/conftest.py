"""Servers every backend test directory shares, each started once per session and only
when a test asks for it: the session's embedded Postgres (tests/conftest.py) as a DSN
(the `--pg-dsn` path) and one real Temporal dev server (the `--temporal-address` path)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from harness.postgres import EmbeddedServer

if TYPE_CHECKING:
    from tests.backends.temporal.support import DevServer


@pytest.fixture(scope="session")
def pg_dsn(pg_server: EmbeddedServer) -> str:
    return pg_server.dsn


@pytest.fixture(scope="session")
def temporal_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    pytest.importorskip("temporalio")
    from tests.backends.temporal.support import dev_server

    with dev_server(tmp_path_factory.mktemp("temporal-server")) as server:
        yield server
