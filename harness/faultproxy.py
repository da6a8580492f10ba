"""The fault proxy: a TCP proxy on loopback that sits on a link between two roles.

One process serves any number of named links (`worker->tools`, `worker->store`, …),
each listening on its own 127.0.0.1 port and forwarding to one upstream. Faults are
set per link through a small HTTP control API and are modelled on Toxiproxy's toxics:

- `blackhole`: traffic stops in the given direction(s) without a reset; connections
  hang until someone's timeout fires. Bytes already sent are held, not dropped (as
  TCP retransmission would deliver them after a partition heals). A partition is a
  blackhole in both directions.
- `reset`: existing connections are aborted with RST and new ones are reset at once.
- `latency_ms` ± `jitter_ms`: added to every chunk, per direction.
- `bandwidth_kbps`: a cap on throughput, per direction.

Run as `python -m harness.faultproxy --control-port C --link NAME=LISTEN_PORT:HOST:PORT ...`.
Control: `GET /links`; `POST /links` adds one (name, upstream_host, upstream_port; the
answer says where it listens); `PUT /links/{name}` sets a Toxics JSON object (`{}` heals);
`DELETE /links` heals every link; `GET /health`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import socket
import struct
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from aiohttp import web

__all__ = ["FaultProxy", "Link", "Toxics", "main"]

CHUNK = 64 * 1024
Direction = Literal["upstream", "downstream", "both"]


@dataclass(frozen=True)
class Toxics:
    """The faults active on one link; the default is a healthy link."""

    blackhole: Direction | None = None
    reset: bool = False
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    bandwidth_kbps: float | None = None
    direction: Direction = "both"  # for latency and bandwidth

    def __post_init__(self) -> None:
        if self.latency_ms < 0 or self.jitter_ms < 0:
            raise ValueError("latency_ms and jitter_ms must be >= 0")
        if self.bandwidth_kbps is not None and self.bandwidth_kbps <= 0:
            raise ValueError("bandwidth_kbps must be > 0")
        for name in ("blackhole", "direction"):
            value = getattr(self, name)
            if value is not None and value not in ("upstream", "downstream", "both"):
                raise ValueError(f"{name} must be upstream, downstream or both")

    @property
    def healthy(self) -> bool:
        return self == Toxics()

    def blocks(self, direction: str) -> bool:
        return self.blackhole in ("both", direction)

    def shapes(self, direction: str) -> bool:
        return self.direction in ("both", direction)


def _abort_with_rst(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@dataclass
class Link:
    """One proxied link: a listening port, an upstream, its toxics and live connections."""

    name: str
    listen_port: int
    upstream_host: str
    upstream_port: int
    toxics: Toxics = Toxics()
    connections: set[asyncio.StreamWriter] = field(default_factory=set)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    bytes_forwarded: dict[str, int] = field(
        default_factory=lambda: {"upstream": 0, "downstream": 0}
    )
    server: asyncio.Server | None = None

    async def set_toxics(self, toxics: Toxics) -> None:
        self.toxics = toxics
        if toxics.reset:
            for writer in list(self.connections):
                _abort_with_rst(writer)
            self.connections.clear()
        async with self.changed:
            self.changed.notify_all()

    async def _passable(self, direction: str) -> None:
        """Wait while this direction is blackholed (the heart of a partition)."""
        if not self.toxics.blocks(direction):
            return
        async with self.changed:
            await self.changed.wait_for(lambda: not self.toxics.blocks(direction))

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, direction: str
    ) -> None:
        rng = random.Random()
        try:
            while True:
                await self._passable(direction)
                data = await reader.read(CHUNK)
                if not data:
                    break
                await self._passable(direction)
                toxics = self.toxics
                if toxics.shapes(direction):
                    delay = toxics.latency_ms + rng.uniform(-toxics.jitter_ms, toxics.jitter_ms)
                    if toxics.bandwidth_kbps:
                        delay += len(data) * 8 / toxics.bandwidth_kbps  # ms per kilobit
                    if delay > 0:
                        await asyncio.sleep(delay / 1000)
                writer.write(data)
                await writer.drain()
                self.bytes_forwarded[direction] += len(data)
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                if writer.can_write_eof():
                    writer.write_eof()

    async def handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        if self.toxics.reset:
            _abort_with_rst(client_w)
            return
        try:
            upstream_r, upstream_w = await asyncio.open_connection(
                self.upstream_host, self.upstream_port
            )
        except OSError:
            _abort_with_rst(client_w)
            return
        if self.toxics.reset:  # a reset came while the upstream connection was made
            _abort_with_rst(client_w)
            _abort_with_rst(upstream_w)
            return
        self.connections.update((client_w, upstream_w))
        try:
            await asyncio.gather(
                self._pump(client_r, upstream_w, "upstream"),
                self._pump(upstream_r, client_w, "downstream"),
            )
        finally:
            for w in (client_w, upstream_w):
                self.connections.discard(w)
                w.close()

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "listen": f"127.0.0.1:{self.listen_port}",
            "listen_port": self.listen_port,
            "upstream": f"{self.upstream_host}:{self.upstream_port}",
            "toxics": asdict(self.toxics),
            "healthy": self.toxics.healthy,
            "connections": len(self.connections) // 2,
            "bytes_forwarded": dict(self.bytes_forwarded),
        }


class FaultProxy:
    """Every link of one run, plus the control API."""

    def __init__(self, links: list[Link]) -> None:
        self.links = {link.name: link for link in links}

    async def start(self) -> None:
        for link in self.links.values():
            await self._listen(link)

    @staticmethod
    async def _listen(link: Link) -> None:
        link.server = await asyncio.start_server(link.handle, "127.0.0.1", link.listen_port)
        link.listen_port = int(link.server.sockets[0].getsockname()[1])

    async def add_link(self, name: str, upstream_host: str, upstream_port: int) -> Link:
        """Add a link at run time (listening on a port of the kernel's choice); adding a
        link that exists with the same upstream returns it."""
        existing = self.links.get(name)
        if existing is not None:
            if (existing.upstream_host, existing.upstream_port) != (upstream_host, upstream_port):
                raise ValueError(f"link {name!r} exists with another upstream")
            return existing
        link = Link(name, 0, upstream_host, upstream_port)
        await self._listen(link)
        self.links[name] = link
        return link

    async def heal_all(self) -> None:
        for link in self.links.values():
            await link.set_toxics(Toxics())

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/health", self._health)
        app.router.add_get("/links", self._list)
        app.router.add_post("/links", self._add)
        app.router.add_put("/links/{name}", self._set)
        app.router.add_delete("/links", self._heal)
        return app

    async def _health(self, _: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def _list(self, _: web.Request) -> web.Response:
        return web.json_response({name: link.describe() for name, link in self.links.items()})

    async def _add(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            host = str(body["upstream_host"])
            if not host.startswith("127.") and host != "localhost":
                raise ValueError("the fault proxy only forwards to loopback addresses")
            link = await self.add_link(str(body["name"]), host, int(body["upstream_port"]))
        except (KeyError, TypeError, ValueError) as exc:
            return web.json_response({"error": f"bad link: {exc}"}, status=400)
        return web.json_response(link.describe())

    async def _set(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        link = self.links.get(name)
        if link is None:
            return web.json_response(
                {"error": f"no link {name!r}; links: {sorted(self.links)}"}, status=404
            )
        try:
            toxics = Toxics(**(await request.json()))
        except (TypeError, ValueError) as exc:
            return web.json_response({"error": f"bad toxics: {exc}"}, status=400)
        await link.set_toxics(toxics)
        return web.json_response(link.describe())

    async def _heal(self, _: web.Request) -> web.Response:
        await self.heal_all()
        return web.json_response({name: link.describe() for name, link in self.links.items()})


def parse_link(text: str) -> Link:
    """`NAME=LISTEN_PORT:HOST:PORT`, e.g. `worker->tools=41001:127.0.0.1:40001`."""
    try:
        name, spec = text.split("=", 1)
        listen, host, port = spec.split(":")
        return Link(name, int(listen), host, int(port))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: a link looks like NAME=LISTEN_PORT:HOST:PORT"
        ) from None


async def _serve(links: list[Link], control_port: int) -> None:
    proxy = FaultProxy(links)
    await proxy.start()
    runner = web.AppRunner(proxy.app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", control_port).start()
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description="durabench fault proxy (loopback only)")
    parser.add_argument("--control-port", type=int, required=True)
    parser.add_argument("--link", type=parse_link, action="append", default=[], dest="links")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.links, args.control_port))


if __name__ == "__main__":
    main()
