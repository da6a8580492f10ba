"""Connecting to Temporal: an embedded dev server, an existing cluster, or Temporal Cloud.

One place turns the user's options into a connected `Client` and every failure
into one clear BackendError (unreachable address, unknown namespace, TLS or API
key trouble). The API key is read from the environment variable the user names,
at connect time, and never stored or passed on a command line.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest, ListNamespacesRequest
from temporalio.client import Client, TLSConfig
from temporalio.service import RPCError, RPCStatusCode

from backends.base import ExternalServices
from harness.errors import BackendError

__all__ = ["ConnectSettings", "connect", "connect_until_ready", "run_blocking"]

CONNECT_TIMEOUT_S = 10.0
READY_POLL_S = 0.25
T = TypeVar("T")


@dataclass(frozen=True)
class ConnectSettings:
    """Where and how to connect; file paths and a variable *name*, never secrets."""

    address: str
    namespace: str = "default"
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_ca: str | None = None
    api_key_env: str | None = None

    @classmethod
    def external(cls, ext: ExternalServices) -> ConnectSettings:
        assert ext.temporal_address is not None
        return cls(
            ext.temporal_address,
            ext.temporal_namespace,
            ext.temporal_tls_cert,
            ext.temporal_tls_key,
            ext.temporal_tls_ca,
            ext.temporal_api_key_env,
        )

    @property
    def uses_tls(self) -> bool:
        return bool(self.tls_cert or self.tls_key or self.tls_ca or self.api_key_env)

    def describe(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "namespace": self.namespace,
            "tls": self.uses_tls,
            "mtls": bool(self.tls_cert),
            "api_key_env": self.api_key_env,
        }


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise BackendError(f"temporal: cannot read the {what} {path}: {exc.strerror}") from None


def _tls(settings: ConnectSettings) -> TLSConfig | bool | None:
    if bool(settings.tls_cert) != bool(settings.tls_key):
        raise BackendError(
            "temporal: mTLS needs both --temporal-tls-cert and --temporal-tls-key "
            f"(got cert={settings.tls_cert!r}, key={settings.tls_key!r})"
        )
    if not (settings.tls_cert or settings.tls_ca):
        return True if settings.api_key_env else None  # Temporal Cloud API keys need TLS
    return TLSConfig(
        server_root_ca_cert=_read(settings.tls_ca, "TLS CA file") if settings.tls_ca else None,
        client_cert=_read(settings.tls_cert, "TLS client certificate")
        if settings.tls_cert
        else None,
        client_private_key=_read(settings.tls_key, "TLS client key") if settings.tls_key else None,
    )


def _api_key(settings: ConnectSettings) -> str | None:
    if not settings.api_key_env:
        return None
    key = os.environ.get(settings.api_key_env)
    if not key:
        raise BackendError(
            f"temporal: --temporal-api-key-env names {settings.api_key_env!r}, "
            "but that environment variable is not set"
        )
    return key


async def _check_namespace(client: Client, settings: ConnectSettings) -> None:
    try:
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=settings.namespace)
        )
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise BackendError(
                f"temporal: cannot use namespace {settings.namespace!r} on {settings.address}: "
                f"{exc.message}"
            ) from None
        try:
            listed = await client.workflow_service.list_namespaces(ListNamespacesRequest())
            known = ", ".join(sorted(n.namespace_info.name for n in listed.namespaces))
        except RPCError:
            known = "(cannot list them)"
        raise BackendError(
            f"temporal: namespace {settings.namespace!r} does not exist on {settings.address}; "
            f"existing namespaces: {known}"
        ) from None


async def connect(settings: ConnectSettings, *, check_namespace: bool = True) -> Client:
    """A connected client, or one BackendError saying what is wrong."""
    tls = _tls(settings)
    api_key = _api_key(settings)
    try:
        client = await Client.connect(
            settings.address,
            namespace=settings.namespace,
            tls=tls,
            api_key=api_key,
            connect_timeout=timedelta(seconds=CONNECT_TIMEOUT_S),
            identity=f"durabench@{os.getpid()}",
        )
    except (RuntimeError, RPCError) as exc:
        if tls:
            raise BackendError(
                f"temporal: TLS connection to {settings.address} failed (check that the server "
                f"speaks TLS and that the CA, certificate and key match it): {exc}"
            ) from None
        raise BackendError(f"temporal: cannot reach {settings.address}: {exc}") from None
    if check_namespace:
        await _check_namespace(client, settings)
    return client


async def connect_until_ready(settings: ConnectSettings, timeout_s: float) -> Client:
    """Connect, retrying while a just-started server comes up; the last error after timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        try:
            return await connect(settings)
        except BackendError:
            if loop.time() >= deadline:
                raise
        await asyncio.sleep(READY_POLL_S)


def run_blocking(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from synchronous code, even inside a running loop
    (in a helper thread with its own loop); its exception propagates."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()
