"""One embedded Postgres (harness.postgres) for the whole session, shared by every
pgstore / pgstore-naive test that runs against an existing server (`--pg-dsn` path)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.platform.local import LocalPlatform
from harness.postgres import EmbeddedServer, embedded_server, wait_ready


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    root = tmp_path_factory.mktemp("pgstore-postgres")
    server = embedded_server(root / "store")
    with LocalPlatform(root) as platform:
        platform.start(server.component())
        wait_ready(server.dsn)
        yield server


@pytest.fixture(scope="session")
def pg_dsn(pg_server: EmbeddedServer) -> str:
    return pg_server.dsn
