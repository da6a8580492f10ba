"""Secrets never leave the process: what masks them wherever durabench records text.

A DSN's password, a `password=` pair, a key given on the command line: every place that
writes a command line, a DSN or an error message into a file, a log or the console
passes it through here first. When a value cannot be parsed well enough to find its
secret (a malformed DSN), the whole value is masked: a lost detail is cheaper than a
leaked password.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence

__all__ = [
    "MASK",
    "SECRET_OPTIONS",
    "is_secret_name",
    "mask_argv",
    "mask_command",
    "mask_dsn",
    "mask_text",
]

MASK = "***"
# command-line options whose value is (or holds) a secret
SECRET_OPTIONS = ("--pg-dsn",)

_SECRET_NAME = re.compile(r"DSN|PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY", re.IGNORECASE)
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^\s/?#]*)@")
_PAIR = re.compile(
    r"(?P<key>\b(?:password|passwd|pwd|sslpassword|api[_-]?key|token|secret)\s*=\s*)"
    r"(?P<value>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[^\s&;]+)",
    re.IGNORECASE,
)


def is_secret_name(name: str) -> bool:
    """An environment variable whose value is a secret (a DSN, a password, a key): it
    travels in a Kubernetes Secret, never in a manifest's plain `value`."""
    return bool(_SECRET_NAME.search(name))


def _mask_userinfo(match: re.Match[str]) -> str:
    user, colon, _ = match["userinfo"].partition(":")
    return f"{match['scheme']}{user}:{MASK}@" if colon else match.group(0)


def mask_text(text: str) -> str:
    """Mask every URL password (`scheme://user:secret@`) and every `password=...` pair
    (conninfo, URL query) in free text: error messages, log lines."""
    text = _URL_USERINFO.sub(_mask_userinfo, text)
    return _PAIR.sub(lambda m: f"{m['key']}{MASK}", text)


def mask_dsn(dsn: str) -> str:
    """postgresql://user:secret@host/db -> postgresql://user:***@host/db, and the
    key=value form's password. A DSN whose structure is not recognised is masked whole:
    it may be a password pasted in the wrong place."""
    scheme, sep, rest = dsn.partition("://")
    if sep:
        userinfo, at, host = rest.rpartition("@")  # a raw '@' in a password: the last one
        if at:
            user, colon, _ = userinfo.partition(":")
            return mask_text(f"{scheme}://{user}{':' + MASK if colon else ''}@{host}")
        authority = rest.split("/", 1)[0]
        port = authority.rpartition(":")[2]
        if ":" not in authority or port.isdigit() or authority.startswith("["):
            return mask_text(dsn)  # host[:port]: nothing secret before the path
        return f"{scheme}://{MASK}"  # user:secret with no host
    if "=" in dsn:
        return mask_text(dsn)
    return MASK if dsn.strip() else dsn


def mask_argv(argv: Sequence[str]) -> list[str]:
    """A command line as it may be recorded: the values of SECRET_OPTIONS masked (as
    `--opt VALUE` and `--opt=VALUE`), and any other argument's embedded secrets too."""
    masked: list[str] = []
    secret_next = False
    for arg in argv:
        if secret_next:
            masked.append(mask_dsn(arg))
            secret_next = False
            continue
        option, eq, value = arg.partition("=")
        if option in SECRET_OPTIONS and eq:
            masked.append(f"{option}={mask_dsn(value)}")
        else:
            secret_next = arg in SECRET_OPTIONS
            masked.append(mask_text(arg))
    return masked


def mask_command(argv: Sequence[str]) -> str:
    """The masked command line as one shell-quoted string (for the manifest)."""
    return " ".join(shlex.quote(a) for a in mask_argv(argv))
