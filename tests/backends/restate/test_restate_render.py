"""`durabench k8s render --backend restate`: the embedded server is a StatefulSet whose
data directory outlives a deleted pod, listening on the pod network."""

from __future__ import annotations

from harness.platform.kubernetes.render import render_manifests


def test_the_restate_server_renders_as_a_stateful_set_on_its_own_volume() -> None:
    objects = render_manifests("smoke", "restate", "durabench-chaos")
    server = next(m for m in objects if m["kind"] == "StatefulSet")
    assert server["metadata"]["name"] == "restate-server"
    container = server["spec"]["template"]["spec"]["containers"][0]
    command = container["command"]
    assert command[0].endswith("/restate-server")
    assert command[command.index("--bind-ip") + 1] == "0.0.0.0"  # other pods dial it
    (claim,) = server["spec"]["volumeClaimTemplates"]
    base_dir = command[command.index("--base-dir") + 1]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert base_dir.startswith(mounts[claim["metadata"]["name"]] + "/")
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["RESTATE_DISABLE_TELEMETRY"] == "true"
    workers = [
        m for m in objects if m["kind"] == "Deployment" and "worker" in m["metadata"]["name"]
    ]
    assert workers
