"""The worker command line: what a backend writes is what its worker reads back."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from backends.pgstore.worker import PgStoreOptions
from backends.pgstore_naive.worker import NaiveOptions
from backends.workercli import NoOptions, WorkerArgs


def args_with(options: Any, port: int | None = None) -> WorkerArgs[Any]:
    return WorkerArgs(
        scenario=Path("/tmp/s.yaml"),
        llm_url="http://127.0.0.1:1/v1",
        tools_url="http://127.0.0.1:2",
        measurements=Path("/tmp/m"),
        worker_id="worker-3",
        backend_name="pgstore_lease_s_1",
        options=options,
        port=port,
    )


@pytest.mark.parametrize(
    "options",
    [
        NoOptions(),
        PgStoreOptions(schema="db_x", slots=8, lease_s=0.25, snapshot_every=0),
        NaiveOptions(schema="db_y", stale_s=1e-3),
    ],
    ids=lambda o: type(o).__name__,
)
def test_parse_reads_back_what_to_argv_wrote(options: Any) -> None:
    written = args_with(options, port=4242)
    assert WorkerArgs.parse(type(options), written.to_argv()) == written


def test_temporal_options_round_trip_and_keep_secrets_out() -> None:
    pytest.importorskip("temporalio")
    from backends.temporal.worker import TemporalWorkerOptions

    options = TemporalWorkerOptions("h:7233", "q", api_key_env="MY_KEY", sticky_timeout_s=2.0)
    written = args_with(options, port=1)
    argv = written.to_argv()
    assert WorkerArgs.parse(TemporalWorkerOptions, argv) == written
    assert "MY_KEY" in argv and "--tls-cert" not in argv  # a variable's name; None is left out


def test_the_default_host_is_left_for_a_platform_to_set() -> None:
    argv = args_with(NoOptions(), port=1).to_argv()
    assert "--host" not in argv
    assert WorkerArgs.parse(NoOptions, [*argv, "--host", "0.0.0.0"]).host == "0.0.0.0"


def test_a_missing_required_option_exits_with_usage(capsys: pytest.CaptureFixture[str]) -> None:
    argv = list(args_with(NaiveOptions(schema="s")).to_argv())
    cut = argv.index("--schema")
    with pytest.raises(SystemExit) as exit_info:
        WorkerArgs.parse(NaiveOptions, argv[:cut] + argv[cut + 2 :])
    assert exit_info.value.code == 2
    assert "--schema" in capsys.readouterr().err


def test_an_option_of_another_type_is_refused() -> None:
    @dataclass(frozen=True)
    class Odd:
        tags: list[str]

    with pytest.raises(TypeError, match=r"Odd\.tags"):
        args_with(Odd(["a"])).to_argv()
