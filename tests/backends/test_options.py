"""Backend options are typed and validated like scenario fields, for every backend,
before anything starts (issue 17, item 11): one clear error naming the backend, the
option, the value and the reason; unknown options named with the known ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from backends.base import BUILTIN_BACKENDS, available_backends, load_backend
from harness.errors import BackendError
from tests.test_cli import durabench

INSTALLED = [name for name, missing in available_backends().items() if not missing]
KNOWN = {
    "baseline": "workers",
    "temporal": "heartbeat_s, sticky_s, task_timeout_s, version, workers",
    "pgstore": "lease_s, slots, snapshot_every, workers",
    "pgstore-naive": "slots, stale_s, workers",
    "langgraph": "durability, path, workers",
    "dbos": "poll_s, slots, workers",
    "restate": "abort_timeout_s, inactivity_timeout_s, partitions, retry_initial_s, retry_max_s, "
    "workers",
    "pydantic-ai": "heartbeat_s, sticky_s, task_timeout_s, workers",
    "pydantic-ai:dbos": "poll_s, slots, workers",
    "openai-agents": "heartbeat_s, sticky_s, task_timeout_s, workers",
    "deepagents": "durability, path, workers",
    "cloudflare": "account_id_env, llm_url, poll_ms, recover, token_env, tools_url, workers",
}


@pytest.mark.parametrize("family", INSTALLED)
@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("abc", "must be a whole number"),
        ("-1", "must be at least 1"),
        ("0", "must be at least 1"),
        ("1.5", "must be a whole number"),
        ("", "must be a whole number"),
        ("100000", "must be at most 256"),
    ],
)
def test_a_bad_worker_count_names_backend_option_and_reason(
    family: str, value: str, reason: str
) -> None:
    name = f"{family}?workers={value}"
    with pytest.raises(BackendError) as caught:
        load_backend(name)
    assert str(caught.value) == f"backend {name!r}: option workers={value!r} {reason}"


@pytest.mark.parametrize("family", INSTALLED)
def test_an_unknown_option_is_named_with_the_known_ones(family: str) -> None:
    with pytest.raises(BackendError) as caught:
        load_backend(f"{family}?fsync=off")
    assert f"unknown option 'fsync'; options: {KNOWN[family]}" in str(caught.value)


def test_every_builtin_backend_declares_its_options() -> None:
    assert set(KNOWN) == set(BUILTIN_BACKENDS)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("pgstore?lease_s=inf", "option lease_s='inf' must be a finite number"),
        ("pgstore?lease_s=0", "option lease_s='0' must be a positive number"),
        ("pgstore?snapshot_every=-1", "option snapshot_every='-1' must be at least 0"),
        ("pgstore-naive?stale_s=nan", "option stale_s='nan' must be a finite number"),
        ("pgstore-naive?slots=x", "option slots='x' must be a whole number"),
        ("temporal?heartbeat_s=-1", "option heartbeat_s='-1' must be a positive number"),
        ("temporal?sticky_s=1e9", "option sticky_s='1e9' must be at most 86400"),
        ("temporal?version=v9", "unknown version 'v9'"),
        ("langgraph?durability=", "option durability='' must not be empty"),
    ],
)
def test_typed_options_are_checked(name: str, message: str) -> None:
    family = name.partition("?")[0]
    if family not in INSTALLED:
        pytest.skip(f"{family} is not installed")
    with pytest.raises(BackendError, match=message):
        load_backend(name)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(BackendError) as caught:
        load_backend("pgstore?workers=x&lease_s=0")
    assert "option workers='x' must be a whole number" in str(caught.value)
    assert "option lease_s='0' must be a positive number" in str(caught.value)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("baseline?workers=1&workers=2", "option 'workers' is given twice"),
        ("baseline:fast", "baseline has no variants"),
        ("baseline?workers", "option 'workers' must look like key=value"),
        ("langgraph?variant=sqlite", "give the variant as langgraph:VARIANT"),
        ("x" * 2000, "at most 1000"),
        (".relative:Thing", "cannot import '.relative'"),
        ("os:sep", "os:sep is not a class"),
    ],
)
def test_malformed_names_are_one_error(name: str, message: str) -> None:
    with pytest.raises(BackendError, match=message):
        load_backend(name)


def test_valid_options_reach_the_backend_typed() -> None:
    backend = load_backend("baseline?workers=3")
    assert backend._workers_override == 3  # type: ignore[attr-defined]
    if "pgstore" in INSTALLED:
        store = load_backend("pgstore?lease_s=2.5&snapshot_every=0&slots=8")
        assert (store.lease_s, store.snapshot_every, store.slots) == (2.5, 0, 8)  # type: ignore[attr-defined]


@pytest.mark.parametrize("value", ["abc", "-1", "0"])
def test_the_command_line_refuses_a_bad_option_before_anything_starts(
    value: str, tmp_path: Path
) -> None:
    out = tmp_path / "r"
    result = durabench("run", "smoke", "--backend", f"baseline?workers={value}", "--out", str(out))
    assert result.returncode == 2, result.stdout
    assert "Traceback" not in result.stderr
    assert f"option workers={value!r}" in result.stderr and "baseline" in result.stderr
    assert not out.exists(), "nothing may start for a bad backend option"


def test_a_backend_by_import_path_is_found_in_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`durabench run --backend mymod:MyBackend` from the user's project, not installed."""
    (tmp_path / "my_project_backend.py").write_text(
        "from backends.baseline import BaselineBackend\n\n"
        "class MyBackend(BaselineBackend):\n    pass\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.path", [p for p in __import__("sys").path if p not in ("", ".")])
    backend = load_backend("my_project_backend:MyBackend")
    assert type(backend).__name__ == "MyBackend"
