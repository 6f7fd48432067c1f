"""Run sandbox emulators as processes: ``hub sandbox serve NAME`` (foreground) and
``hub sandbox up|down|status`` (one background process per emulator, so one can be
killed and restarted alone). State lives in ``<data dir>/sandbox/<name>.sqlite``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from hub.settings import SANDBOX_PORTS, Settings
from integrations.registry import SANDBOXES, sandbox_app_factory
from integrations.sandbox.common import serve_forever


def state_path(settings: Settings, name: str) -> Path:
    path = settings.data_dir / "sandbox"
    path.mkdir(parents=True, exist_ok=True)
    return path / f"{name}.sqlite"


def process_name(name: str) -> str:
    return f"sandbox-{name}"


def argv_for(settings: Settings, name: str, port: int | None = None) -> list[str]:
    return [
        sys.executable,
        "-m",
        "integrations.sandbox.run",
        name,
        "--port",
        str(port or SANDBOX_PORTS[name]),
        "--host",
        settings.sandbox_host,
        "--state",
        str(state_path(settings, name)),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="sandbox")
    parser.add_argument("name", choices=sorted(SANDBOXES))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app = sandbox_app_factory(args.name)(state_path=args.state)
    serve_forever(app, args.host, args.port)


if __name__ == "__main__":
    main()
