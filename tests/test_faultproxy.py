"""The fault proxy as a real process between a real client and a real echo server."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from harness.platform.local import ComponentSpec, LocalPlatform, free_port

pytestmark = pytest.mark.integration

HOLD_S = 0.5  # how long we watch a blackholed link for traffic that must not arrive


@dataclass(frozen=True)
class ProxyUnderTest:
    port: int  # where clients connect (the proxied link)
    control: str  # control API base URL


ECHO_SERVER = """
import asyncio, sys

async def echo(reader, writer):
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()

async def main():
    server = await asyncio.start_server(echo, "127.0.0.1", int(sys.argv[1]))
    await server.serve_forever()

asyncio.run(main())
"""


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[ProxyUnderTest]:
    """An echo server behind the fault proxy, both real processes."""
    echo_port, listen, control = free_port(), free_port(), free_port()
    with LocalPlatform(tmp_path) as platform:
        platform.start(
            ComponentSpec(
                name="echo",
                role="tools",
                argv=(sys.executable, "-c", ECHO_SERVER, str(echo_port)),
                port=echo_port,
            )
        )
        platform.start(
            ComponentSpec(
                name="proxy",
                role="proxy",
                argv=(
                    sys.executable,
                    "-m",
                    "harness.faultproxy",
                    "--control-port",
                    str(control),
                    "--link",
                    f"worker->tools={listen}:127.0.0.1:{echo_port}",
                ),
                health_url=f"http://127.0.0.1:{control}/health",
            )
        )
        yield ProxyUnderTest(listen, f"http://127.0.0.1:{control}")


async def set_toxics(proxy: ProxyUnderTest, **toxics: object) -> dict[str, object]:
    async with (
        aiohttp.ClientSession() as http,
        http.put(f"{proxy.control}/links/worker->tools", json=toxics) as response,
    ):
        assert response.status == 200, await response.text()
        data: dict[str, object] = await response.json()
        return data


async def roundtrip(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes
) -> bytes:
    writer.write(data)
    await writer.drain()
    return await reader.readexactly(len(data))


async def test_a_healthy_link_forwards_both_ways(proxy: ProxyUnderTest) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    assert await roundtrip(reader, writer, b"hello") == b"hello"
    writer.close()


async def test_a_blackhole_holds_traffic_until_healed(proxy: ProxyUnderTest) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    assert await roundtrip(reader, writer, b"before") == b"before"
    await set_toxics(proxy, blackhole="both")

    writer.write(b"during")
    await writer.drain()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.readexactly(6), HOLD_S)

    await set_toxics(proxy)  # heal: the held bytes are delivered, as TCP would
    assert await asyncio.wait_for(reader.readexactly(6), 10) == b"during"
    writer.close()


async def test_a_one_way_blackhole_drops_only_answers(proxy: ProxyUnderTest) -> None:
    await set_toxics(proxy, blackhole="downstream")
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"ping")
    await writer.drain()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.readexactly(4), HOLD_S)
    async with aiohttp.ClientSession() as http, http.get(f"{proxy.control}/links") as response:
        link = (await response.json())["worker->tools"]
    assert link["bytes_forwarded"]["upstream"] == 4  # the request got through
    assert link["bytes_forwarded"]["downstream"] == 0
    writer.close()


async def test_reset_aborts_connections_and_refuses_new_ones(proxy: ProxyUnderTest) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    await set_toxics(proxy, reset=True)
    with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
        await asyncio.wait_for(roundtrip(reader, writer, b"x"), 10)

    async def new_connection_roundtrip() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        return await roundtrip(reader, writer, b"y")

    with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
        await asyncio.wait_for(new_connection_roundtrip(), 10)

    await set_toxics(proxy)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    assert await roundtrip(reader, writer, b"z") == b"z"
    writer.close()


async def test_latency_delays_every_chunk_at_least_by_its_amount(proxy: ProxyUnderTest) -> None:
    await set_toxics(proxy, latency_ms=150)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    began = time.monotonic()
    assert await roundtrip(reader, writer, b"slow") == b"slow"
    # a lower bound only: a sleep never ends early, however loaded the machine
    assert time.monotonic() - began >= 0.3  # 150 ms each way
    writer.close()


async def test_bad_toxics_and_unknown_links_are_refused(proxy: ProxyUnderTest) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.put(f"{proxy.control}/links/worker->tools", json={"latency_ms": -1}) as r:
            assert r.status == 400
        async with http.put(f"{proxy.control}/links/nope", json={}) as r:
            assert r.status == 404
            assert "worker->tools" in (await r.json())["error"]
        async with http.delete(f"{proxy.control}/links") as r:
            assert (await r.json())["worker->tools"]["healthy"] is True
