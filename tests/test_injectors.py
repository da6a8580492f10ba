"""The injector registry: every fault kind has an injector, each says up front what it
cannot do on a backend and platform, and the platforms declare their capabilities."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest

from backends.base import load_backend
from harness.errors import DurabenchError
from harness.faults import DeployFault, Fault, NetworkFault, PauseFault
from harness.injectors import injector_for, load_injectors, refuse_faults
from harness.platform.capabilities import (
    CollectFiles,
    DryRun,
    Evict,
    Kill,
    LinkFaults,
    Outage,
    Pause,
    Restart,
    RunImages,
    SharedFilesystem,
)
from harness.platform.local import LocalPlatform
from harness.runner import BenchmarkRun
from tests.conftest import ScenarioFactory


def fault_kinds() -> set[str]:
    union = typing.get_args(typing.get_args(Fault)[0])
    return {model.model_fields["kind"].annotation.__args__[0] for model in union}


def test_every_fault_kind_has_exactly_one_injector() -> None:
    assert set(load_injectors()) == fault_kinds()
    assert injector_for("pause").kind == "pause"
    with pytest.raises(KeyError, match="no injector for fault kind 'meteor'"):
        injector_for("meteor")


def test_the_local_platform_has_the_process_faults_and_shares_this_machines_files(
    tmp_path: Path,
) -> None:
    with LocalPlatform(tmp_path) as platform:
        for capability in (Kill, Evict, Pause, Restart, Outage, SharedFilesystem):
            assert isinstance(platform, capability), capability.__name__
        for capability in (LinkFaults, CollectFiles, RunImages, DryRun):
            assert not isinstance(platform, capability), capability.__name__


def test_what_the_platform_or_backend_cannot_do_is_refused_with_the_reason(
    tmp_path: Path,
) -> None:
    faults: list[Fault] = [
        DeployFault(kind="deploy", at_s=1, image="reg/durabench:v2"),
        DeployFault(kind="deploy", at_s=1, version="v2"),
        PauseFault(kind="pause", at_s=1, duration_s=1),
        NetworkFault(kind="network", target="worker->llm", mode="reset", at_s=1, duration_s=1),
    ]
    with LocalPlatform(tmp_path) as platform:
        refused = refuse_faults(faults, platform, load_backend("baseline"))
    assert refused == {
        0: "the local platform runs no images: cannot deploy 'reg/durabench:v2'",
        1: "this backend has no code versions to deploy",
    }


def test_an_unknown_deploy_version_stops_the_run_before_anything_starts(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    pytest.importorskip("temporalio")
    path = write_scenario(faults=[{"kind": "deploy", "at_s": 1, "version": "v9"}])
    with pytest.raises(DurabenchError) as error:
        BenchmarkRun(path, ["temporal"], tmp_path / "results")
    message = str(error.value)
    assert "faults.0 (deploy) version: unknown version 'v9'" in message
    assert "v2-patched" in message and str(path) in message
    assert not (tmp_path / "results").exists(), "nothing started"


def test_a_backend_with_one_code_version_has_no_deploy_to_another(tmp_path: Path) -> None:
    """A framework backend on Temporal runs one workflow version: a deploy to another is
    refused (not applicable, as in the chaos suite), not an error that stops a suite."""
    pytest.importorskip("pydantic_ai")
    faults: list[Fault] = [DeployFault(kind="deploy", at_s=1, version="v2-patched")]
    with LocalPlatform(tmp_path) as platform:
        refused = refuse_faults(faults, platform, load_backend("pydantic-ai:temporal"))
    assert refused == {0: "this backend has one code version (v1): none to deploy"}
