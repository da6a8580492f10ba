"""free_port: a port the kernel will not hand to anyone else before our component binds it."""

from __future__ import annotations

import socket

import pytest

from harness.platform import base
from harness.platform.base import EPHEMERAL_RANGE, LOWEST_PICKED_PORT, free_port


def test_a_picked_port_is_below_the_kernels_ephemeral_range_and_never_picked_twice() -> None:
    ephemeral_low = int(EPHEMERAL_RANGE.read_text().split()[0])
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)
    assert all(LOWEST_PICKED_PORT <= port < ephemeral_low for port in ports)


def test_a_port_something_listens_on_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    free_now = (port for port in range(20000, 32000, 7) if base._bindable(port))
    occupied, spare = next(free_now), next(free_now)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", occupied))
        busy.listen()
        candidates = iter([occupied, spare])
        monkeypatch.setattr(base._random, "randrange", lambda low, high: next(candidates))
        assert free_port() == spare
