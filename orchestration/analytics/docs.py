"""The dbt docs site (lineage, column descriptions): generate it, serve it on a port.

``hub dbt docs`` runs both in the foreground; ``start_dbt_docs`` runs the server in the
background for ``make up`` (orchestration/stack.py), through hub.processes like the
receiver and Dagster.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hub.settings import Settings
from orchestration.dbt_env import dbt_env

DBT_EXECUTABLE = str(Path(sys.executable).with_name("dbt"))
DBT_PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"
DOCS_PORT = 8080
PROCESS_NAME = "dbt-docs"


def _dirs() -> list[str]:
    return ["--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR)]


def docs_env(settings: Settings) -> dict[str, str]:
    return os.environ | dbt_env(settings)


def generate_docs(settings: Settings) -> Path:
    """``dbt docs generate`` (manifest + catalog read from the database); returns the
    target folder holding index.html. Raises RuntimeError with dbt's last lines."""
    proc = subprocess.run(
        [DBT_EXECUTABLE, "docs", "generate", *_dirs()],
        env=docs_env(settings),
        cwd=DBT_PROJECT_DIR,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.splitlines()[-10:])
        raise RuntimeError(f"dbt docs generate failed:\n{tail}")
    return DBT_PROJECT_DIR / "target"


def serve_argv(port: int = DOCS_PORT, host: str = "127.0.0.1") -> list[str]:
    return [
        DBT_EXECUTABLE,
        "docs",
        "serve",
        "--port",
        str(port),
        "--host",
        host,
        "--no-browser",
        *_dirs(),
    ]


def start_dbt_docs(settings: Settings, port: int = DOCS_PORT) -> str:
    """Generate the docs and serve them in the background (``make up``); one line for
    the stack's summary. A failed generate (no database yet) is reported, not raised."""
    from hub import processes

    try:
        generate_docs(settings)
    except RuntimeError as exc:
        return f"dbt docs          not generated: {str(exc).splitlines()[0]}"
    proc = processes.start(
        settings, PROCESS_NAME, serve_argv(port), env=dbt_env(settings), cwd=DBT_PROJECT_DIR
    )
    if not processes.wait_http(f"http://127.0.0.1:{port}/", 30):
        return f"dbt docs          did not start; see {proc.log}"
    return f"dbt docs          http://127.0.0.1:{port} (lineage, column descriptions)"
