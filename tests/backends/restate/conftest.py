"""The Restate tests need the real server: `npm ci --ignore-scripts` in the checkout puts
it in node_modules/.bin (.ci/run does). Without it they skip, except under CI=true,
where a missing server fails them: CI promised one."""

from __future__ import annotations

import os

import pytest

pytest.importorskip("restate")


@pytest.fixture(autouse=True)
def restate_server_installed() -> None:
    from backends.restate.server import INSTALL_HINT, find_restate_server

    if find_restate_server() is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but no restate-server binary: {INSTALL_HINT}")
        pytest.skip(f"no restate-server binary: {INSTALL_HINT}")
