"""No secret reaches a file, a log or a console line: the masking rules, and a real run
against a real Postgres whose password is planted and then searched for in every
artifact durabench writes (issue 17, item 1)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.masking import MASK, mask_argv, mask_command, mask_dsn, mask_text
from harness.postgres import EmbeddedServer
from tests.conftest import ScenarioFactory

REPO = Path(__file__).resolve().parent.parent
SECRET = "pl4ntedS3cret"


@pytest.mark.parametrize(
    ("dsn", "masked"),
    [
        ("postgresql://u:pl4ntedS3cret@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("postgresql://u:pl4nted@S3cret@h/db", "postgresql://u:***@h/db"),
        ("postgres://u:pl4nted/S3cret@h/db", "postgres://u:***@h/db"),
        ("postgresql://h/db?password=pl4ntedS3cret", "postgresql://h/db?password=***"),
        ("host=h password=pl4ntedS3cret dbname=x", "host=h password=*** dbname=x"),
        ("host=h password='pl4nted S3cret' dbname=x", "host=h password=*** dbname=x"),
        ("postgresql://u:pl4ntedS3cret", "postgresql://***"),
        ("pl4ntedS3cret", MASK),
    ],
)
def test_a_dsn_is_masked_in_every_form_including_malformed(dsn: str, masked: str) -> None:
    assert mask_dsn(dsn) == masked


@pytest.mark.parametrize(
    "dsn", ["postgresql://h:5432/db", "postgresql://u@h/db", "host=h dbname=x", ""]
)
def test_a_dsn_without_a_secret_is_kept_as_it_is(dsn: str) -> None:
    assert mask_dsn(dsn) == dsn


def test_a_command_line_is_recorded_with_its_secrets_masked() -> None:
    argv = [
        "durabench",
        "run",
        "smoke",
        "--pg-dsn",
        f"host=h password={SECRET}",
        f"--pg-dsn=postgresql://u:{SECRET}@h/db",
        "--pg-dsn",
        SECRET,
        "--out",
        "results",
    ]
    masked = mask_argv(argv)
    assert SECRET not in " ".join(masked)
    assert masked[:3] == ["durabench", "run", "smoke"]
    assert masked[-2:] == ["--out", "results"]
    assert SECRET not in mask_command(argv)


def test_free_text_keeps_its_meaning_without_the_secret() -> None:
    text = f"connecting to postgresql://u:{SECRET}@127.0.0.1/db failed (password={SECRET} )"
    assert mask_text(text) == (
        "connecting to postgresql://u:***@127.0.0.1/db failed (password=*** )"
    )


# -- a real run, a real Postgres, every artifact searched ----------------------------------


@pytest.fixture
def postgres(pg_server: EmbeddedServer) -> EmbeddedServer:
    return pg_server


def _durabench(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "harness.cli", *args]
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def _files_holding(secret: str, root: Path) -> list[str]:
    needle = secret.encode()
    return [
        str(path)
        for path in root.rglob("*")
        if path.is_file() and not path.is_symlink() and needle in path.read_bytes()
    ]


def _key_value(server: EmbeddedServer) -> str:
    return (
        f"host=127.0.0.1 port={server.port} user=postgres dbname=postgres "
        f"password={server.password}"
    )


@pytest.mark.integration
@pytest.mark.parametrize("form", ["url", "key=value"])
def test_no_artifact_of_a_run_or_its_report_holds_the_pg_dsn_password(
    postgres: EmbeddedServer, write_scenario: ScenarioFactory, tmp_path: Path, form: str
) -> None:
    dsn = postgres.dsn if form == "url" else _key_value(postgres)
    out = tmp_path / "results"
    scenario = write_scenario(runs=2, steps=2)
    ran = _durabench("run", str(scenario), "-b", "pgstore", "--pg-dsn", dsn, "--out", str(out))
    assert ran.returncode == 0, ran.stderr
    (results,) = [p for p in out.iterdir() if p.is_dir() and not p.is_symlink()]
    reported = _durabench("report", str(results))
    assert reported.returncode == 0, reported.stderr
    assert (results / "report" / "report.html").exists()

    assert postgres.password not in ran.stdout + ran.stderr + reported.stdout + reported.stderr
    assert _files_holding(postgres.password, tmp_path) == []
    assert "password=***" in (results / "manifest.json").read_text() or form == "url"


@pytest.mark.integration
@pytest.mark.parametrize(
    "dsn",
    [
        f"postgresql://durabench:{SECRET}@127.0.0.1:1/postgres",  # nothing listens there
        f"postgresql://durabench:{SECRET}@127.0.0.1:notaport/postgres",  # malformed
        f"host=127.0.0.1 port=1 password={SECRET}",
    ],
)
def test_a_refused_pg_dsn_is_reported_without_its_password(
    write_scenario: ScenarioFactory, tmp_path: Path, dsn: str
) -> None:
    out = tmp_path / "results"
    scenario = write_scenario(runs=1, steps=1)
    ran = _durabench("run", str(scenario), "-b", "pgstore", "--pg-dsn", dsn, "--out", str(out))
    assert ran.returncode != 0
    assert "error:" in ran.stderr
    assert "Traceback" not in ran.stderr
    assert SECRET not in ran.stdout + ran.stderr
    assert _files_holding(SECRET, tmp_path) == []
