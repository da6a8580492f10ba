"""Choosing a LangGraph variant: names, defaults, and one clear error for bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from langgraph.pregel import Pregel

from backends.base import ExternalServices, load_backend
from backends.langgraph.savers import LANGGRAPH_DEFAULT_DURABILITY
from harness.errors import BackendError
from harness.platform.local import free_port
from harness.runner import BenchmarkRun
from tests.conftest import ScenarioFactory


def test_an_unknown_saver_names_the_savers_that_exist() -> None:
    with pytest.raises(
        BackendError, match=r"unknown saver 'redis'; savers: memory, sqlite, postgres"
    ):
        load_backend("langgraph:redis")


def test_an_unknown_durability_mode_names_the_modes_that_exist() -> None:
    with pytest.raises(BackendError, match=r"'eventually'; durability modes: exit, async, sync"):
        load_backend("langgraph:sqlite?durability=eventually")


def test_an_unknown_option_is_refused() -> None:
    with pytest.raises(BackendError, match="bad options"):
        load_backend("langgraph:sqlite?fsync=off")


def test_the_default_durability_is_langgraphs_own() -> None:
    assert ainvoke_default() == LANGGRAPH_DEFAULT_DURABILITY
    backend = load_backend("langgraph:sqlite")
    described = backend.describe()
    assert described["durability"] == LANGGRAPH_DEFAULT_DURABILITY
    assert described["durability_source"] == "langgraph default"
    assert load_backend("langgraph:sqlite?durability=sync").describe()["durability"] == "sync"


def ainvoke_default() -> str:
    """The default the installed langgraph documents for `ainvoke(durability=...)`."""
    doc = Pregel.ainvoke.__doc__ or ""
    marker = "The durability mode for the graph execution, defaults to `"
    assert marker in doc, "langgraph no longer documents its default durability this way"
    return doc.split(marker, 1)[1].split("`", 1)[0].strip('"')


def test_a_bare_langgraph_name_means_the_sqlite_saver() -> None:
    backend = load_backend("langgraph")
    assert backend.describe()["saver"] == "AsyncSqliteSaver"
    assert backend.name == "langgraph"


def test_the_backend_name_keeps_the_options_it_was_given() -> None:
    # measurement rows carry this name; the runner summarizes them under the given name
    assert load_backend("langgraph:postgres?durability=exit").name == (
        "langgraph:postgres?durability=exit"
    )
    assert load_backend("langgraph:memory").name == "langgraph:memory"


@pytest.mark.integration
async def test_a_sqlite_file_on_a_read_only_path_is_one_clear_error(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    read_only = "/proc/durabench-langgraph.sqlite"  # procfs: nobody, not even root, creates files
    bench = BenchmarkRun(write_scenario(), [f"langgraph:sqlite?path={read_only}"], tmp_path)
    with pytest.raises(BackendError, match=f"cannot write the SQLite file {read_only}"):
        await bench.execute()
    assert bench.results is not None
    assert bench.results.read_json("manifest.json")["status"] == "failed"


@pytest.mark.integration
async def test_an_unreachable_postgres_is_one_clear_error(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    dsn = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    bench = BenchmarkRun(
        write_scenario(), ["langgraph:postgres"], tmp_path, external=ExternalServices(pg_dsn=dsn)
    )
    with pytest.raises(BackendError, match="connection refused"):
        await bench.execute()
