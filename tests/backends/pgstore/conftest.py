"""The pgstore tests' `--pg-dsn`: the session's embedded Postgres (tests/conftest.py)."""

from __future__ import annotations

import pytest

from harness.postgres import EmbeddedServer


@pytest.fixture(scope="session")
def pg_dsn(pg_server: EmbeddedServer) -> str:
    return pg_server.dsn
