"""Heal entries: one thing durabench changed or started, as typed data it can undo.

An injector (or a platform) returns an entry the moment it changes something: a stopped
process, a paused container, a cut link, a fault switch, a started component. The state
file (harness/healing.py) keeps each entry as JSON with its class's tag under `"type"`,
so `durabench heal` from another process reads it back into the same class and calls
`undo`. Each class registers its tag when it is defined (`tag=` in the class line):
adding a kind of entry touches only the module that defines it.

`undo` works without the run that made the entry (that durabench died): it must touch
only what the entry identifies (a pid with its kernel start time, a container or object
still labelled with the entry's run) and must never raise for "already gone".
"""

from __future__ import annotations

import dataclasses
import json
import urllib.request
from pathlib import Path
from typing import Any, ClassVar

__all__ = [
    "HealEntry",
    "UnknownEntry",
    "entry_from_json",
    "process_start_time",
    "request",
    "same_process",
]

TAG_KEY = "type"  # the key state files have always used


def process_start_time(pid: int) -> int | None:
    """The kernel's start time of a process (field 22 of /proc/PID/stat), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def same_process(pid: int, start_time: int | None) -> bool:
    """The recorded process is still the same one (pid and kernel start time match)."""
    return pid > 0 and start_time is not None and process_start_time(pid) == start_time


def request(method: str, url: str, body: dict[str, Any] | None = None) -> None:
    """One blocking HTTP call of an `undo` (a service's admin API on loopback); OSError
    when nothing answers."""
    data = json.dumps(body).encode() if body is not None else None
    call = urllib.request.Request(url, data=data, method=method)
    call.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(call, timeout=3):
        pass


class UnknownEntry(ValueError):
    """A state file names an entry kind this durabench does not know."""


_KINDS: dict[str, type[HealEntry]] = {}


@dataclasses.dataclass(frozen=True)
class HealEntry:
    """Base of every heal entry (subclasses are frozen dataclasses with `tag=`)."""

    tag: ClassVar[str] = ""
    counter: ClassVar[str] = ""  # the HealReport field `durabench heal` counts it under
    thaw_first: ClassVar[bool] = False  # undone before anything else is ended
    durable: ClassVar[bool] = True  # kept in the state file (False: in-run only)

    def __init_subclass__(cls, *, tag: str = "", **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if tag:
            if tag in _KINDS and _KINDS[tag].__qualname__ != cls.__qualname__:
                raise TypeError(f"heal entry tag {tag!r} is taken by {_KINDS[tag].__name__}")
            cls.tag = tag
            _KINDS[tag] = cls

    def to_json(self) -> dict[str, Any]:
        return {TAG_KEY: self.tag, **dataclasses.asdict(self)}

    def undo(self) -> bool:
        """Undo it from any process; True when something was undone, False when it was
        already gone. OSError: it could not be reached."""
        raise NotImplementedError(f"{type(self).__name__} cannot be undone after a crash")


def _tuples(value: Any) -> Any:
    """JSON lists back into the tuples frozen entries hold."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


def entry_from_json(data: dict[str, Any]) -> HealEntry:
    """The entry a state file holds; UnknownEntry (a ValueError) when its kind is unknown,
    ValueError when its fields do not match."""
    tag = str(data.get(TAG_KEY, ""))
    cls = _KINDS.get(tag)
    if cls is None:
        raise UnknownEntry(f"unknown heal entry kind {tag!r}")
    names = {f.name for f in dataclasses.fields(cls)}
    try:
        return cls(**{k: _tuples(v) for k, v in data.items() if k in names})
    except TypeError as exc:
        raise ValueError(f"heal entry {tag!r}: {exc}") from None
