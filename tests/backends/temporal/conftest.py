"""One real Temporal dev server for the whole session (see support.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.backends.temporal.support import DevServer, dev_server


@pytest.fixture(scope="session")
def temporal_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    with dev_server(tmp_path_factory.mktemp("temporal-server")) as server:
        yield server
