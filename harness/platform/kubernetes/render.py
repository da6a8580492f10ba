"""`durabench k8s render`: the manifests of one scenario on one backend, for review.

The backend describes its components exactly as on the local platform
(`Backend.components`); each becomes a Deployment (or StatefulSet) and a Service,
loopback addresses become Service names, the scenario is a ConfigMap, work
directories are emptyDirs, and volume claims for the embedded Postgres and Temporal dev
server (StatefulSets, from the durabench image, listening on the pod network as on
`durabench run --platform kubernetes`) unless `--pg-dsn` / `--temporal-address` name
existing ones. Nothing is contacted.
"""

from __future__ import annotations

import re
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from backends.base import BackendEnv, ExternalServices, load_backend
from harness.platform.base import ComponentSpec
from harness.platform.kubernetes.guardrails import RUN_LABEL, run_label_value
from harness.platform.kubernetes.manifests import (
    DEFAULT_IMAGE,
    WORK_MOUNT,
    add_volume,
    component_objects,
    k8s_name,
    object_labels,
    pod_disruption_budget,
)
from harness.scenario import load_scenario, resolve_scenario_path

__all__ = ["SCENARIO_MOUNT", "render_manifests", "write_manifests"]

SCENARIO_MOUNT = "/etc/durabench"
LLM_PORT = 8080
TOOLS_PORT = 8081
Manifest = dict[str, Any]
RENDER_SECRET = "durabench-secrets"  # the Secret a user creates for secret values (a DSN)


def _service_specs(scenario_path: str, llm: bool) -> list[ComponentSpec]:
    specs = []
    if llm:
        specs.append(
            ComponentSpec(
                "llm",
                "llm",
                (
                    sys.executable,
                    "-m",
                    "harness.services.llm",
                    "--scenario",
                    scenario_path,
                    "--port",
                    str(LLM_PORT),
                    "--call-log",
                    f"{WORK_MOUNT}/llm_calls.jsonl",
                ),
                port=LLM_PORT,
                health_url=f"http://127.0.0.1:{LLM_PORT}/health",
            )
        )
    specs.append(
        ComponentSpec(
            "tools",
            "tools",
            (
                sys.executable,
                "-m",
                "harness.services.tools",
                "--scenario",
                scenario_path,
                "--port",
                str(TOOLS_PORT),
                "--ledger",
                f"{WORK_MOUNT}/ledger.sqlite",
            ),
            port=TOOLS_PORT,
            health_url=f"http://127.0.0.1:{TOOLS_PORT}/health",
        )
    )
    return specs


def _relocate(spec: ComponentSpec, workdir: str, scenario: str) -> ComponentSpec:
    """Host paths to pod paths: the work dir to the emptyDir, the scenario to the
    ConfigMap (binaries and binds are the pods' business: `pod_argv`)."""

    def move(text: str) -> str:
        text = text.replace(scenario, f"{SCENARIO_MOUNT}/scenario.yaml")
        return text.replace(workdir, WORK_MOUNT)

    argv = tuple(move(a) for a in spec.argv)
    return replace(spec, argv=argv, env={k: move(v) for k, v in spec.env.items()})


def _to_external_dsn(value: str, port: int, pg_dsn: str) -> str:
    """The embedded server's DSN -> the user's, keeping its options (the search_path)."""
    if f"port={port}" not in value and f":{port}/" not in value:
        return value
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(value)
    merged = {**params, **conninfo_to_dict(pg_dsn)}
    if "options" in params:
        merged["options"] = params["options"]
    return make_conninfo("", **merged)


def _use_external(
    specs: list[ComponentSpec], pg_dsn: str | None, temporal_address: str | None
) -> list[ComponentSpec]:
    """Drop the embedded store/server the user replaced, and point workers at theirs."""
    store = next((s.port for s in specs if s.role == "store" and s.port), None)
    server = next((s.port for s in specs if s.role == "server" and s.port), None)
    store = store if pg_dsn else None
    server = server if temporal_address else None

    def fix(text: str) -> str:
        if server is not None and temporal_address:
            text = text.replace(f"127.0.0.1:{server}", temporal_address)
        if store is not None and pg_dsn:
            text = _to_external_dsn(text, store, pg_dsn)
        return text

    return [
        replace(s, argv=tuple(fix(a) for a in s.argv), env={k: fix(v) for k, v in s.env.items()})
        for s in specs
        if not (s.role == "store" and store) and not (s.role == "server" and server)
    ]


def render_manifests(
    scenario: str | Path,
    backend_name: str,
    namespace: str,
    *,
    image: str = DEFAULT_IMAGE,
    run: str | None = None,
    pg_dsn: str | None = None,
    temporal_address: str | None = None,
) -> list[Manifest]:
    """Every object one scenario on one backend needs, in apply order."""
    scenario_path = resolve_scenario_path(scenario)
    model = load_scenario(scenario_path)
    run = run_label_value(run or f"render-{model.name}-{backend_name}")
    backend = load_backend(backend_name)
    pod_scenario = f"{SCENARIO_MOUNT}/scenario.yaml"
    objects: list[Manifest] = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "durabench-scenario",
                "namespace": namespace,
                "labels": object_labels(run, "scenario", "config"),
            },
            "data": {"scenario.yaml": scenario_path.read_text()},
        }
    ]
    services_specs = _service_specs(pod_scenario, model.llm.base_url is None)
    with tempfile.TemporaryDirectory(prefix="durabench-render-") as tmp:
        workdir = Path(tmp) / "work"  # a fixed name: schema names derive from it
        workdir.mkdir()
        env = BackendEnv(
            scenario=model,
            scenario_path=scenario_path,
            bench_id=run,
            llm_url=f"http://llm:{LLM_PORT}/v1"
            if model.llm.base_url is None
            else str(model.llm.base_url),
            tools_url=f"http://tools:{TOOLS_PORT}",
            workdir=workdir,
            measurements_dir=workdir / "measurements",
            external=ExternalServices(),  # components() would connect to external ones
        )
        specs = [_relocate(s, str(workdir), str(scenario_path)) for s in backend.components(env)]
    specs = _use_external(specs, pg_dsn, temporal_address)
    ports = {s.port: k8s_name(s.name) for s in [*services_specs, *specs] if s.port is not None}
    for spec in [*services_specs, *specs]:
        made = component_objects(
            spec,
            namespace=namespace,
            run=run,
            image=image,
            services=ports,
            work_paths=(WORK_MOUNT,),
            # a DSN the user gave is read from a Secret they create, never written here
            secrets=RENDER_SECRET if pg_dsn else None,
        )
        add_volume(
            made[0],
            {"name": "scenario", "configMap": {"name": "durabench-scenario"}},
            SCENARIO_MOUNT,
        )
        objects += made
    workers = [s for s in specs if s.role == "worker"]
    if workers:
        objects.append(
            pod_disruption_budget(
                "durabench-workers",
                namespace,
                object_labels(run, "workers", "worker"),
                {RUN_LABEL: run, "durabench.io/role": "worker"},
            )
        )
    return objects


def secret_references(objects: list[Manifest]) -> dict[str, set[str]]:
    """Secret name -> the keys the manifests read from it (a DSN, never in a manifest)."""
    found: dict[str, set[str]] = {}
    for manifest in objects:
        template = manifest.get("spec", {}).get("template", {}).get("spec", {})
        for container in template.get("containers", []):
            for item in container.get("env", []):
                ref = (item.get("valueFrom") or {}).get("secretKeyRef")
                if ref:
                    found.setdefault(ref["name"], set()).add(ref["key"])
    return found


def write_manifests(objects: list[Manifest], out: Path) -> list[Path]:
    """One YAML file per object, numbered in apply order."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for index, manifest in enumerate(objects):
        name = re.sub(r"[^a-z0-9-]", "-", manifest["metadata"]["name"])
        path = out / f"{index:02d}-{manifest['kind'].lower()}-{name}.yaml"
        path.write_text(yaml.safe_dump(manifest, sort_keys=False))
        written.append(path)
    return written
