"""A "real" model for gateway tests, without any download: the simulator run as a
third-party endpoint, on a seed of its own and answering replays differently, so its
answers are no function of the judged scenario's seed (as a real model's are not);
and, when installed, the LiteLLM proxy in front of it (a real OpenAI-compatible
gateway from PyPI, with a master key that must travel upstream)."""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from harness.platform.base import ComponentSpec, free_port
from harness.platform.local import LocalPlatform
from harness.runner import service_specs
from harness.scenario import load_scenario

__all__ = [
    "LITELLM_ENV",
    "LITELLM_MODEL",
    "litellm_binary",
    "start_litellm",
    "start_text_model",
    "start_upstream_model",
    "upstream_data",
]

LITELLM_ENV = "DURABENCH_LITELLM"  # path of the `litellm` proxy executable
LITELLM_MODEL = "durabench-real"
SEED_OFFSET = 1000


def upstream_data(judged: dict[str, Any]) -> dict[str, Any]:
    """The model's own scenario: the judged one on another seed, divergent on replays."""
    data = {k: v for k, v in judged.items() if k != "faults"}
    llm = {k: v for k, v in dict(data.get("llm") or {}).items() if k != "base_url"}
    return {
        **data,
        "name": f"{judged.get('name', 'x')}-model",
        "seed": int(judged["seed"]) + SEED_OFFSET,
        "llm": {**llm, "divergent_replays": True},
        "faults": [],
    }


def start_upstream_model(platform: LocalPlatform, judged: dict[str, Any], workdir: Path) -> str:
    """The simulator as a third-party endpoint; its OpenAI base URL (…/v1)."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "model.yaml"
    path.write_text(yaml.safe_dump(upstream_data(judged), sort_keys=False))
    [spec] = [s for s in service_specs(load_scenario(path), path, workdir) if s.role == "llm"]
    handle = platform.start(replace(spec, name="model", role="model"))
    return f"http://127.0.0.1:{handle.spec.port}/v1"


def litellm_binary() -> str | None:
    """The LiteLLM proxy executable: $DURABENCH_LITELLM, next to this interpreter, in a
    `.venv-litellm` of the checkout (its own environment: its pins would downgrade this
    one's rich and websockets), or on PATH."""
    root = Path(__file__).resolve().parents[2]
    for candidate in (
        os.environ.get(LITELLM_ENV),
        str(Path(sys.executable).with_name("litellm")),
        str(root / ".venv-litellm" / "bin" / "litellm"),
        shutil.which("litellm"),
    ):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def start_litellm(
    platform: LocalPlatform, binary: str, model_url: str, master_key: str, workdir: Path
) -> str:
    """The LiteLLM proxy in front of `model_url`, clients authenticated by `master_key`
    (given in its environment only); its OpenAI base URL (…/v1)."""
    port = free_port()
    config = {
        "model_list": [
            {
                "model_name": LITELLM_MODEL,
                "litellm_params": {
                    "model": "openai/durabench-sim-1",
                    "api_base": model_url,
                    "api_key": "sk-model-needs-none",
                },
            }
        ],
        "general_settings": {"master_key": "os.environ/LITELLM_MASTER_KEY"},
        "litellm_settings": {"telemetry": False, "drop_params": True},
    }
    path = workdir / "litellm.yaml"
    path.write_text(yaml.safe_dump(config))
    platform.start(
        ComponentSpec(
            name="litellm",
            role="model-gateway",
            argv=(binary, "--config", str(path), "--host", "127.0.0.1", "--port", str(port)),
            port=port,
            health_url=f"http://127.0.0.1:{port}/health/liveliness",
            env={"LITELLM_MASTER_KEY": master_key, "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
            ready_timeout_s=180.0,
        )
    )
    return f"http://127.0.0.1:{port}/v1"


def start_text_model(platform: LocalPlatform, upstream: str, text_runs: list[str]) -> str:
    """tests/services/text_model.py in front of `upstream`: text instead of a tool call
    for `text_runs`; its OpenAI base URL (…/v1)."""
    port = free_port()
    platform.start(
        ComponentSpec(
            name="text-model",
            role="model",
            argv=(
                sys.executable,
                "-m",
                "tests.services.text_model",
                "--port",
                str(port),
                "--upstream",
                upstream,
                "--text-runs",
                ",".join(text_runs),
            ),
            port=port,
            health_url=f"http://127.0.0.1:{port}/health",
            env={"PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        )
    )
    return f"http://127.0.0.1:{port}/v1"
