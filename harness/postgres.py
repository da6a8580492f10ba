"""The embedded Postgres server, and the DSN and schema every Postgres backend uses.

With no `--pg-dsn`, a backend asks `postgres_components` for one `store` component:
a real Postgres on a free 127.0.0.1 port, its data directory under the backend's
work dir, `fsync=on` and `synchronous_commit=on` (durability numbers must be
honest), password (scram) authentication on 127.0.0.1 only. The component runs
`python -m harness.postgres serve`, which runs initdb on the first start only and
then execs `postgres` in the foreground, so a restart (the fault issue: immediate
shutdown, then start) reuses the same data directory. The platform's readiness
check is the TCP port; a server that accepts TCP may still be starting, so callers
also `wait_ready` (SELECT 1) before use.

Postgres refuses to run as root. As root, `serve` makes the data directory belong
to an unprivileged user (`$DURABENCH_PG_USER`, else `postgres` when it exists, else
a `durabench` system user it creates, as the pgserver wheel does) and drops to that
user before initdb and postgres. That user must reach the data directory, and
durabench changes no permission outside its own directories: a directory of the
run's own results (private, 0700) lets the server's group pass (0710, group of the
server user); when any other directory on the way is closed to it (a home directory,
a private temporary directory), the data directory moves to a per-run directory
under `$DURABENCH_PG_ROOT` (default /var/lib/durabench/postgres, created 0711 by
durabench) and the store directory becomes a symlink to it. A moved data directory
lives as long as that symlink: the next move removes those whose link is gone.
As a platform container's first process (where a moved directory would not outlive
the container) and when the root itself is out of the user's reach, `serve` refuses
with the reason.

With `--pg-dsn`, durabench uses that server: each run gets its own schema
(`schema_for`) and touches nothing else. Workers reach it through
`with_search_path(dsn, schema)`.

Binaries come from `$DURABENCH_PG_BIN`, else PATH, else
`/usr/lib/postgresql/<highest>/bin`, else the `pgserver` wheel
(`pip install 'durabench[postgres]'`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import glob
import grp
import hashlib
import importlib.util
import os
import pwd
import re
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from harness.errors import BackendError, ComponentError
from harness.masking import mask_dsn, mask_text
from harness.platform.base import ComponentSpec, free_port

__all__ = [
    "DEFAULT_SETTINGS",
    "PG_BIN_ENV",
    "PG_ROOT_ENV",
    "PG_USER_ENV",
    "EmbeddedServer",
    "StoreSite",
    "backend_dsn",
    "check_connection",
    "create_schema",
    "embedded_server",
    "find_postgres_bin",
    "mask_dsn",
    "postgres_components",
    "schema_for",
    "schema_name",
    "server_user_problem",
    "wait_ready",
    "wait_ready_async",
    "with_search_path",
    "worker_dsn",
]

BINARIES = ("pg_ctl", "initdb", "postgres")
SYSTEM_BIN_GLOB = "/usr/lib/postgresql/*/bin"
PG_USER_ENV = "DURABENCH_PG_USER"
PG_BIN_ENV = "DURABENCH_PG_BIN"
PG_ROOT_ENV = "DURABENCH_PG_ROOT"  # where data directories move when root runs Postgres
DEFAULT_PG_ROOT = Path("/var/lib/durabench/postgres")
ROOT_DIR_MODE = 0o711  # the move root: the server user passes, nobody lists
OWN_LEVELS_MAX = 4  # how far above the store durabench looks for its results directory
PASSWORD_ENV = "DURABENCH_PG_PASSWORD"  # the wrapper reads the superuser password here
FALLBACK_PG_USER = "durabench"
SUPERUSER = "postgres"  # the role initdb creates; scram password on 127.0.0.1
DATABASE = "postgres"
CONNECT_TIMEOUT_S = 5
READY_TIMEOUT_S = 90.0  # first start includes initdb, on a loaded 2-core machine
MAX_IDENTIFIER = 63
DEFAULT_SETTINGS: Mapping[str, str] = {
    "fsync": "on",
    "synchronous_commit": "on",
    "full_page_writes": "on",
    "max_connections": "300",
    "listen_addresses": "127.0.0.1",
    "unix_socket_directories": "",  # TCP only: socket paths under deep work dirs are too long
}
_PR_SET_PDEATHSIG = 1


# -- binaries --------------------------------------------------------------------------


def _complete(directory: Path) -> bool:
    return all((directory / name).is_file() for name in BINARIES)


def _version_key(path: str) -> tuple[int, ...]:
    version = Path(path).parent.name
    return tuple(int(p) for p in re.findall(r"\d+", version)) or (0,)


def find_postgres_bin() -> Path:
    """The directory holding pg_ctl, initdb and postgres: `$DURABENCH_PG_BIN` when set,
    else PATH, then the highest `/usr/lib/postgresql/*/bin`, then the pgserver wheel."""
    tried = []
    forced = os.environ.get(PG_BIN_ENV)
    if forced:
        if _complete(Path(forced)):
            return Path(forced)
        raise ComponentError(
            f"${PG_BIN_ENV}={forced}: expected {', '.join(BINARIES)} in that directory"
        )
    on_path = shutil.which("postgres") or shutil.which("pg_ctl")
    if on_path:
        directory = Path(on_path).resolve().parent  # symlinks: postgres finds share/ next to it
        if _complete(directory):
            return directory
        tried.append(f"PATH ({directory} lacks some of {', '.join(BINARIES)})")
    else:
        tried.append("PATH")
    for candidate in sorted(glob.glob(SYSTEM_BIN_GLOB), key=_version_key, reverse=True):
        if _complete(Path(candidate)):
            return Path(candidate)
    tried.append(SYSTEM_BIN_GLOB)
    spec = importlib.util.find_spec("pgserver")
    if spec is not None and spec.origin is not None:
        bundled = Path(spec.origin).parent / "pginstall" / "bin"
        if _complete(bundled):
            return bundled
        tried.append(f"pgserver wheel ({bundled} incomplete)")
    else:
        tried.append("pgserver wheel (not installed)")
    raise ComponentError(
        "no Postgres binaries (pg_ctl, initdb, postgres) found; tried "
        + ", ".join(tried)
        + ". Fix: pip install 'durabench[postgres]' (bundled binaries via pgserver), "
        "or apt-get install postgresql, or pass --pg-dsn to use an existing server"
    )


# -- DSNs and schemas ------------------------------------------------------------------


class ExternalServer(Protocol):
    @property
    def pg_dsn(self) -> str | None:
        """The user's server (`--pg-dsn`); None = durabench runs an embedded one."""
        ...


class StoreSite(Protocol):
    """What the helpers below need from the caller to place a store: a backend passes
    its `BackendEnv`, which has all of it (this module knows nothing else of backends)."""

    @property
    def bench_id(self) -> str:
        """Names the run's schemas."""
        ...

    @property
    def workdir(self) -> Path:
        """The embedded server's directory is `<workdir>/<component name>`."""
        ...

    @property
    def external(self) -> ExternalServer: ...

    def dial(self, link: str, host: str, port: int) -> tuple[str, int]:
        """The address a worker dials to reach host:port over `link`."""
        ...


@dataclass(frozen=True)
class EmbeddedServer:
    """One embedded server: its directory (data in `<dir>/data`), port and superuser
    password (scram on 127.0.0.1, so other local users cannot walk in)."""

    directory: Path
    port: int
    password: str
    # how many directories above `directory` are durabench's own (up to the results
    # directory that holds it): `serve` may let the server user pass those, no others
    own_levels: int = 0

    @property
    def dsn(self) -> str:
        return f"postgresql://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/{DATABASE}"

    def component(
        self, name: str = "store", settings: Mapping[str, str] | None = None
    ) -> ComponentSpec:
        """The `store` component that runs it (restartable on the same data directory)."""
        argv = [
            sys.executable,
            "-m",
            "harness.postgres",
            "serve",
            "--datadir",
            str(self.directory),
            "--port",
            str(self.port),
            "--own-levels",
            str(self.own_levels),
        ]
        for key, value in (settings or {}).items():
            argv += ["--set", f"{key}={value}"]
        return ComponentSpec(
            name=name,
            role="store",
            argv=tuple(argv),
            port=self.port,
            env={PASSWORD_ENV: self.password},
            ready_timeout_s=READY_TIMEOUT_S,
        )


_servers: dict[Path, EmbeddedServer] = {}  # directory -> server, in this process


def embedded_server(directory: Path) -> EmbeddedServer:
    """The embedded server for a directory: a free port and a fresh password, chosen
    once per directory in this process (so components() and the DSN agree)."""
    # the parent resolved, not the directory itself: `serve` may make it a symlink to a
    # moved data directory, and the same directory must keep its port and password
    directory = directory.absolute().parent.resolve() / directory.name
    if directory not in _servers:
        _servers[directory] = EmbeddedServer(
            directory, free_port(), secrets.token_hex(16), _own_levels(directory)
        )
    return _servers[directory]


def _own_levels(directory: Path) -> int:
    """Directories above `directory` up to the durabench results directory (the one with
    a manifest.json) that holds it; 0 when it is not inside one."""
    for level, parent in enumerate(directory.parents, start=1):
        if level > OWN_LEVELS_MAX:
            break
        if (parent / "manifest.json").is_file():
            return level
    return 0


def postgres_components(
    env: StoreSite, name: str = "store", settings: Mapping[str, str] | None = None
) -> list[ComponentSpec]:
    """The embedded server as one `store` component, or [] when `--pg-dsn` is set.
    `settings` override DEFAULT_SETTINGS (e.g. {"synchronous_commit": "off"})."""
    if env.external.pg_dsn:
        return []
    find_postgres_bin()  # fail now, with the fix, rather than in the component log
    return [embedded_server(env.workdir / name).component(name, settings)]


def backend_dsn(env: StoreSite, name: str = "store") -> str:
    """The DSN workers use: the external server's, or the embedded server's."""
    if env.external.pg_dsn:
        return env.external.pg_dsn
    return embedded_server(env.workdir / name).dsn


def worker_dsn(env: StoreSite, dsn: str) -> str:
    """The DSN a WORKER dials: host and port routed over the `worker->store` link (through
    the fault proxy when the scenario cuts that link). The harness's own reads dial `dsn`."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(dsn)
    host = str(params.get("host") or "127.0.0.1")
    if host.startswith("/"):
        return dsn  # a Unix socket: no TCP link to cut
    port = int(params.get("port") or 5432)
    dial_host, dial_port = env.dial("worker->store", host, port)
    params.update(host=dial_host, port=str(dial_port))
    return make_conninfo("", **params)


def schema_name(bench_id: str, backend_name: str) -> str:
    """`db_<bench id>_<backend>`, lower case, a valid unquoted identifier of at most 63
    characters (a hash of the full name keeps long names unique)."""
    raw = f"db_{bench_id}_{backend_name}".lower()
    name = re.sub(r"[^a-z0-9_]", "_", raw)
    if len(name) > MAX_IDENTIFIER:
        digest = hashlib.blake2b(raw.encode(), digest_size=5).hexdigest()
        name = f"{name[: MAX_IDENTIFIER - len(digest) - 1]}_{digest}"
    return name


def schema_for(env: StoreSite, backend_name: str) -> str:
    """This run's schema for one backend (see `schema_name`)."""
    return schema_name(env.bench_id, backend_name)


def with_search_path(dsn: str, schema: str) -> str:
    """The DSN (as key=value conninfo) with `search_path` set to `schema` on connect."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    try:
        params = conninfo_to_dict(dsn)
    except Exception as exc:
        raise BackendError(f"invalid Postgres DSN {mask_dsn(dsn)}: {exc}") from None
    options = str(params.get("options") or "")
    options = f"{options} -csearch_path={schema}".strip()
    return make_conninfo(dsn, options=options)


def _target(dsn: str) -> str:
    """host:port as user U, database D — what a connection attempt tried."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = conninfo_to_dict(dsn)
    except Exception:
        return "(unparsable DSN)"
    host = params.get("host") or params.get("hostaddr") or "localhost (default socket)"
    port = params.get("port") or "5432"
    user = params.get("user") or os.environ.get("PGUSER") or pwd.getpwuid(os.getuid()).pw_name
    dbname = params.get("dbname") or user
    return f"{host}:{port} as user {user!r}, database {dbname!r}"


def _explain(message: str) -> str:
    lowered = message.lower()
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        return "wrong credentials (password authentication failed)"
    if "does not exist" in lowered and "database" in lowered:
        return "the database does not exist (create it, or name an existing one)"
    if "role" in lowered and "does not exist" in lowered:
        return "the user (role) does not exist"
    if "connection refused" in lowered:
        return "connection refused: no server is listening there"
    if "timeout" in lowered or "timed out" in lowered:
        return f"no answer within {CONNECT_TIMEOUT_S}s (host unreachable or firewalled)"
    if "pg_hba.conf" in lowered:
        return "the server refuses this client (pg_hba.conf)"
    return "cannot connect"


def check_connection(dsn: str) -> None:
    """Connect once and run `SELECT 1`; raise one BackendError naming the masked DSN,
    what was tried and what is wrong (unreachable, credentials, missing database)."""
    import psycopg

    target = _target(dsn)
    try:
        with psycopg.connect(dsn, connect_timeout=CONNECT_TIMEOUT_S, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        detail = " ".join(str(exc).split())
        raise BackendError(
            f"Postgres {mask_dsn(dsn)}: {_explain(detail)}; tried to connect to {target} "
            f"and run SELECT 1 (server said: {mask_text(detail)[:300]})"
        ) from None


def wait_ready(dsn: str, timeout_s: float = READY_TIMEOUT_S) -> None:
    """Block until `SELECT 1` works (a started server accepts TCP before it can serve)."""
    import psycopg

    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        try:
            with psycopg.connect(dsn, connect_timeout=CONNECT_TIMEOUT_S, autocommit=True) as conn:
                conn.execute("SELECT 1")
            return
        except psycopg.Error as exc:
            last = " ".join(str(exc).split())
            time.sleep(0.1)
    raise ComponentError(
        f"Postgres {mask_dsn(dsn)} did not answer SELECT 1 within {timeout_s:g}s: {last}"
    )


async def wait_ready_async(dsn: str, timeout_s: float = READY_TIMEOUT_S) -> None:
    """`wait_ready` for async callers (backend setup)."""
    await asyncio.to_thread(wait_ready, dsn, timeout_s)


def create_schema(dsn: str, schema: str) -> None:
    """CREATE SCHEMA IF NOT EXISTS — the only thing durabench creates outside its tables."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(dsn, connect_timeout=CONNECT_TIMEOUT_S, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))


# -- the `serve` wrapper (runs as the store component) ---------------------------------


def _die_with_parent() -> None:
    """Re-arm PR_SET_PDEATHSIG: Linux clears it when the process changes its uid."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:
        sys.exit("durabench exited before its Postgres started")


def _server_user() -> pwd.struct_passwd:
    """The unprivileged user to run Postgres as when we are root."""
    wanted = os.environ.get(PG_USER_ENV)
    if wanted:
        try:
            return pwd.getpwnam(wanted)
        except KeyError:
            raise ComponentError(f"${PG_USER_ENV}={wanted!r}: no such user") from None
    for name in (SUPERUSER, FALLBACK_PG_USER):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    useradd = shutil.which("useradd")
    if useradd is None:
        raise ComponentError(
            "Postgres refuses to run as root and there is no 'postgres' user nor useradd to "
            f"create one; create an unprivileged user and set ${PG_USER_ENV}"
        )
    done = subprocess.run(
        [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", FALLBACK_PG_USER],
        capture_output=True,
        text=True,
        check=False,
    )
    try:  # a concurrent start may have created it first
        return pwd.getpwnam(FALLBACK_PG_USER)
    except KeyError:
        raise ComponentError(
            f"cannot create the system user {FALLBACK_PG_USER!r} for Postgres: "
            f"{done.stderr.strip()}; create one and set ${PG_USER_ENV}"
        ) from None


def server_user_problem() -> str | None:
    """Why the embedded server could not drop root here, or None (for `durabench doctor`)."""
    if os.geteuid() != 0:
        return None
    wanted = os.environ.get(PG_USER_ENV)
    if wanted:
        try:
            pwd.getpwnam(wanted)
        except KeyError:
            return f"${PG_USER_ENV}={wanted!r}: no such user"
        return None
    for name in (SUPERUSER, FALLBACK_PG_USER):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return None
    if shutil.which("useradd") is None:
        return (
            "running as root with no 'postgres' user and no useradd: create an unprivileged "
            f"user and set ${PG_USER_ENV}"
        )
    return None


def _groups_of(user: pwd.struct_passwd) -> set[int]:
    return {user.pw_gid} | {g.gr_gid for g in grp.getgrall() if user.pw_name in g.gr_mem}


def _passable(user: pwd.struct_passwd, directory: Path) -> bool:
    """Whether `user` may search `directory` (the permission bits that apply to it)."""
    st = directory.stat()
    if st.st_uid == user.pw_uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid in _groups_of(user):
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def _container_init() -> bool:
    """Whether this is a container's first process (the docker and Kubernetes platforms
    run the store so): what it writes outside its volumes dies with the container."""
    return os.getpid() == 1


def _let_pass(user: pwd.struct_passwd, directory: Path) -> None:
    """One of durabench's own directories: the server user's group may pass (0710)."""
    os.chown(directory, -1, user.pw_gid)
    directory.chmod(stat.S_IMODE(directory.stat().st_mode) | stat.S_IXGRP)


def _closed_to(user: pwd.struct_passwd, directory: Path) -> list[Path]:
    return [p for p in reversed(directory.parents) if not _passable(user, p)]


def _refusal(user: pwd.struct_passwd, blocked: Path, why: str) -> ComponentError:
    mode = oct(stat.S_IMODE(blocked.stat().st_mode))
    return ComponentError(
        f"Postgres runs as {user.pw_name!r} (it refuses root) and cannot pass {blocked} "
        f"(mode {mode}); durabench changes no permissions outside its own directories, "
        f"and {why}. Fix: set ${PG_ROOT_ENV} to a directory {user.pw_name!r} can reach, "
        "run durabench as an unprivileged user, or give --pg-dsn"
    )


def _move_root(user: pwd.struct_passwd) -> Path:
    """The root that moved data directories live under: created 0711 by durabench,
    owned by root and writable by nobody else, reachable by the server user."""
    root = Path(os.environ.get(PG_ROOT_ENV) or DEFAULT_PG_ROOT).absolute()
    missing = [p for p in (root, *root.parents) if not p.exists()]
    for directory in reversed(missing):
        directory.mkdir(mode=ROOT_DIR_MODE)
        directory.chmod(ROOT_DIR_MODE)
    st = root.lstat()
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise ComponentError(f"${PG_ROOT_ENV}={root}: not a directory (a symlink is refused)")
    if st.st_uid != 0 or st.st_mode & 0o022:
        raise ComponentError(
            f"${PG_ROOT_ENV}={root}: must be owned by root and writable by nobody else "
            f"(owner uid {st.st_uid}, mode {oct(stat.S_IMODE(st.st_mode))})"
        )
    closed = [*_closed_to(user, root), *([] if _passable(user, root) else [root])]
    if closed:
        raise _refusal(user, closed[0], f"{root} is not reachable from /")
    return root


def _postmaster_alive(directory: Path) -> bool:
    try:
        pid = int((directory / "data" / "postmaster.pid").read_text().split()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return False
    return True


def _collect_garbage(root: Path) -> None:
    """Remove moved data directories whose symlink in a results directory is gone."""
    for origin in root.glob("*.origin"):
        entry = root / origin.stem
        with contextlib.suppress(OSError):
            link = Path(origin.read_text().strip())
            if link.is_symlink() and os.readlink(link) == str(entry):
                continue
            if entry.is_symlink() or _postmaster_alive(entry):
                continue
            shutil.rmtree(entry, ignore_errors=True)
            origin.unlink()


def _move_away(user: pwd.struct_passwd, base: Path, blocked: Path) -> Path:
    """A per-run data directory under the move root; `base` becomes a symlink to it."""
    if _container_init():
        raise _refusal(
            user,
            blocked,
            "in a platform's container a moved data directory would not outlive it",
        )
    if base.exists() and any(base.iterdir()):
        raise _refusal(user, blocked, f"{base} already holds data that cannot be moved")
    root = _move_root(user)
    _collect_garbage(root)
    label = "-".join(p.name for p in (base.parent.parent, base.parent, base))
    label = re.sub(r"[^A-Za-z0-9_-]", "_", label)[-80:]
    digest = hashlib.blake2b(str(base).encode(), digest_size=6).hexdigest()
    target = root / f"{label}-{digest}"
    target.mkdir(mode=0o700, exist_ok=True)
    if base.exists():
        base.rmdir()
    base.symlink_to(target, target_is_directory=True)
    origin = root / f"{target.name}.origin"
    origin.write_text(f"{base}\n")
    origin.chmod(0o600)
    print(f"durabench: {blocked} is closed to {user.pw_name!r}: data in {target}", flush=True)
    return target


def _place_for(user: pwd.struct_passwd, base: Path, own_levels: int) -> Path:
    """Where the server's directory goes so that `user` reaches it with no permission
    changed outside durabench's own directories (see the module docstring)."""
    if base.is_symlink():  # moved on an earlier start: the same data again
        target = base.resolve()
        closed = _closed_to(user, target)
        if closed:
            raise _refusal(user, closed[0], f"{base} links to {target} behind it")
        return target
    own = set(base.parents[i] for i in range(min(own_levels, len(base.parents))))
    closed = _closed_to(user, base)
    foreign = [p for p in closed if p not in own]
    if foreign:
        return _move_away(user, base, foreign[0])
    for directory in closed:
        _let_pass(user, directory)
    base.mkdir(exist_ok=True)
    return base


def _prepare_as_root(base: Path, own_levels: int) -> Path:
    user = _server_user()
    base = _place_for(user, base, own_levels)
    for path in [base, *base.rglob("*")]:
        with contextlib.suppress(FileNotFoundError):
            os.lchown(path, user.pw_uid, user.pw_gid)
    os.setgroups([])
    os.setgid(user.pw_gid)
    os.setuid(user.pw_uid)
    os.environ["HOME"] = str(base)
    os.environ["USER"] = os.environ["LOGNAME"] = user.pw_name
    return base


def _initdb(bindir: Path, data: Path, password: str) -> None:
    """initdb into a sibling directory, then rename: a killed initdb leaves no half cluster."""
    staging = data.with_name(data.name + ".init")
    shutil.rmtree(staging, ignore_errors=True)
    # the password goes through a private directory of the server user, never argv
    private = Path(tempfile.mkdtemp(prefix="durabench-initdb-"))
    pwfile = private / "pwfile"
    pwfile.write_text(password + "\n")
    pwfile.chmod(0o600)
    command = [
        str(bindir / "initdb"),
        "-D",
        str(staging),
        "-U",
        SUPERUSER,
        "--auth-local=trust",
        "--auth-host=scram-sha-256",
        f"--pwfile={pwfile}",
        "--encoding=UTF8",
        "--locale=C",
        "--no-instructions",
    ]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, check=False, cwd=staging.parent
        )
    finally:
        shutil.rmtree(private, ignore_errors=True)
    if done.returncode != 0:
        raise ComponentError(
            f"initdb failed ({' '.join(command)}):\n{done.stdout}\n{done.stderr}".strip()
        )
    staging.rename(data)


NETWORK_HBA = "host all all all scram-sha-256  # durabench --admit-network\n"


def admit_network(data: Path) -> None:
    """Password clients from any host (a pod on Kubernetes: other pods dial its Service)."""
    hba = data / "pg_hba.conf"
    text = hba.read_text()
    if NETWORK_HBA not in text:
        hba.write_text(text + NETWORK_HBA)


def serve(
    base: Path,
    port: int,
    settings: Mapping[str, str],
    *,
    network: bool = False,
    own_levels: int = 0,
) -> None:
    """initdb on the first start only, then exec postgres in the foreground; `network`
    listens on every address and admits password clients from any host; `own_levels`
    directories above `base` are durabench's own (see the module docstring)."""
    bindir = find_postgres_bin()
    try:
        if not base.is_symlink():
            base.parent.mkdir(parents=True, exist_ok=True)
            if os.geteuid() != 0:
                base.mkdir(exist_ok=True)
    except OSError as exc:
        raise ComponentError(f"data directory {base} is not writable: {exc}") from None
    if os.geteuid() == 0:
        try:
            base = _prepare_as_root(base, own_levels)
        except OSError as exc:
            raise ComponentError(f"cannot prepare the data directory {base}: {exc}") from None
    _die_with_parent()
    data = base / "data"
    if not (data / "PG_VERSION").is_file():
        password = os.environ.get(PASSWORD_ENV)
        if not password:
            raise ComponentError(f"${PASSWORD_ENV} must hold the superuser password for initdb")
        _initdb(bindir, data, password)
    data.chmod(0o700)
    if network:
        admit_network(data)
        settings = {"listen_addresses": "*", **settings}
    argv = [str(bindir / "postgres"), "-D", str(data), "-p", str(port)]
    for key, value in {**DEFAULT_SETTINGS, **settings}.items():
        argv += ["-c", f"{key}={value}"]
    os.environ.pop(PASSWORD_ENV, None)
    print(f"durabench: exec {' '.join(argv)}", flush=True)
    os.chdir(data)
    os.execv(argv[0], argv)


def _setting(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r}: expected name=value")
    return key, value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m harness.postgres")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("serve", help="run an embedded Postgres in the foreground")
    run.add_argument("--datadir", required=True, type=Path)
    run.add_argument("--port", required=True, type=int)
    run.add_argument(
        "--own-levels",
        type=int,
        default=0,
        help="how many directories above DATADIR are durabench's own (its results directory)",
    )
    run.add_argument("--set", dest="settings", action="append", type=_setting, default=[])
    run.add_argument(
        "--admit-network",
        action="store_true",
        help="listen on every address, password clients from any host (Kubernetes pods)",
    )
    commands.add_parser("bin", help="print the directory of the Postgres binaries")
    args = parser.parse_args(argv)
    try:
        if args.command == "bin":
            print(find_postgres_bin())
            return
        serve(
            args.datadir.absolute(),
            args.port,
            dict(args.settings),
            network=args.admit_network,
            own_levels=args.own_levels,
        )
    except ComponentError as exc:
        sys.exit(f"durabench postgres: {exc}")


if __name__ == "__main__":
    main()
