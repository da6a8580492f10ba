"""Wake-ups between the harness and the workers, so nobody waits on a poll interval.

The claim table stays the truth; these are only hints that it changed. A start (or an
approval) is followed by `POST /wake` to every worker, which claims at once instead of
at its next poll. A worker that finished a thread (its final status committed in the
claim table) publishes the thread id; the harness long-polls each worker's
`GET /finished` and wakes whoever waits on that thread, who then reads the claim
table. A lost hint (a worker killed between its commit and the answer) costs at most
the safety poll of the waiter (`SAFETY_POLL_S`), so correctness never depends on one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Iterable

import aiohttp
from aiohttp import web

__all__ = [
    "FINISHED_ROUTE",
    "SAFETY_POLL_S",
    "WAKE_ROUTE",
    "DoneWatcher",
    "FinishedLog",
    "finished_handler",
    "wake_workers",
]

WAKE_ROUTE = "/wake"
FINISHED_ROUTE = "/finished"
SAFETY_POLL_S = 0.5  # a waiter re-reads the claim table at least this often
LONG_POLL_S = 10.0  # how long one `GET /finished` may wait for news
RETRY_S = 0.2  # a worker's long-poll failed (down, restarting): try again after this
KEEP = 4096  # finished thread ids a worker remembers for late long-polls


class FinishedLog:
    """A worker's record of the threads it finished, in order (`seq` counts them); its
    `epoch` (the worker's owner id) changes when the worker restarts."""

    def __init__(self, epoch: str) -> None:
        self.epoch = epoch
        self.seq = 0
        self._recent: deque[tuple[int, str]] = deque(maxlen=KEEP)
        self._changed = asyncio.Event()

    def publish(self, thread_id: str) -> None:
        self.seq += 1
        self._recent.append((self.seq, thread_id))
        self._changed.set()
        self._changed = asyncio.Event()

    def since(self, seq: int) -> list[str]:
        return [thread for n, thread in self._recent if n > seq]

    async def wait_after(self, seq: int, timeout_s: float) -> list[str]:
        """Thread ids finished after `seq`, waiting up to `timeout_s` for the first."""
        if self.seq <= seq:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout_s)
        return self.since(seq)


def finished_handler(
    log: Callable[[], FinishedLog],
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """`GET /finished?epoch=E&after=N&timeout=T`: the threads finished after N (all
    it remembers when E is not this worker's epoch), with the epoch and seq to ask next."""

    async def handler(request: web.Request) -> web.Response:
        finished = log()
        try:
            after = int(request.query.get("after", "0"))
            timeout = min(float(request.query.get("timeout", "0")), LONG_POLL_S)
        except ValueError:
            return web.json_response({"error": "after and timeout must be numbers"}, status=400)
        if request.query.get("epoch") != finished.epoch:
            after = 0
        threads = await finished.wait_after(after, timeout)
        return web.json_response({"epoch": finished.epoch, "seq": finished.seq, "threads": threads})

    return handler


async def wake_workers(http: aiohttp.ClientSession, urls: Iterable[str]) -> None:
    """Tell every worker the claim table has work; an unreachable worker polls anyway."""

    async def one(url: str) -> None:
        with contextlib.suppress(aiohttp.ClientError, TimeoutError, OSError):
            async with http.post(f"{url}{WAKE_ROUTE}"):
                pass

    await asyncio.gather(*(one(url) for url in urls))


class DoneWatcher:
    """The harness side: one long-poll per worker; `wait` returns once `is_done()` says
    so, re-checked whenever a worker reports the thread finished and at least every
    `SAFETY_POLL_S`."""

    def __init__(self, http: aiohttp.ClientSession, urls: Iterable[str]) -> None:
        self.http = http
        self.urls = list(urls)
        self._events: dict[str, asyncio.Event] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._listen(url)) for url in self.urls]

    async def _listen(self, url: str) -> None:
        epoch, seq = "", 0
        timeout = aiohttp.ClientTimeout(total=LONG_POLL_S + 5.0)
        while True:
            query = f"?epoch={epoch}&after={seq}&timeout={LONG_POLL_S}"
            try:
                async with self.http.get(f"{url}{FINISHED_ROUTE}{query}", timeout=timeout) as r:
                    r.raise_for_status()
                    news = await r.json()
            except (aiohttp.ClientError, TimeoutError, OSError, ValueError):
                await asyncio.sleep(RETRY_S)
                continue
            epoch, seq = str(news["epoch"]), int(news["seq"])
            for thread_id in news["threads"]:
                event = self._events.get(thread_id)
                if event is not None:
                    event.set()

    async def wait(
        self, thread_id: str, timeout_s: float, is_done: Callable[[], Awaitable[bool]]
    ) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        # the event exists before the first read: a finish reported after it wakes us,
        # one reported before it is already in the claim table
        event = self._events.setdefault(thread_id, asyncio.Event())
        try:
            while True:
                event.clear()
                if await is_done():
                    return True
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return False
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), min(remaining, SAFETY_POLL_S))
        finally:
            self._events.pop(thread_id, None)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
