"""`durabench floor`: only the raw floors, on the servers a benchmark would start.

Kept apart from harness/floor.py (the floor programs and their recording), which the
runner uses: this module uses the runner's sessions, so the dependency points one way.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backends.base import load_backend
from harness.evaluate import floor_figures
from harness.floor import read_floors, record_floor
from harness.masking import mask_command
from harness.results import ResultsDir, collect_environment, new_bench_id
from harness.runner import open_session
from harness.scenario import load_scenario, resolve_scenario_path

__all__ = ["FloorRun"]


@dataclass
class FloorRun:
    """`durabench floor`: bring each backend's servers up as a benchmark would and run only
    its floors, into results/<run-id>/floors.parquet and floors.json."""

    scenario_path: Path
    backend_names: list[str]
    out_root: Path
    platform_name: str = "local"
    external: Any = None
    runs: int | None = None
    concurrency: int | None = None
    results: ResultsDir | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.scenario_path = resolve_scenario_path(self.scenario_path)
        self.scenario = load_scenario(self.scenario_path)
        self.backends = [load_backend(name) for name in self.backend_names]

    async def execute(self) -> dict[str, dict[str, Any]]:
        results = ResultsDir.create(self.out_root, new_bench_id(f"floor-{self.scenario.name}"))
        self.results = results
        (results.path / "scenario.yaml").write_text(self.scenario_path.read_text())
        results.update_manifest(
            bench_id=results.path.name,
            status="running",
            kind="floor",
            scenario=self.scenario.model_dump(mode="json"),
            scenario_path=str(self.scenario_path),
            backends=self.backend_names,
            platform=self.platform_name,
            command=mask_command([Path(sys.argv[0]).name, *sys.argv[1:]]),
            started_at=time.time(),
            environment=collect_environment(),
        )
        status = "failed"
        try:
            for name, backend in zip(self.backend_names, self.backends, strict=True):
                async with open_session(
                    self.scenario,
                    self.scenario_path,
                    name,
                    backend,
                    results,
                    self.platform_name,
                    self.external,
                    ids=[],
                ) as session:
                    await record_floor(session, self.runs, self.concurrency)
            status = "complete"
        except (KeyboardInterrupt, asyncio.CancelledError):
            status = "interrupted"
            raise
        finally:
            summary = floor_figures(read_floors(results))
            results.write_json("floors.json", summary)
            results.update_manifest(status=status, finished_at=time.time())
        return summary
