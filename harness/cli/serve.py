"""`durabench serve`: the results browser (harness/serve.py) on a local port."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

import click

from harness.cli.common import fail, out

__all__ = ["serve_command"]


async def _serve(root: Path, host: str, port: int) -> None:
    from aiohttp import web

    from harness.serve import make_app

    runner = web.AppRunner(make_app(root), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
    bound = runner.addresses[0][1] if runner.addresses else port
    shown = f"[{host}]" if ":" in host else host
    out.print(f"serving {root} on http://{shown}:{bound}/ (Ctrl-C stops)", highlight=False)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


@click.command(name="serve")
@click.argument("results_root", required=False, default="results", type=click.Path(path_type=Path))
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; anything but loopback shows your results to the network.",
)
@click.option(
    "--port",
    type=click.IntRange(min=0, max=65535),
    default=8765,
    show_default=True,
    help="Port to listen on (0: any free port, printed).",
)
def serve_command(results_root: Path, host: str, port: int) -> None:
    """Browse RESULTS_ROOT (default: results) in a web page: its result and suite
    directories with status, backends, integrity and date; each one's report (built
    on first view); and the compare table of two of them."""
    if not results_root.exists():
        fail(f"{results_root}: no such directory (give the directory runs write into)")
    if not results_root.is_dir():
        fail(f"{results_root}: not a directory")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(results_root, host, port))
