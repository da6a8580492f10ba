"""Open a page in headless Chromium over the DevTools protocol: a full-page screenshot,
every console error and uncaught exception, and every request the page made.

Debian's `chromium` package, driven with the `websockets` client; nothing is downloaded.
Usable from a shell too: `python -m tests.report.chromium report.html shot.png`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

__all__ = ["CHROMIUM", "PageVisit", "visit"]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--remote-debugging-port=0",
    "--remote-allow-origins=*",
)
START_TIMEOUT_S = 60.0
LOAD_TIMEOUT_S = 60.0
SETTLE_S = 0.5  # after the load event: time for late console messages and requests
LOCAL_SCHEMES = ("data:", "file:", "about:", "blob:")


@dataclass
class PageVisit:
    url: str
    errors: list[str] = field(default_factory=list)  # console errors, exceptions, log errors
    requests: list[str] = field(default_factory=list)  # every URL the page asked for
    screenshot: bytes = b""
    text: str = ""  # what the page shows (document.body.innerText)

    @property
    def external_requests(self) -> list[str]:
        return [u for u in self.requests if not u.startswith(LOCAL_SCHEMES)]


class _Session:
    """Commands and events of one DevTools websocket (flattened target sessions)."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self.ws:
            message = json.loads(raw)
            if "id" in message and message["id"] in self.pending:
                self.pending.pop(message["id"]).set_result(message)
            else:
                await self.events.put(message)

    async def send(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        number = next(self.ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[number] = future
        message: dict[str, Any] = {"id": number, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        await self.ws.send(json.dumps(message))
        reply = await asyncio.wait_for(future, LOAD_TIMEOUT_S)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply.get("result", {})
        return result


def _record(visit: PageVisit, event: dict[str, Any]) -> None:
    method, params = event.get("method"), event.get("params", {})
    if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
        args = " ".join(
            str(a.get("value", a.get("description", ""))) for a in params.get("args", [])
        )
        visit.errors.append(f"console.{params['type']}: {args}")
    elif method == "Runtime.exceptionThrown":
        visit.errors.append(f"exception: {params.get('exceptionDetails', {}).get('text')}")
    elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
        entry = params["entry"]
        visit.errors.append(
            f"log {entry.get('source')}: {entry.get('text')} {entry.get('url', '')}"
        )
    elif method == "Network.requestWillBeSent":
        visit.requests.append(params["request"]["url"])


async def _wait_for_load(cdp: _Session, visit: PageVisit) -> None:
    deadline = time.monotonic() + LOAD_TIMEOUT_S
    loaded_at: float | None = None
    while time.monotonic() < deadline:
        if loaded_at is not None and time.monotonic() - loaded_at > SETTLE_S:
            break
        try:
            event = await asyncio.wait_for(cdp.events.get(), 0.1)
        except TimeoutError:
            continue
        if event.get("method") == "Page.loadEventFired":
            loaded_at = time.monotonic()
        _record(visit, event)
    if loaded_at is None:
        raise TimeoutError(f"{visit.url} did not finish loading in {LOAD_TIMEOUT_S} s")


async def _drive(
    port: int, browser_path: str, page: Path | str, width: int, then: str | None
) -> PageVisit:
    visit = PageVisit(page if isinstance(page, str) else page.resolve().as_uri())
    async with connect(f"ws://127.0.0.1:{port}{browser_path}", max_size=None) as ws:
        cdp = _Session(ws)
        target = (await cdp.send("Target.createTarget", url="about:blank"))["targetId"]
        session = (await cdp.send("Target.attachToTarget", targetId=target, flatten=True))[
            "sessionId"
        ]
        for domain in ("Page", "Runtime", "Log", "Network"):
            await cdp.send(f"{domain}.enable", session)
        viewport = {"width": width, "deviceScaleFactor": 1, "mobile": False}
        await cdp.send("Emulation.setDeviceMetricsOverride", session, height=900, **viewport)
        await cdp.send("Page.navigate", session, url=visit.url)
        await _wait_for_load(cdp, visit)
        if then is not None:  # e.g. fill in a form and submit it: the next page is shot
            await cdp.send("Runtime.evaluate", session, expression=then)
            await _wait_for_load(cdp, visit)
            location = await cdp.send(
                "Runtime.evaluate", session, expression="location.href", returnByValue=True
            )
            visit.url = str(location["result"]["value"])
        shown = await cdp.send(
            "Runtime.evaluate", session, expression="document.body.innerText", returnByValue=True
        )
        visit.text = str(shown["result"].get("value", ""))
        metrics = await cdp.send("Page.getLayoutMetrics", session)
        height = int(metrics["cssContentSize"]["height"])
        await cdp.send("Emulation.setDeviceMetricsOverride", session, height=height, **viewport)
        shot = await cdp.send(
            "Page.captureScreenshot", session, format="png", captureBeyondViewport=True
        )
        visit.screenshot = base64.b64decode(shot["data"])
        while not cdp.events.empty():
            _record(visit, cdp.events.get_nowait())
        with contextlib.suppress(Exception):
            await cdp.send("Browser.close")
        cdp.reader.cancel()
    return visit


def visit(page: Path | str, width: int = 1280, then: str | None = None) -> PageVisit:
    """Load `page` (a file, or a URL as text) in a fresh headless Chromium profile and
    report what happened; `then`, a script run after the load that navigates (a form
    submitted), makes the screenshot and `url` those of the page it leads to."""
    with (
        tempfile.TemporaryDirectory(prefix="durabench-chromium-") as profile,
        tempfile.TemporaryFile() as log,
    ):
        process = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,  # its helpers join this process group: ended with it
        )
        try:
            active = Path(profile) / "DevToolsActivePort"
            deadline = time.monotonic() + START_TIMEOUT_S
            while not (active.exists() and len(active.read_text().splitlines()) >= 2):
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    error = log.read().decode(errors="replace")
                    raise RuntimeError(f"chromium did not start: {error[-2000:]}")
                time.sleep(0.05)
            port, browser_path = active.read_text().splitlines()[:2]
            return asyncio.run(_drive(int(port), browser_path, page, width, then))
        finally:
            _end_group(process)


def _end_group(process: subprocess.Popen[bytes]) -> None:
    """End Chromium and every helper it started (renderer, crashpad handler): helpers
    outlive the browser process and keep writing into the profile, whose removal then
    fails with 'Directory not empty'."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, 0)  # any member left?
        except ProcessLookupError:
            return
        time.sleep(0.05)


if __name__ == "__main__":
    result = visit(Path(sys.argv[1]))
    Path(sys.argv[2]).write_bytes(result.screenshot)
    shown = [u if len(u) < 120 else u[:100] + "..." for u in result.requests]
    print(json.dumps({"errors": result.errors, "requests": shown}, indent=2))
    sys.exit(1 if result.errors or result.external_requests else 0)
