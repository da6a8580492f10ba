"""Bad input gets one clear error naming what is wrong (and what exists)."""

from __future__ import annotations

from pathlib import Path

import pytest

from backends.base import BackendEnv, ExternalServices, load_backend
from backends.temporal import TemporalBackend
from harness.errors import BackendError, ComponentError
from harness.platform.base import free_port
from harness.platform.local import LocalPlatform
from harness.results import ResultsDir
from harness.runner import BenchmarkRun
from harness.scenario import load_scenario
from tests.backends.temporal.support import DevServer
from tests.conftest import ScenarioFactory

pytestmark = pytest.mark.integration


def _env(path: Path, tmp_path: Path, external: ExternalServices) -> BackendEnv:
    return BackendEnv(
        scenario=load_scenario(path),
        scenario_path=path,
        bench_id="errors",
        llm_url="http://127.0.0.1:9/v1",
        tools_url="http://127.0.0.1:9",
        workdir=tmp_path,
        measurements_dir=tmp_path / "measurements",
        external=external,
    )


async def test_an_unreachable_address_fails_the_run_before_any_worker_starts(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    address = f"127.0.0.1:{free_port()}"
    bench = BenchmarkRun(
        write_scenario(),
        ["temporal"],
        tmp_path / "r",
        external=ExternalServices(temporal_address=address),
    )
    with pytest.raises(BackendError, match=f"cannot reach {address}.*Connection refused"):
        await bench.execute()
    assert bench.results is not None
    results = ResultsDir.open(bench.results.path)
    assert results.read_json("manifest.json")["status"] == "failed"
    assert not list((bench.results.backend_dir("temporal") / "logs").glob("temporal-worker-*"))


def test_an_unknown_namespace_names_the_existing_ones(
    write_scenario: ScenarioFactory, tmp_path: Path, temporal_server: DevServer
) -> None:
    external = temporal_server.external(temporal_namespace="no-such-ns")
    with pytest.raises(
        BackendError, match=r"namespace 'no-such-ns' does not exist.*existing namespaces: default"
    ):
        TemporalBackend().components(_env(write_scenario(), tmp_path, external))


def test_tls_against_a_plaintext_server_is_a_tls_error(
    write_scenario: ScenarioFactory, tmp_path: Path, temporal_server: DevServer
) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not a certificate\n")
    external = temporal_server.external(temporal_tls_ca=str(ca))
    with pytest.raises(BackendError, match=r"TLS connection to .* failed"):
        TemporalBackend().components(_env(write_scenario(), tmp_path, external))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"temporal_tls_cert": "client.pem"}, "mTLS needs both"),
        ({"temporal_tls_ca": "/no/such/ca.pem"}, "cannot read the TLS CA file /no/such/ca.pem"),
        ({"temporal_api_key_env": "DURABENCH_NO_SUCH_KEY"}, "'DURABENCH_NO_SUCH_KEY'.*not set"),
    ],
)
def test_bad_connection_options_are_named(
    write_scenario: ScenarioFactory,
    tmp_path: Path,
    temporal_server: DevServer,
    overrides: dict[str, str],
    message: str,
) -> None:
    external = temporal_server.external(**overrides)
    with pytest.raises(BackendError, match=message):
        TemporalBackend().components(_env(write_scenario(), tmp_path, external))


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("temporal?version=v9", "unknown version 'v9'; versions: v1, v2-patched, v2-unpatched"),
        ("temporal?heartbeat_s=-1", "heartbeat_s='-1' must be a positive number"),
        ("temporal?nosuch=1", "bad options"),
    ],
)
def test_bad_backend_options_are_named(name: str, message: str) -> None:
    with pytest.raises(BackendError, match=message):
        load_backend(name)


def test_a_worker_that_crashes_on_start_reports_its_log_tail(
    write_scenario: ScenarioFactory, tmp_path: Path, temporal_server: DevServer
) -> None:
    path = write_scenario()
    env = _env(path, tmp_path, temporal_server.external())
    [worker] = TemporalBackend().components(env)
    path.unlink()  # the worker process cannot load its scenario
    with LocalPlatform(tmp_path) as platform, pytest.raises(ComponentError) as error:
        platform.start(worker)
    assert "temporal-worker-0 exited with code 2" in str(error.value)
    assert "no such scenario file" in str(error.value)
