"""The embedded Postgres server (harness.postgres): binaries, durability settings,
restart on the same data directory, schemas and DSNs."""

from __future__ import annotations

import importlib.util
import re
import signal
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest

from harness.errors import BackendError, ComponentError
from harness.platform.local import LocalPlatform
from harness.postgres import (
    PG_BIN_ENV,
    EmbeddedServer,
    check_connection,
    create_schema,
    embedded_server,
    find_postgres_bin,
    schema_name,
    wait_ready,
    with_search_path,
)

IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def test_the_postgres_binaries_are_found() -> None:
    bindir = find_postgres_bin()
    for name in ("pg_ctl", "initdb", "postgres"):
        assert (bindir / name).is_file()


def test_a_binary_directory_without_postgres_is_refused_with_a_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PG_BIN_ENV, str(tmp_path))
    with pytest.raises(ComponentError, match="expected pg_ctl, initdb, postgres"):
        find_postgres_bin()


def test_schema_names_are_short_valid_and_distinct() -> None:
    short = schema_name("20261126T101010-smoke-abc123", "pgstore")
    assert short == "db_20261126t101010_smoke_abc123_pgstore"
    long_a = schema_name("20261126T101010-" + "x" * 64 + "-abc123", "pgstore-naive")
    long_b = schema_name("20261126T101010-" + "x" * 64 + "-abc123", "pgstore")
    for name in (short, long_a, long_b, schema_name("b", "pgstore?lease_s=1")):
        assert IDENTIFIER.match(name), name
    assert long_a != long_b


@pytest.mark.integration
def test_the_embedded_server_is_durable_and_needs_its_password(pg_server: EmbeddedServer) -> None:
    with psycopg.connect(pg_server.dsn) as conn:
        settings = {
            name: conn.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
            for name in ("fsync", "synchronous_commit", "full_page_writes", "listen_addresses")
        }
    assert settings == {
        "fsync": "on",
        "synchronous_commit": "on",
        "full_page_writes": "on",
        "listen_addresses": "127.0.0.1",
    }
    no_password = f"postgresql://postgres@127.0.0.1:{pg_server.port}/postgres"
    with pytest.raises(BackendError, match="wrong credentials"):
        check_connection(no_password)


@pytest.mark.integration
def test_search_path_selects_the_run_schema(pg_dsn: str) -> None:
    create_schema(pg_dsn, "db_search_path_test")
    with psycopg.connect(with_search_path(pg_dsn, "db_search_path_test")) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS probe (x int)")
        row = conn.execute(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'probe'"
        ).fetchone()
    assert row == ("db_search_path_test",)


@pytest.mark.integration
def test_a_committed_row_survives_sigkill_and_restart_on_the_same_data_dir(
    tmp_path: Path,
) -> None:
    server = embedded_server(tmp_path / "store")
    spec = server.component()
    with LocalPlatform(tmp_path) as platform:
        platform.start(spec)
        wait_ready(server.dsn)
        with psycopg.connect(server.dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (x int)")
            conn.execute("INSERT INTO kept VALUES (42)")
        platform.signal("store", signal.SIGKILL)  # the postmaster, no shutdown at all
        platform.stop("store")  # and what is left of its process group
        platform.start(spec)
        wait_ready(server.dsn)
        with psycopg.connect(server.dsn) as conn:
            assert conn.execute("SELECT x FROM kept").fetchall() == [(42,)]
    log = (tmp_path / "logs" / "store.log").read_text()
    assert log.count("durabench: exec") == 2  # started twice, initdb ran once
    assert "database system was interrupted" in log or "not properly shut down" in log


@pytest.mark.integration
def test_the_pgserver_wheel_binaries_run_the_embedded_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a machine with no Postgres installed uses (the `postgres` extra brings it)."""
    spec = importlib.util.find_spec("pgserver")
    assert spec is not None and spec.origin is not None
    monkeypatch.setenv(PG_BIN_ENV, str(Path(spec.origin).parent / "pginstall" / "bin"))
    server = embedded_server(tmp_path / "store")
    with LocalPlatform(tmp_path) as platform:
        platform.start(server.component())
        wait_ready(server.dsn)
        with psycopg.connect(server.dsn) as conn:
            version = conn.execute("SHOW server_version").fetchone()
    assert version is not None
    assert "pginstall" in (tmp_path / "logs" / "store.log").read_text()


def test_on_a_pod_network_the_embedded_server_listens_everywhere_and_still_wants_a_password(
    tmp_path: Path,
) -> None:
    """`--admit-network` (what a Kubernetes pod runs): other pods dial its Service."""
    server = embedded_server(tmp_path / "store")
    spec = server.component()
    spec = replace(spec, argv=(*spec.argv, "--admit-network"))
    with LocalPlatform(tmp_path) as platform:
        platform.start(spec)
        wait_ready(server.dsn)
        with psycopg.connect(server.dsn) as conn:
            assert conn.execute("SHOW listen_addresses").fetchone() == ("*",)
            rules = conn.execute(
                "SELECT address, auth_method FROM pg_hba_file_rules WHERE type = 'host'"
            ).fetchall()
        assert ("all", "scram-sha-256") in rules
        assert all(method == "scram-sha-256" for _, method in rules)
        wrong = server.dsn.replace(server.password, "not-the-password")
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(wrong).close()
        platform.stop("store")
        platform.start(spec)  # a restarted pod: the rule is not added twice
        wait_ready(server.dsn)
    hba = next((tmp_path / "store").rglob("pg_hba.conf")).read_text()
    assert hba.count("durabench --admit-network") == 1
