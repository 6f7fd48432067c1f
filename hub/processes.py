"""Background processes with pid files under the data dir (sandboxes, receiver, Dagster).

``make up`` / ``hub up`` start them, ``hub down`` stops them; each writes its output to
``<data dir>/logs/<name>.log``. Processes start in their own session so stopping one
stops its children (gunicorn workers, Dagster's daemon and code server).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from hub.embedded import pid_alive
from hub.settings import Settings


@dataclass(frozen=True)
class ManagedProcess:
    name: str
    pid: int | None
    running: bool
    log: Path


def _run_dir(settings: Settings) -> Path:
    path = settings.data_dir / "run"
    path.mkdir(parents=True, exist_ok=True)
    return path


def log_path(settings: Settings, name: str) -> Path:
    path = settings.data_dir / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path / f"{name}.log"


def _pid_file(settings: Settings, name: str) -> Path:
    return _run_dir(settings) / f"{name}.pid"


def _alive(pid: int) -> bool:
    """Alive, and not a zombie child of ours (reaped here when it is)."""
    if not pid_alive(pid):
        return False
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return True


def status(settings: Settings, name: str) -> ManagedProcess:
    try:
        pid = int(_pid_file(settings, name).read_text().strip())
    except (FileNotFoundError, ValueError):
        pid = None
    return ManagedProcess(name, pid, pid is not None and _alive(pid), log_path(settings, name))


def start(
    settings: Settings,
    name: str,
    argv: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> ManagedProcess:
    """Start ``argv`` in the background unless it already runs."""
    current = status(settings, name)
    if current.running:
        return current
    log = log_path(settings, name)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )
    _pid_file(settings, name).write_text(str(proc.pid))
    return ManagedProcess(name, proc.pid, True, log)


def stop(settings: Settings, name: str, timeout: float = 20.0) -> bool:
    current = status(settings, name)
    pid_file = _pid_file(settings, name)
    if not current.running or current.pid is None:
        pid_file.unlink(missing_ok=True)
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(current.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(current.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(current.pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(current.pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)
    return True


def wait_http(url: str, timeout: float = 60.0) -> bool:
    """Poll ``url`` until it answers (any status below 500)."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return False


def child_pids(pid: int) -> list[int]:
    """The direct children of ``pid`` (from /proc; empty where /proc is absent)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                found.append(int(entry.name))
    return found
