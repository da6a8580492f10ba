"""The Worker's JavaScript computes what the Python workload computes: the digest that
verify compares (BLAKE2b over canonical JSON) and the step policy's next move, checked
on the machine's Node.js against harness.workload on many inputs."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from backends.cloudflare.install import PACKAGE_DIR, node_binary
from harness.scenario import VerifyPolicy
from harness.workload import decide, digest, next_move
from tests.conftest import ScenarioFactory

pytestmark = pytest.mark.skipif(node_binary() is None, reason="needs node")

SCRIPT = """
import { digest } from "%s";
import { nextMove, verifyOutput } from "%s";
const input = JSON.parse(require_input());
function require_input() { return process.argv[2]; }
console.log(JSON.stringify({
  digests: input.values.map(digest),
  moves: input.moves.map(([policy, verified, attempt]) => nextMove(policy, verified, attempt)),
  verdicts: input.verifies.map(([decision, output]) => verifyOutput(decision, output)),
}));
"""


def _node(tmp_path: Path, payload: dict[str, Any]) -> dict[str, Any]:
    script = tmp_path / "check.mjs"
    src = PACKAGE_DIR / "src"
    script.write_text(SCRIPT % (src / "digest.js", src / "agent.js"))
    node = node_binary()
    assert node is not None
    done = subprocess.run(
        [node, str(script), json.dumps(payload)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_digest_moves_and_verdicts_agree_with_the_python_workload(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    from harness.scenario import load_scenario

    scenario = load_scenario(write_scenario(runs=4, steps=8))
    decisions = [
        decide(scenario, f"run-{r:06d}", s, a) for r in range(4) for s in range(8) for a in (1, 2)
    ]
    values: list[Any] = [d.arguments for d in decisions]
    values += [
        {},
        [],
        "x" * 127,
        "x" * 128,
        "x" * 129,
        "y" * 300,
        {"b": [1, {"z": None}], "a": True},
    ]
    values += ["caf\u00e9", {"k": "\u2603 snow"}]
    policies = [
        {"on_failure": f, "max_attempts": m} for f in ("retry_act", "replan") for m in (1, 3)
    ]
    moves = [[p, v, a] for p in policies for v in (True, False) for a in (1, 2, 3)]
    verifies = []
    for d in decisions[:6]:
        good = {"status": "ok", "tool": d.tool, "request_digest": digest(d.arguments)}
        verifies += [
            [d.__dict__, good],
            [d.__dict__, {**good, "status": "rejected"}],
            [d.__dict__, {**good, "request_digest": "0" * 16}],
        ]
    result = _node(tmp_path, {"values": values, "moves": moves, "verifies": verifies})
    assert result["digests"] == [digest(v) for v in values]
    expected_moves = [next_move(VerifyPolicy.model_validate(p), v, a) for p, v, a in moves]
    assert result["moves"] == expected_moves
    assert result["verdicts"] == [True, False, False] * 6
