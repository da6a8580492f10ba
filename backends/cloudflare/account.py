"""`cloudflare:account`: the same Worker deployed to a real Cloudflare account with
`wrangler deploy`, its instances driven through Cloudflare's REST API.

Written against the documented API (developers.cloudflare.com/api/resources/workflows):
`POST .../workflows/{name}/instances` creates one (`instance_id`, `params`), `GET
.../instances/{id}` answers its status, steps (each with its `output`), output and
error, `POST .../instances/{id}/events/{type}` sends an event, `PATCH
.../instances/{id}/status` with `{"status": "terminate"}` ends it. It cannot be reached
from the machine this project is built on, so its tests (tests/backends/cloudflare/
test_account_contract.py) hold it to those documented shapes against a stand-in on
127.0.0.1; the base URL is `CLOUDFLARE_API_BASE_URL` (wrangler's own variable).

The token and the account id are read from the environment only (the variables'
names are options: `token_env`, `account_id_env`) and handed to wrangler in its
environment: they are never written to a file, an argument, a log or the manifest
(harness.masking). The Worker must reach the LLM and the tool service, which run on
127.0.0.1 here: give their tunnelled public URLs (`llm_url`, `tools_url`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlparse

import aiohttp

from backends.cloudflare.client import NoInstance, Snapshot
from backends.cloudflare.install import node_binary, wrangler_cli
from backends.cloudflare.settings import (
    BASE_CONFIG,
    OFFLINE_ENV,
    SCRIPT,
    worker_config,
    write_config,
)
from harness.errors import BackendError
from harness.masking import mask_text

__all__ = ["ACCOUNT_ENV", "API_BASE", "TOKEN_ENV", "AccountApi", "AccountTarget", "deploy_command"]

TOKEN_ENV = "CLOUDFLARE_API_TOKEN"
ACCOUNT_ENV = "CLOUDFLARE_ACCOUNT_ID"
API_BASE = "https://api.cloudflare.com/client/v4"
BASE_ENV = "CLOUDFLARE_API_BASE_URL"
DEPLOY_TIMEOUT_S = 300.0


def deploy_command(config: str) -> list[str]:
    """`wrangler deploy` of the generated config (no secret on it)."""
    return [node_binary() or "node", str(wrangler_cli()), "deploy", "--config", config]


@dataclass(frozen=True)
class AccountTarget:
    """Where to deploy: the names of the variables holding the account id and the token,
    and the public URLs the Worker reaches the services at."""

    account_id_env: str
    token_env: str
    llm_url: str | None
    tools_url: str | None

    def check(self, env: Any) -> None:
        """Every problem at once, before anything is deployed."""
        problems = []
        for name in (self.account_id_env, self.token_env):
            if not os.environ.get(name):
                problems.append(f"set {name}")
        for option, url in (("llm_url", self.llm_url), ("tools_url", self.tools_url)):
            host = urlparse(url or "").hostname
            if not url or host in (None, "127.0.0.1", "localhost") or str(host).startswith("127."):
                problems.append(
                    f"give {option}=https://...: the service's tunnelled URL (a deployed "
                    "Worker cannot reach 127.0.0.1)"
                )
        if problems:
            raise BackendError("cloudflare:account: " + "; ".join(problems))

    def secrets(self) -> tuple[str, str]:
        account, token = os.environ.get(self.account_id_env), os.environ.get(self.token_env)
        if not account or not token:
            raise BackendError(
                f"cloudflare:account: set {self.account_id_env} and {self.token_env}"
            )
        return account, token

    async def deploy(self, env: Any) -> AccountApi:
        """`wrangler deploy`, then the REST client for its instances."""
        account, token = self.secrets()
        assert self.llm_url is not None and self.tools_url is not None
        env.workdir.mkdir(parents=True, exist_ok=True)
        config = write_config(
            env.workdir / BASE_CONFIG,
            worker_config(
                env.scenario,
                backend="cloudflare",
                worker="account",
                llm_url=self.llm_url.rstrip("/") + "/v1",
                tools_url=self.tools_url.rstrip("/"),
            ),
        )
        secret_env = {**os.environ, **OFFLINE_ENV, ACCOUNT_ENV: account, TOKEN_ENV: token}
        result = await asyncio.to_thread(
            subprocess.run,
            deploy_command(str(config)),
            cwd=env.workdir,
            env=secret_env,
            capture_output=True,
            text=True,
            timeout=DEPLOY_TIMEOUT_S,
        )
        if result.returncode != 0:
            tail = mask_text((result.stdout + result.stderr).replace(token, "***")[-2000:])
            raise BackendError(f"cloudflare:account: wrangler deploy failed: {tail}")
        return AccountApi(account, token, os.environ.get(BASE_ENV) or API_BASE)

    def describe(self) -> dict[str, Any]:
        return {
            "runtime": "Cloudflare Workflows (production), deployed with wrangler deploy",
            "account_id_env": self.account_id_env,
            "token_env": self.token_env,
            "llm_url": self.llm_url,
            "tools_url": self.tools_url,
        }


class AccountApi:
    """The documented REST API for the deployed Workflows (InstanceApi)."""

    def __init__(self, account: str, token: str, base: str = API_BASE) -> None:
        self.root = f"{base.rstrip('/')}/accounts/{quote(account, safe='')}/workflows"
        self.http = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {token}"},
            timeout=aiohttp.ClientTimeout(total=30),
        )

    def _url(self, workflow: str, instance: str = "", tail: str = "") -> str:
        url = f"{self.root}/{SCRIPT}-{workflow}/instances"
        return url + (f"/{quote(instance, safe='')}" if instance else "") + tail

    async def _call(self, method: str, url: str, body: Any = None) -> tuple[Any, int]:
        async with self.http.request(method, url, json=body) as response:
            raw = await response.read()
            data = json.loads(raw or b"{}")
            if response.status == 404:
                raise NoInstance(url.rsplit("/", 1)[-1])
            if response.status >= 300 or data.get("success") is False:
                errors = data.get("errors") or data
                raise BackendError(
                    f"cloudflare:account: {method} {url}: {response.status} {errors}"
                )
            return data.get("result"), len(raw)

    async def create(self, workflow: str, instance: str, params: dict[str, Any]) -> None:
        await self._call("POST", self._url(workflow), {"instance_id": instance, "params": params})

    async def status(self, workflow: str, instance: str) -> Snapshot:
        result, size = await self._call("GET", self._url(workflow, instance))
        outputs = []
        for entry in result.get("steps") or []:
            if entry.get("type", "step") != "step" or not entry.get("success"):
                continue
            output = entry.get("output")
            if isinstance(output, str):
                with contextlib.suppress(ValueError):
                    output = json.loads(output)
            outputs.append(output)
        return Snapshot(
            str(result.get("status")), outputs, result.get("output"), result.get("error"), size
        )

    async def wait(self, workflow: str, instance: str, ms: int) -> Snapshot:
        snapshot = await self.status(workflow, instance)
        if snapshot.status not in ("complete", "errored", "terminated"):
            await asyncio.sleep(min(ms, 1000) / 1000)
        return snapshot

    async def send_event(self, workflow: str, instance: str, kind: str, payload: Any) -> None:
        await self._call(
            "POST", self._url(workflow, instance, f"/events/{quote(kind, safe='')}"), payload
        )

    async def terminate(self, workflow: str, instance: str) -> None:
        await self._call("PATCH", self._url(workflow, instance, "/status"), {"status": "terminate"})

    async def boot(self) -> str | None:
        return None  # the service has no restarts of ours to notice

    async def close(self) -> None:
        await self.http.close()
