"""A Restate service worker for durabench: the agent workflow's ASGI app on hypercorn
(the server the SDK documents), one process per worker.

Every worker of a backend listens on the same 127.0.0.1 port with SO_REUSEPORT (the
kernel spreads the server's connections over them, as a Kubernetes Service spreads
them over pods), and that one port is the deployment the backend registers; each
worker also listens on a port of its own, whose `GET /health` (the SDK's) tells the
platform it serves. A killed worker's connections break; the server retries their
invocations on a new connection, which a live worker (or this one, restarted on the
same port) accepts, and the new attempt replays the journal. SIGTERM drains.

Run as `python -m backends.restate.worker --service NAME --shared-port P --port P
--scenario F ...` (`WorkerArgs`, `RestateWorkerOptions`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
from dataclasses import dataclass

import aiohttp
import restate
from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config
from restate.server import install_shutdown_hook

from backends.restate.messages import ServicePolicy
from backends.restate.service import build_workflow
from backends.workercli import WorkerArgs
from harness.errors import DurabenchError
from harness.scenario import load_scenario

__all__ = ["RestateWorkerOptions", "main", "serve", "shared_socket"]

GRACEFUL_SHUTDOWN_S = 2.0
BACKLOG = 1024


@dataclass(frozen=True)
class RestateWorkerOptions:
    """The worker's own flags: the workflow's name, the port every worker shares, and
    the service policy the deployment's discovery announces."""

    service: str
    shared_port: int
    retry_initial_s: float = 0.2
    retry_factor: float = 2.0
    retry_max_s: float = 5.0
    retry_max_attempts: int = 100_000
    inactivity_timeout_s: float | None = None
    abort_timeout_s: float | None = None

    @classmethod
    def of(cls, service: str, shared_port: int, policy: ServicePolicy) -> RestateWorkerOptions:
        return cls(
            service=service,
            shared_port=shared_port,
            retry_initial_s=policy.retry_initial_s,
            retry_factor=policy.retry_factor,
            retry_max_s=policy.retry_max_s,
            retry_max_attempts=policy.retry_max_attempts,
            inactivity_timeout_s=policy.inactivity_timeout_s,
            abort_timeout_s=policy.abort_timeout_s,
        )

    def policy(self) -> ServicePolicy:
        return ServicePolicy(
            self.retry_initial_s,
            self.retry_factor,
            self.retry_max_s,
            self.retry_max_attempts,
            self.inactivity_timeout_s,
            self.abort_timeout_s,
        )


def shared_socket(host: str, port: int) -> socket.socket:
    """A listening socket on host:port that other processes may bind too (SO_REUSEPORT)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(BACKLOG)
    sock.set_inheritable(True)
    return sock


def _lifespan_aware(app: restate.server_types.RestateAppT) -> restate.server_types.RestateAppT:
    """The SDK's app answers no ASGI lifespan events; answer them, so hypercorn does not
    log a warning at every start."""

    async def wrapped(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        return await app(scope, receive, send)

    return wrapped


async def serve(args: WorkerArgs[RestateWorkerOptions]) -> None:
    """Serve until SIGTERM/SIGINT."""
    options = args.options
    scenario = load_scenario(args.scenario)  # bad input fails before anything listens
    shared = shared_socket(args.host, options.shared_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    install_shutdown_hook(loop, stop.set, signal.SIGTERM)  # the SDK's own hook shares it
    loop.add_signal_handler(signal.SIGINT, stop.set)
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        ctx = args.agent_context(scenario, http)
        workflow = build_workflow(options.service, ctx, options.policy())
        config = Config()
        config.bind = [f"fd://{shared.fileno()}", f"{args.host}:{args.port}"]
        config.graceful_timeout = GRACEFUL_SHUTDOWN_S
        config.accesslog = None
        config.errorlog = logging.getLogger("hypercorn.error")
        try:
            await hypercorn_serve(
                _lifespan_aware(restate.app(services=[workflow])),
                config,
                shutdown_trigger=stop.wait,
            )
        finally:
            ctx.recorder.close()
            with contextlib.suppress(OSError):  # hypercorn closed it already
                shared.close()


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    args = WorkerArgs.parse(
        RestateWorkerOptions, argv, description="durabench Restate worker", needs_port=True
    )
    try:
        asyncio.run(serve(args))
    except DurabenchError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
