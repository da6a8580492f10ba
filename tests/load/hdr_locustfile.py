"""A locustfile for tests/load/test_hdr_merge.py: durabench's own Locust wiring (imported
from harness.load.locustfile) with a user that reports known response times instead of
agent runs. Each worker's user fires SAMPLES seeded times of its own distribution, spread
over several of the worker's stats reports, and writes them to $HDR_SAMPLES_DIR so the
test holds every sample the master should have merged."""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

from locust import User, constant, task

from harness.load.locustfile import HISTOGRAMS  # noqa: F401  (wires the HDR events)

SAMPLES = 400
SPREAD_S = 4.0  # longer than Locust's 3 s worker report interval: several reports
# worker 0 fast and tight, worker 1 slow and wide: their p99s' mean is not the p99
SHAPES = {0: (3.0, 0.3), 1: (5.5, 0.8)}  # lognormal mu, sigma of ms


class SampleUser(User):
    wait_time = constant(1)

    def on_start(self) -> None:
        runner = self.environment.runner
        index = int(getattr(runner, "worker_index", 0))
        rng = random.Random(index)
        mu, sigma = SHAPES[index % 2]
        values = [rng.lognormvariate(mu, sigma) for _ in range(SAMPLES)]
        directory = Path(os.environ["HDR_SAMPLES_DIR"])
        (directory / f"samples-{index}.json").write_text(json.dumps(values))
        for value in values:
            self.environment.events.request.fire(
                request_type="sample",
                name="latency",
                response_time=value,
                response_length=0,
                exception=None,
                context={},
            )
            time.sleep(SPREAD_S / SAMPLES)  # gevent's: the worker keeps reporting

    @task
    def idle(self) -> None:
        time.sleep(0.1)
