"""Bring your own model, end to end on real processes: `llm.base_url` names an
OpenAI-compatible endpoint whose answers are no function of the judged seed and differ
on replays (as a real model's at temperature > 0); durabench puts its recording gateway
in front of it and judges every run against the first answers it recorded. Through the
LiteLLM proxy (a real third-party gateway from PyPI) too, when it is installed."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from backends.base import ExternalServices
from harness.platform.local import LocalPlatform
from harness.postgres import EmbeddedServer
from harness.recheck import recheck
from harness.results import ResultsDir
from harness.runner import BenchmarkRun
from harness.scenario import load_scenario
from harness.workload import decide
from tests.conftest import TINY
from tests.services.gateway_support import (
    LITELLM_MODEL,
    litellm_binary,
    start_litellm,
    start_text_model,
    start_upstream_model,
)

pytestmark = pytest.mark.integration

KEY_ENV = "DURABENCH_TEST_MODEL_KEY"
JUDGED: dict[str, Any] = {
    **TINY,
    "runs": 4,
    "steps": 4,
    "load": {"concurrency": 4},
    "workers": 2,
    "verify": {"failure_probability": 0.2, "on_failure": "replan", "max_attempts": 3},
    "tool_latency": {"distribution": "constant", "ms": 30},
    "deadline_s": 60,
}
KILL_AND_RESTART = [
    {"kind": "kill", "target": "worker", "after_steps": 4, "restart_delay_s": 0.2},
    {"kind": "restart", "target": "tools", "after_steps": 8},
]
# the worker killed right after run-000001's step-1 effect, before anything is committed
CRASH_AND_RESTART = [
    {"kind": "crash_point", "point": "after_act", "run": "run-000001", "step": 1},
    {"kind": "restart", "target": "tools", "after_steps": 8},
]


@pytest.fixture
def model(tmp_path: Path) -> Iterator[str]:
    """The model's endpoint (…/v1): the simulator on its own seed, divergent on replays."""
    with LocalPlatform(tmp_path / "model-platform") as platform:
        yield start_upstream_model(platform, JUDGED, tmp_path / "model")


def write_judged(tmp_path: Path, base_url: str, **overrides: Any) -> Path:
    llm = {"base_url": base_url, "api_key_env": KEY_ENV, **overrides.pop("llm", {})}
    path = tmp_path / "judged.yaml"
    path.write_text(yaml.safe_dump({**JUDGED, "llm": llm, **overrides}, sort_keys=False))
    return path


def assert_no_key_anywhere(root: Path, key: str) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            assert key.encode() not in path.read_bytes(), path


async def test_a_real_model_run_is_judged_against_its_first_recorded_answers(
    model: str, tmp_path: Path, pg_server: EmbeddedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = f"sk-test-{uuid.uuid4().hex}"
    monkeypatch.setenv(KEY_ENV, key)
    path = write_judged(tmp_path, model)
    external = ExternalServices(pg_dsn=pg_server.dsn)
    results = await BenchmarkRun(path, ["pgstore"], tmp_path / "r", external=external).execute()

    summary = results.read_json("summary.json")["pgstore"]
    assert summary["integrity"] == 1.0, summary["result_reason"]
    assert summary["invalid_decisions"]["runs"] == 0
    # the model's answers are not the seed's: the oracle read them from the gateway's log
    scenario = load_scenario(path)
    persisted = results.read_jsonl("persisted.jsonl")
    first = persisted[0]["state"]["steps"][0]
    seeded = decide(scenario, persisted[0]["run_id"], 0, first["attempts"])
    assert first["arguments"] != seeded.arguments
    calls = pd.read_parquet(results.path / "llm_calls.parquet")
    assert set(calls["source"]) == {"gateway"}
    assert recheck(ResultsDir.open(results.path)).differences == []
    assert_no_key_anywhere(tmp_path, key)


async def test_a_kill_and_a_tool_restart_under_a_real_model_give_the_expected_verdicts(
    model: str, tmp_path: Path, pg_server: EmbeddedServer
) -> None:
    """pgstore committed the decision before acting and reuses it: integrity 1.0.
    pgstore-naive re-runs the killed step from its reason call: the model answers
    differently, and the replayed decision shows against the first recorded answer."""
    path = write_judged(tmp_path, model, faults=CRASH_AND_RESTART, tools={"transport": "mcp"})
    external = ExternalServices(pg_dsn=pg_server.dsn)
    names = ["pgstore", "pgstore-naive"]
    results = await BenchmarkRun(path, names, tmp_path / "r", external=external).execute()

    summary = results.read_json("summary.json")
    assert summary["pgstore"]["integrity"] == 1.0, summary["pgstore"]["result_reason"]
    assert summary["pgstore"]["faults"]["restart"]["injected"] == 1
    runs = pd.read_parquet(results.path / "runs.parquet").set_index(["backend", "run_id"])
    assert runs.loc[("pgstore", "run-000001"), "exposed"]
    naive = runs.loc[("pgstore-naive", "run-000001")]
    assert naive["replayed_answers_differ"] > 0, "the killed step was asked again"
    assert not naive["state_match"]  # it kept the replayed decision, not the first
    assert not naive["effects_exactly_once"]


async def test_first_answers_that_are_no_tool_call_are_reported_as_invalid_not_anomalies(
    tmp_path: Path,
) -> None:
    """A model that answers two runs with text instead of a tool call: those runs are
    listed as invalid decisions, the others judged as usual."""
    with LocalPlatform(tmp_path / "model-platform") as platform:
        upstream = start_upstream_model(platform, JUDGED, tmp_path / "model")
        url = start_text_model(platform, upstream, ["run-000001", "run-000002"])
        path = write_judged(tmp_path, url, deadline_s=10)
        results = await BenchmarkRun(path, ["baseline"], tmp_path / "r").execute()

    summary = results.read_json("summary.json")["baseline"]
    invalid = summary["invalid_decisions"]
    assert invalid["runs"] == 2
    assert "no tool call" in invalid["first"]
    assert summary["runs"] == JUDGED["runs"] - 2
    assert summary["integrity"] == 1.0, summary["result_reason"]


# -- through a real third-party gateway ------------------------------------------------

LITELLM = litellm_binary()
# under CI=true (.ci/run installs it) a missing proxy fails the test instead of skipping
needs_litellm = pytest.mark.skipif(
    LITELLM is None and os.environ.get("CI") != "true",
    reason="the LiteLLM proxy is not installed (pip install 'litellm[proxy]' into "
    ".venv-litellm, or set DURABENCH_LITELLM to its `litellm` executable)",
)


@needs_litellm
async def test_through_the_litellm_proxy_fault_free_and_under_a_kill_and_a_tool_restart(
    model: str, tmp_path: Path, pg_server: EmbeddedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LiteLLM refuses a client without its master key, so the runs pass only if the
    gateway sends the key from the environment upstream; the key is written nowhere."""
    assert LITELLM is not None
    key = f"sk-litellm-{uuid.uuid4().hex}"
    monkeypatch.setenv(KEY_ENV, key)
    with LocalPlatform(tmp_path / "litellm-platform") as platform:
        url = start_litellm(platform, LITELLM, model, key, tmp_path)
        external = ExternalServices(pg_dsn=pg_server.dsn)
        clean = write_judged(tmp_path, url, llm={"model": LITELLM_MODEL})
        quiet = await BenchmarkRun(clean, ["pgstore"], tmp_path / "r1", external=external).execute()
        faulty = write_judged(tmp_path, url, llm={"model": LITELLM_MODEL}, faults=KILL_AND_RESTART)
        loud = await BenchmarkRun(faulty, ["pgstore"], tmp_path / "r2", external=external).execute()

    for results in (quiet, loud):
        summary = results.read_json("summary.json")["pgstore"]
        assert summary["integrity"] == 1.0, summary["result_reason"]
        calls = pd.read_parquet(results.path / "llm_calls.parquet")
        assert (calls["status"] == 200).all()
    assert loud.read_json("summary.json")["pgstore"]["faults"]["kill"]["injected"] == 1
    assert_no_key_anywhere(tmp_path, key)
