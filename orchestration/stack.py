"""`make up` / `make down`: the whole stack in the background on this machine.

Embedded (or external) PostgreSQL and Redis, migrations, the sandboxes (sandbox mode),
their credentials in the vault, the platforms' webhooks pointed at the receiver, the
receiver behind its HTTP front (granian + webhook_receiver.front, :5000), the outbox relay
(``hub serve outbox``) and Dagster's UI and daemon (:3000).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from hub import embedded, processes
from hub.migrate import upgrade
from hub.settings import SANDBOX_PORTS, Mode, Settings
from hub.vault import Vault

PROJECT_ROOT = Path(__file__).resolve().parents[1]
RECEIVER_PORT = 5000
DAGSTER_PORT = 3000


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def start_sandboxes(settings: Settings) -> list[str]:
    from integrations.sandbox import run

    lines = []
    for name in sorted(run.SANDBOXES):
        proc = processes.start(
            settings, run.process_name(name), run.argv_for(settings, name), cwd=PROJECT_ROOT
        )
        url = f"http://{settings.sandbox_host}:{SANDBOX_PORTS[name]}"
        if not processes.wait_http(f"{url}/_sandbox/health", 30):
            raise RuntimeError(f"sandbox {name} did not start; see {proc.log}")
        lines.append(f"sandbox {name:<10} {url}")
    return lines


def ensure_sandbox_credentials(settings: Settings) -> bool:
    """Store sandbox credentials and run Meetup's OAuth once; True when it connected now."""
    from integrations.factory import connect_sandbox_credentials

    vault = Vault(settings=settings)
    if all(vault.get(name) for name in ("meetup", "eventbrite", "luma", "stripe")):
        return False
    asyncio.run(connect_sandbox_credentials(settings, vault))
    return True


def register_webhooks(settings: Settings) -> dict[str, str]:
    """Point Eventbrite's and Luma's webhooks at the receiver (idempotent); keep Luma's
    signing secret in the vault for the receiver."""
    from integrations.factory import build_adapter

    vault = Vault(settings=settings)
    base = settings.public_base_url.rstrip("/")

    async def run() -> dict[str, str]:
        eventbrite = build_adapter("eventbrite", settings, vault)
        luma = build_adapter("luma", settings, vault)
        async with eventbrite, luma:
            eb = await eventbrite.register_webhook(
                f"{base}/webhooks/eventbrite",
                [
                    "order.placed",
                    "order.updated",
                    "order.refunded",
                    "attendee.updated",
                    "attendee.checked_in",
                ],
            )
            lu = await luma.register_webhook(
                f"{base}/webhooks/luma", ["guest.registered", "guest.updated"]
            )
        if lu.get("secret"):
            vault.set("luma_webhook", {"secret": lu["secret"], "id": lu.get("id")})
        return {"eventbrite": str(eb.get("id")), "luma": str(lu.get("id"))}

    return asyncio.run(run())


def receiver_secrets(settings: Settings) -> dict[str, str]:
    """The receiver's webhook secrets: settings first; in sandbox mode the sandbox ones
    fill what is unset, so signed sandbox deliveries verify out of the box."""
    from integrations.sandbox.credentials import RECEIVER_SECRETS

    found = {}
    for name, sandbox_value in RECEIVER_SECRETS.items():
        value = settings.secret(name)
        if value is None and settings.mode is Mode.SANDBOX:
            value = sandbox_value
        if value is not None:
            found[name] = value
    return found


def start_receiver(settings: Settings, port: int = RECEIVER_PORT) -> str:
    env = {f"HUB_{name.upper()}": value for name, value in receiver_secrets(settings).items()}
    proc = processes.start(
        settings,
        "receiver",
        [sys.executable, "-m", "webhook_receiver.serve", "--bind", f"127.0.0.1:{port}"],
        env=env,
        cwd=PROJECT_ROOT,
    )
    if not processes.wait_http(f"http://127.0.0.1:{port}/health", 60):
        raise RuntimeError(f"receiver did not start; see {proc.log}")
    return f"receiver          http://127.0.0.1:{port} (health, webhooks, metrics)"


def start_outbox_relay(settings: Settings, timeout: float = 60.0) -> str:
    """``hub serve outbox`` in the background; ready once it LISTENs on hub_outbox."""
    import time

    if processes.status(settings, "outbox").running:
        return "outbox relay      already running (LISTEN hub_outbox)"
    log = processes.log_path(settings, "outbox")
    offset = log.stat().st_size if log.exists() else 0  # the log is appended to
    proc = processes.start(
        settings,
        "outbox",
        [sys.executable, "-m", "hub_cli.main", "serve", "outbox"],
        cwd=PROJECT_ROOT,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.log.exists() and b"listening on hub_outbox" in proc.log.read_bytes()[offset:]:
            break
        if not processes.status(settings, "outbox").running:
            raise RuntimeError(f"outbox relay exited; see {proc.log}")
        time.sleep(0.2)
    else:
        raise RuntimeError(f"outbox relay did not start; see {proc.log}")
    return "outbox relay      LISTEN hub_outbox (capacity mirror to the platforms)"


def start_dagster(settings: Settings, port: int = DAGSTER_PORT) -> str:
    from orchestration.instance import prepare_dagster_home

    home = prepare_dagster_home(settings)
    proc = processes.start(
        settings,
        "dagster",
        [
            _bin("dagster"),
            "dev",
            "-w",
            str(PROJECT_ROOT / "workspace.yaml"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        env={"DAGSTER_HOME": str(home)},
        cwd=PROJECT_ROOT,
    )
    if not processes.wait_http(f"http://127.0.0.1:{port}/server_info", 180):
        raise RuntimeError(f"Dagster did not start; see {proc.log}")
    return f"dagster           http://127.0.0.1:{port} (UI; daemon runs sensors and schedules)"


def stack_up(settings: Settings) -> list[str]:
    lines = [row.line() for row in embedded.services_up(settings)]
    upgrade(settings)
    lines.append("database          migrated to head")
    if settings.mode is Mode.SANDBOX:
        lines += start_sandboxes(settings)
        ensure_sandbox_credentials(settings)
        hooks = register_webhooks(settings)
        lines.append(f"webhooks          registered {hooks}")
    lines.append(start_receiver(settings))
    lines.append(start_outbox_relay(settings))
    lines.append(start_dagster(settings))
    return lines


def stack_down(settings: Settings) -> list[str]:
    from integrations.sandbox import run

    names = [
        "dagster",
        "outbox",
        "receiver",
        *(run.process_name(n) for n in sorted(run.SANDBOXES)),
    ]
    lines = [f"stopped {name}" for name in names if processes.stop(settings, name)]
    stopped = embedded.services_down(settings)
    lines += [f"stopped {name} (embedded)" for name in stopped]
    return lines or ["nothing was running"]
