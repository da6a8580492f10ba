"""Port-forwards: the harness reaches components in pods at the loopback address it
would use on the local platform.

Each forwarded component keeps its port: durabench listens on `127.0.0.1:PORT` and
carries every accepted connection to PORT of the component's current pod through
the API server (the portforward subresource). The pod is looked up per connection,
so after a kill or an eviction the next connection reaches the replacement, and a
connection to a pod that died is cut, as a real TCP connection would be.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["PortForward"]

log = logging.getLogger(__name__)
CHUNK = 64 * 1024


class PortForward:
    """Listens on 127.0.0.1:`port` and pipes each connection to `open_remote()`."""

    def __init__(self, name: str, port: int, open_remote: Callable[[], Any]) -> None:
        self.name = name
        self.port = port
        self._open_remote = open_remote
        self._listener = socket.create_server(("127.0.0.1", port), reuse_port=False)
        self._closed = threading.Event()
        self._thread = threading.Thread(
            target=self._accept, name=f"port-forward {name}:{port}", daemon=True
        )
        self._thread.start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                local, _ = self._listener.accept()
            except OSError:
                return  # closed
            threading.Thread(
                target=self._serve, args=(local,), name=f"port-forward {self.name}", daemon=True
            ).start()

    def _serve(self, local: socket.socket) -> None:
        try:
            remote = self._open_remote()
        except Exception as exc:  # no pod, API refused: this connection fails, not the run
            log.warning("port-forward %s:%s: %s", self.name, self.port, exc)
            local.close()
            return
        try:
            _pipe(local, remote)
        finally:
            local.close()
            remote.close()

    def close(self) -> None:
        """Stop listening (open connections end with their pods or their clients)."""
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self._listener.close()
        self._thread.join(timeout=5)


def _pipe(local: socket.socket, remote: Any) -> None:
    """Copy bytes both ways until either side closes."""
    ends = {local: remote, remote: local}
    while True:
        try:
            readable, _, _ = select.select(list(ends), [], [])
            for source in readable:
                data = source.recv(CHUNK)
                if not data:
                    return
                ends[source].sendall(data)
        except OSError:
            return
