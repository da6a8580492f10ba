"""One embedded Postgres for the whole session, started only if a test asks for it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from backends.base import ExternalServices
from tests.backends.langgraph.support import ExternalFor, postgres_server


@pytest.fixture(scope="session")
def langgraph_pg_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with postgres_server(tmp_path_factory.mktemp("langgraph-pg")) as dsn:
        yield dsn


@pytest.fixture
def external_for(request: pytest.FixtureRequest) -> ExternalFor:
    """external_for(backend) -> the ExternalServices that backend's test runs with:
    the session Postgres for langgraph:postgres, nothing for the others."""

    def external(backend: str) -> ExternalServices:
        if backend.startswith("langgraph:postgres"):
            return ExternalServices(pg_dsn=request.getfixturevalue("langgraph_pg_dsn"))
        return ExternalServices()

    return external
