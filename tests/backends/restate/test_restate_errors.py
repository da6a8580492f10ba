"""Bad input gets one clear error naming what is wrong and how to fix it: a missing
server binary (naming the install command), an unreachable existing server, an
unknown option, half of an existing server's address."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from backends.base import BackendEnv, ExternalServices, available_backends, load_backend
from backends.restate import server
from harness.errors import BackendError
from harness.platform.base import free_port
from harness.results import ResultsDir
from harness.runner import BenchmarkRun
from harness.scenario import load_scenario
from tests.conftest import ScenarioFactory
from tests.test_cli import durabench


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


@pytest.fixture
def no_binary(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Nothing on PATH, no node_modules in the project or the current directory."""
    monkeypatch.setattr(server, "PROJECT_ROOT", tmp_path / "checkout")
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.delenv(server.ENV_BINARY, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.mark.usefixtures("no_binary")
def test_a_missing_server_binary_names_the_install_command(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    backend = load_backend("restate")
    with pytest.raises(BackendError, match=r"no restate-server binary.*npm ci --ignore-scripts"):
        backend.components(_env(write_scenario(), tmp_path, ExternalServices()))
    assert available_backends()["restate"] == ["restate-server (npm ci)"]


def test_the_npm_launcher_is_resolved_to_the_platform_binary() -> None:
    found = server.find_restate_server()
    assert found is not None
    assert found.suffix != ".js" and os.access(found, os.X_OK)
    assert server.restate_version(found).startswith("restate-server 1.")


@pytest.mark.integration
async def test_an_unreachable_server_fails_the_run_before_any_worker_starts(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    ingress, admin = f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"
    bench = BenchmarkRun(
        write_scenario(),
        ["restate"],
        tmp_path / "r",
        external=ExternalServices(restate_ingress=ingress, restate_admin=admin),
    )
    with pytest.raises(BackendError, match=f"cannot reach {admin}/version.*refused"):
        await bench.execute()
    assert bench.results is not None
    results = ResultsDir.open(bench.results.path)
    assert results.read_json("manifest.json")["status"] == "failed"
    assert not list((bench.results.backend_dir("restate") / "logs").glob("restate-worker-*"))


def test_half_an_existing_server_s_address_is_refused(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    external = ExternalServices(restate_ingress="http://127.0.0.1:8080")
    with pytest.raises(BackendError, match="both --restate-ingress and --restate-admin"):
        load_backend("restate").components(_env(write_scenario(), tmp_path, external))


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("restate?bogus=1", r"unknown option 'bogus'; options: abort_timeout_s, "),
        ("restate?workers=0", r"option workers='0' must be at least 1"),
        ("restate?retry_initial_s=-1", r"retry_initial_s='-1' must be a positive number"),
        ("restate:fast", r"restate has no variants"),
    ],
)
def test_a_bad_option_is_named_with_the_known_ones(name: str, message: str) -> None:
    with pytest.raises(BackendError, match=message):
        load_backend(name)


@pytest.mark.integration
def test_the_cli_says_what_is_unreachable_without_a_traceback(tmp_path: Path) -> None:
    admin = f"http://127.0.0.1:{free_port()}"
    done = durabench(
        "run",
        "smoke",
        "--backend",
        "restate",
        "--restate-ingress",
        f"http://127.0.0.1:{free_port()}",
        "--restate-admin",
        admin,
        "--out",
        str(tmp_path),
        timeout=120,
    )
    assert done.returncode == 1
    assert f"cannot reach {admin}/version" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
