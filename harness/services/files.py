"""The work-volume file server: how the harness reads what components wrote on a
platform that shares no filesystem with it (Kubernetes).

Workers write their measurement files and crash-point markers into the work
directory, which on Kubernetes is a volume in the cluster. This service mounts the
same volume and answers `GET /archive?path=measurements&path=failpoints` with a tar
of those paths (relative to its root; nothing outside the root is ever served), which
the platform unpacks into the harness's copy of the work directory. Read-only.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import tarfile
from pathlib import Path

from aiohttp import web

from harness.services.common import run_app

__all__ = ["archive", "build_app"]

ROOT_KEY: web.AppKey[Path] = web.AppKey("root", Path)


def archive(root: Path, paths: list[str]) -> bytes:
    """A tar of `paths` under `root` (missing ones are left out)."""
    root = root.resolve()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for relative in paths:
            path = (root / relative).resolve()
            if not path.is_relative_to(root):
                raise ValueError(f"{relative!r} is outside the served directory")
            if path.exists():
                tar.add(path, arcname=str(path.relative_to(root)))
    return buffer.getvalue()


async def _archive(request: web.Request) -> web.Response:
    paths = request.query.getall("path", [])
    try:
        data = await asyncio.to_thread(archive, request.app[ROOT_KEY], paths)
    except ValueError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    return web.Response(body=data, content_type="application/x-tar")


async def _health(_: web.Request) -> web.Response:
    return web.json_response({"ok": True})


def build_app(root: Path) -> web.Application:
    app = web.Application()
    app[ROOT_KEY] = root
    app.router.add_get("/health", _health)
    app.router.add_get("/archive", _archive)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description="durabench work-volume file server")
    parser.add_argument("--root", required=True, type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    args.root.mkdir(parents=True, exist_ok=True)
    run_app(build_app(args.root), args.host, args.port)


if __name__ == "__main__":
    main()
