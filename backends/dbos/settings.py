"""What the DBOS backend, its workers and its floor agree on: names in the system
database, the application identity, and the system database URL.

DBOS keeps everything in its system database: `workflow_status` (one row per agent
run), `operation_outputs` (one row per recorded step), `notifications` (the approval
message). Each durabench run gets a schema of its own (`dbos_system_schema`), so two
runs on one server never see each other's queues or workflows.

Every process of one application must agree on its name and version: DBOS recovers
only PENDING workflows of its own executor id *and application version*, and dequeues
only workflows of its version, so the version is pinned here instead of DBOS's
default (a hash of the workflow source).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.scenario import Scenario

__all__ = [
    "ACT",
    "APPLICATION",
    "APPROVAL",
    "APPROVE_TOPIC",
    "APP_VERSION",
    "DSN_ENV",
    "QUEUE",
    "REASON",
    "RETRY_SETTINGS",
    "VERIFY",
    "WORKFLOW",
    "spec_of",
    "sqlalchemy_url",
]

APPLICATION = "durabench"
APP_VERSION = "durabench-agent-v1"
WORKFLOW = "durabench_agent"
QUEUE = "durabench_runs"
REASON = "durabench.reason"
ACT = "durabench.act"
VERIFY = "durabench.verify"
APPROVAL = "durabench.approval"  # writes the approval measurement row once
APPROVE_TOPIC = "approve"
# the system database as a libpq DSN, never in argv (ps, logs): the same variable and form
# as the Postgres stores' workers, so the platforms rewrite and hide it the same way
DSN_ENV = "DURABENCH_WORKER_DSN"
# DBOS step retries for the phases that call a service (reason, act): on top of the
# phase's own transient-HTTP retries, a phase that gave up is retried by DBOS
RETRY_SETTINGS: dict[str, Any] = {
    "retries_allowed": True,
    "max_attempts": 5,
    "interval_seconds": 0.2,
    "backoff_rate": 2.0,
}


def spec_of(scenario: Scenario, run_id: str) -> dict[str, Any]:
    """The workflow's one input: the run and what of the scenario it needs."""
    approval = scenario.approval
    return {
        "run_id": run_id,
        "steps": scenario.steps,
        "on_failure": scenario.verify.on_failure,
        "max_attempts": scenario.verify.max_attempts,
        "approval_after_step": approval.after_step if approval else None,
        "approval_ttl_s": approval.ttl_s if approval else None,
    }


def sqlalchemy_url(dsn: str) -> str:
    """A libpq DSN (URL or key=value conninfo) as the URL DBOS wants
    (`postgresql://user:password@host:port/database`), password included."""
    from psycopg.conninfo import conninfo_to_dict
    from sqlalchemy.engine import URL

    params: dict[str, Any] = {k: v for k, v in conninfo_to_dict(dsn).items() if v is not None}
    port = params.pop("port", None)
    query = {
        key: str(value)
        for key, value in params.items()
        if key not in ("user", "password", "host", "dbname")
    }
    url = URL.create(
        "postgresql",
        username=params.get("user"),
        password=params.get("password"),
        host=params.get("host"),
        port=int(port) if port else None,
        database=params.get("dbname"),
        query=query,
    )
    return url.render_as_string(hide_password=False)
