"""The Locust side of `durabench load`: agent users and the load shape.

Run by Locust's own processes only (`locust -f harness/load/locustfile.py ...`; importing
Locust patches the interpreter with gevent). Each `AgentUser` task starts one agent run
through the durabench run gateway (which calls the backend's own client) and, unless
`--durabench-no-wait`, waits for it. It reports two request events, typed by backend:

- `agent_start`: from asking to the backend accepting the run durably;
- `agent_run`: from asking to the run's completion; a failure when the run missed its
  deadline (or never finished).

So Locust's console, web UI, CSV and HTML reports show agent-level throughput and
latency. Every request's time also goes into an HDR histogram (harness.load.hdr) that
workers ship to their master with each stats report, so the master's percentiles
(written to `--durabench-hdr-file`) are exact over every worker's samples.
`DURABENCH_LOAD_SHAPE` (JSON, see `harness.load.shapes`) adds the shape class;
without it, Locust's own `--users/--spawn-rate/--run-time` drive the test.
"""

from __future__ import annotations

import json
import os
import random
import time
import urllib.error
import urllib.request
from typing import Any

from locust import LoadTestShape, User, events, task
from locust.argument_parser import LocustArgumentParser
from locust.env import Environment
from locust.runners import WorkerRunner

from harness.load import shapes
from harness.load.hdr import LatencyHistograms

__all__ = ["HISTOGRAMS", "SHAPE_ENV", "AgentUser", "DeadlineMissed"]

SHAPE_ENV = shapes.SHAPE_ENV
GATEWAY_ENV = "DURABENCH_GATEWAY"
WORKER_HEADER = "X-Durabench-Worker"
BUDGET_SPENT_PAUSE_S = 0.5  # a user idles this long when the run budget is spent
WAIT_SLACK_S = 30.0  # a wait request may take the deadline plus this
HTTP_TIMEOUT_S = 60.0


class DeadlineMissed(Exception):
    """The run did not finish before the scenario's deadline."""


class StartRefused(Exception):
    """The backend refused to start the run (or the gateway was unreachable)."""


def add_arguments(parser: LocustArgumentParser) -> None:
    group = parser.add_argument_group("durabench")
    group.add_argument(
        "--durabench-gateway",
        env_var=GATEWAY_ENV,
        default="",
        help="URL of the durabench run gateway (durabench load prints and passes it)",
    )
    group.add_argument(
        "--durabench-no-wait",
        action="store_true",
        default=False,
        help="Start runs without waiting for them (durabench still waits and judges them)",
    )
    group.add_argument(
        "--durabench-user-rate",
        type=float,
        default=0.0,
        help="Runs per second per user, Poisson arrivals (0: back to back)",
    )
    group.add_argument(
        "--durabench-hdr-file",
        default="",
        help="Where the master (or the local runner) writes the merged HDR latency "
        "histograms per request name as it exits",
    )


events.init_command_line_parser.add_listener(add_arguments)  # type: ignore[no-untyped-call]

HISTOGRAMS = LatencyHistograms()
_ENVIRONMENT: list[Environment] = []


def _remember(environment: Environment, **_: Any) -> None:
    _ENVIRONMENT[:] = [environment]


def _hdr_path() -> str:
    options = _ENVIRONMENT[0].parsed_options if _ENVIRONMENT else None
    return str(getattr(options, "durabench_hdr_file", "") or "")


def _role() -> str:
    runner = _ENVIRONMENT[0].runner if _ENVIRONMENT else None
    return "worker" if isinstance(runner, WorkerRunner) else "master or local"


events.init.add_listener(_remember)  # type: ignore[no-untyped-call]
HISTOGRAMS.attach(events, _hdr_path, _role)


def _call(
    method: str, url: str, timeout: float, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    data = b"" if method == "POST" else None
    request = urllib.request.Request(url, method=method, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            return exc.code, json.loads(body or b"{}")
        except json.JSONDecodeError:
            return exc.code, {"error": body.decode(errors="replace")}


def _options(user_or_shape: Any) -> Any:
    return user_or_shape.environment.parsed_options


class AgentUser(User):
    """One simulated client of a durable agent platform: start a run, wait for it."""

    def on_start(self) -> None:
        options = _options(self)
        self.gateway: str = options.durabench_gateway.rstrip("/")
        if not self.gateway:
            raise RuntimeError("no durabench gateway: pass --durabench-gateway or $" + GATEWAY_ENV)
        self.wait_for_runs = not options.durabench_no_wait
        self.user_rate = float(options.durabench_user_rate)
        _, info = _call("GET", f"{self.gateway}/info", HTTP_TIMEOUT_S)
        self.backend = str(info["backend"])
        self.deadline_s = float(info["deadline_s"])

    def _who(self) -> dict[str, str]:
        """Which Locust worker starts the run (the gateway counts runs per worker)."""
        runner = self.environment.runner
        index = getattr(runner, "worker_index", 0) if runner is not None else 0
        return {WORKER_HEADER: str(index)}

    def wait_time(self) -> float:
        return random.expovariate(self.user_rate) if self.user_rate > 0 else 0.0

    def _fire(self, name: str, began: float, exception: Exception | None, **context: Any) -> None:
        self.environment.events.request.fire(
            request_type=self.backend,
            name=name,
            response_time=(time.perf_counter() - began) * 1000.0,
            response_length=0,
            exception=exception,
            context=context,
        )

    @task
    def agent_run(self) -> None:
        began = time.perf_counter()
        try:
            status, body = _call("POST", f"{self.gateway}/runs", HTTP_TIMEOUT_S, self._who())
        except OSError as exc:
            self._fire("agent_start", began, StartRefused(f"gateway unreachable: {exc}"))
            return
        if status == 410:  # the run budget is spent: idle until the shape ends the test
            time.sleep(BUDGET_SPENT_PAUSE_S)
            return
        run_id = str(body.get("run_id"))
        if status != 202:
            self._fire("agent_start", began, StartRefused(f"{run_id}: {body.get('error')}"))
            return
        self._fire("agent_start", began, None, run_id=run_id)
        if not self.wait_for_runs:
            return
        url = f"{self.gateway}/runs/{run_id}?wait={self.deadline_s + WAIT_SLACK_S:.3f}"
        try:
            _, answer = _call("GET", url, self.deadline_s + WAIT_SLACK_S + HTTP_TIMEOUT_S)
        except OSError as exc:
            self._fire("agent_run", began, DeadlineMissed(f"{run_id}: gateway lost: {exc}"))
            return
        missed = None
        if not (answer.get("done") and answer.get("in_time")):
            missed = DeadlineMissed(f"{run_id} missed its {self.deadline_s:g}s deadline")
        self._fire("agent_run", began, missed, run_id=run_id)


if os.environ.get(SHAPE_ENV):

    class DurabenchShape(LoadTestShape):
        """The shape named in $DURABENCH_LOAD_SHAPE; ends early once the gateway's run
        budget is spent and (when users wait) every started run has finished."""

        def __init__(self) -> None:
            super().__init__()  # type: ignore[no-untyped-call]
            self.shape = shapes.parse_shape(json.loads(os.environ[SHAPE_ENV]))

        def _budget_done(self) -> bool:
            if self.runner is None:
                return False
            options = _options(self.runner)
            gateway = str(options.durabench_gateway).rstrip("/")
            if not gateway:
                return False
            try:
                _, status = _call("GET", f"{gateway}/status", HTTP_TIMEOUT_S)
            except OSError:
                return False
            settled = options.durabench_no_wait or status.get("in_flight") == 0
            return bool(status.get("exhausted")) and bool(settled)

        def tick(self) -> tuple[int, float] | None:
            if self._budget_done():
                return None
            return shapes.tick(self.shape, self.get_run_time())  # type: ignore[no-untyped-call]
