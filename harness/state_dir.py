"""The directory `durabench heal` trusts: private to the invoking user, checked on every use.

A heal entry makes durabench signal a process group or delete an object, so an entry
someone else planted is an attack (a root `heal` SIGKILLing any process whose start time
is readable in /proc). The state directory is therefore per user
(`/tmp/durabench-state-<uid>` unless `DURABENCH_STATE_DIR` or `--state-dir` name
another), created with mode 0700, and refused, saying why, when it is a symbolic link,
is owned by another user or is writable by group or others. Files are opened relative
to the checked directory's descriptor with O_NOFOLLOW, so a path swapped after the
check, or a symbolic link planted in it, is never followed; a file owned by another
user is refused. Writes go to a fresh temporary file (O_CREAT|O_EXCL) in the same
directory, renamed over the old one: a reader never sees half a file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

from harness.errors import DurabenchError

__all__ = [
    "MAX_FILE_BYTES",
    "StateDir",
    "StateDirError",
    "default_state_dir",
    "read_private",
    "write_private",
]

ENV = "DURABENCH_STATE_DIR"
MAX_FILE_BYTES = 16 * 1024 * 1024  # a state file of thousands of entries is far smaller
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class StateDirError(DurabenchError):
    """A state directory or file durabench must not trust (the message says why)."""


def default_state_dir() -> Path:
    """`$DURABENCH_STATE_DIR`, else `/tmp/durabench-state-<uid>`: one fixed place per
    user, so a run and a later `heal` (from cron, another shell, sudo) agree on it."""
    configured = os.environ.get(ENV)
    return Path(configured) if configured else Path(f"/tmp/durabench-state-{os.geteuid()}")


def _refusal(what: str, path: Path, info: os.stat_result, *, directory: bool) -> str | None:
    """Why `info` (of `path`) is not trustworthy, or None."""
    me = os.geteuid()
    if directory and not stat.S_ISDIR(info.st_mode):
        return f"refusing {what} {path}: it is not a directory"
    if not directory and not stat.S_ISREG(info.st_mode):
        return f"refusing {what} {path}: it is not a regular file"
    if info.st_uid != me:
        return (
            f"refusing {what} {path}: it is owned by uid {info.st_uid}, not by you "
            f"(uid {me}); remove it or point --state-dir / ${ENV} at a directory of yours"
        )
    if directory and info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return (
            f"refusing {what} {path}: it is writable by others "
            f"(mode {stat.S_IMODE(info.st_mode):04o}); `chmod 700 {path}` makes it private"
        )
    return None


class StateDir:
    """A checked state directory, held open by descriptor; every file operation is
    relative to it. Use as a context manager (or `close`)."""

    def __init__(self, path: Path, *, create: bool = True) -> None:
        self.path = path
        if create and not os.path.lexists(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError):  # someone else's is checked below
                os.mkdir(path, 0o700)
        self.fd = -1
        try:
            self.fd = os.open(path, _DIR_FLAGS)
        except FileNotFoundError:
            raise
        except OSError as exc:
            if os.path.islink(path):
                raise StateDirError(
                    f"refusing state directory {path}: it is a symbolic link"
                ) from None
            raise StateDirError(f"cannot open state directory {path}: {exc.strerror}") from None
        try:
            self.check()
        except StateDirError:
            self.close()
            raise

    def check(self) -> None:
        """The directory (by descriptor) is still a private directory of this user."""
        reason = _refusal("state directory", self.path, os.fstat(self.fd), directory=True)
        if reason is not None:
            raise StateDirError(reason)

    def __enter__(self) -> StateDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def names(self, suffix: str = ".json") -> list[str]:
        """The files ending with `suffix` (temporary files, which start with a dot, left out)."""
        self.check()
        return sorted(n for n in os.listdir(self.fd) if n.endswith(suffix) and n[0] != ".")

    def read(self, name: str) -> bytes:
        """A file's bytes: StateDirError when it is a symbolic link, not a regular file,
        owned by someone else or too large; FileNotFoundError when it is gone."""
        self.check()
        return read_private(self.fd, name, self.path / name)

    def write(self, name: str, data: bytes) -> None:
        self.check()
        write_private(self.fd, name, data)

    def unlink(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=self.fd)


def read_private(dir_fd: int, name: str, shown: Path) -> bytes:
    """Read `name` in the directory `dir_fd` without following a symbolic link, only when
    it is a regular file of this user (at most MAX_FILE_BYTES)."""
    try:
        fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise StateDirError(f"refusing state file {shown}: it is a symbolic link") from None
        if isinstance(exc, FileNotFoundError):
            raise
        raise StateDirError(f"cannot open {shown}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        reason = _refusal("state file", shown, info, directory=False)
        if reason is not None:
            raise StateDirError(reason)
        if info.st_size > MAX_FILE_BYTES:
            raise StateDirError(
                f"refusing state file {shown}: {info.st_size} bytes, more than {MAX_FILE_BYTES}"
            )
        return b"".join(_chunks(fd))
    finally:
        os.close(fd)


def _chunks(fd: int) -> Iterator[bytes]:
    total = 0
    while chunk := os.read(fd, 1 << 16):
        total += len(chunk)
        if total > MAX_FILE_BYTES:
            raise StateDirError(f"a state file grew beyond {MAX_FILE_BYTES} bytes while read")
        yield chunk


def write_private(dir_fd: int, name: str, data: bytes) -> None:
    """Replace `name` in the directory `dir_fd` atomically: a fresh temporary file
    (O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600) renamed over it. A symbolic link at `name`
    is replaced, never followed."""
    tmp = f".{name}.{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, _WRITE_FLAGS, 0o600, dir_fd=dir_fd)
    try:
        with os.fdopen(fd, "wb", closefd=True) as handle:
            handle.write(data)
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise
