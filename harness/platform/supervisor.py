"""One supervisor loop for the platforms that restart components themselves (local
processes, Docker containers), as Kubernetes restarts a pod: a component marked
`restart` that died is started again after its delay (or the delay a kill fault set for
its next restart), and waited for until it is ready.

The platform says how to tell a component died, how to start it again and how to wait
for it; the loop, the delays and the stop are here. Kubernetes needs none of it: its
controllers restart pods.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping
from typing import Generic, TypeVar

from harness.errors import ComponentError
from harness.platform.base import Handle

__all__ = ["Supervisor"]

H = TypeVar("H", bound=Handle)


class Supervisor(Generic[H]):
    """Watches `components` (a platform's name -> handle, guarded by `lock`) in a daemon
    thread started with the first restartable component."""

    def __init__(
        self,
        name: str,
        components: Mapping[str, H],
        lock: threading.RLock,
        *,
        died: Callable[[H], bool],
        start_again: Callable[[H], H],
        wait_ready: Callable[[H], None],
        poll_s: float,
        transient: tuple[type[Exception], ...] = (),
    ) -> None:
        self.name = name
        self._components = components
        self._lock = lock
        self._died = died
        self._start_again = start_again  # called under the lock; returns the new handle
        self._wait_ready = wait_ready
        self._poll_s = poll_s
        self._transient = transient  # a component removed under us (stop, stop_all)
        self._delays: dict[str, float] = {}
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self) -> None:
        """Make sure the loop runs (idempotent)."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
                self._thread.start()

    def delay_next_restart(self, name: str, delay_s: float) -> None:
        """Wait `delay_s` before restarting this component next time."""
        with self._lock:
            self._delays[name] = delay_s

    def stop(self, timeout_s: float = 2.0) -> None:
        """No more restarts; waits for the loop to end."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)

    def _loop(self) -> None:
        while not self._stopping.wait(self._poll_s):
            with self._lock:
                watched = [c for c in self._components.values() if c.spec.restart]
            for component in watched:
                try:
                    if not self._died(component):
                        continue
                    name = component.spec.name
                    with self._lock:
                        delay = self._delays.pop(name, None)
                    if self._stopping.wait(
                        component.spec.restart_delay_s if delay is None else delay
                    ):
                        return
                    with self._lock:
                        if self._components.get(name) is not component:
                            continue  # stopped, or replaced, while we waited
                        replacement = self._start_again(component)
                    with contextlib.suppress(ComponentError):
                        self._wait_ready(replacement)
                except self._transient:
                    continue
