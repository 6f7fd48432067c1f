"""The ``hub`` command: a thin shell over the hub's services.

Every error ends the command with a non-zero status and one line naming the field or
the server that is wrong; secrets are never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from hub.settings import SANDBOX_PORTS, Settings, SettingsError, load_settings

PROJECT_ROOT = Path(__file__).resolve().parents[1]


class CliError(Exception):
    pass


# --------------------------------------------------------------------------- helpers


def _settings() -> Settings:
    return load_settings()


def _local(when: datetime, zone: str) -> datetime:
    """A stored (UTC) time in the event's own zone, as organizers think of it."""
    return when.astimezone(ZoneInfo(zone))


def _print_event(event, *, as_json: bool = False) -> None:
    if as_json:
        print(event.model_dump_json(indent=2))
        return
    allocations = ", ".join(
        f"{p}={'shared' if a is None else a}" for p, a in sorted(event.allocations.items())
    )
    price = "free" if event.is_free else f"{event.price_minor / 100:.2f} {event.currency}"
    print(
        f"event {event.id}\n"
        f"  title     {event.title}\n"
        f"  slug      {event.slug}\n"
        f"  when      {_local(event.starts_at, event.timezone).isoformat()} -> "
        f"{_local(event.ends_at, event.timezone).isoformat()} ({event.timezone})\n"
        f"  venue     {event.venue_name or '-'} {event.venue_address or event.online_url or ''}\n"
        f"  capacity  {event.total_capacity} ({allocations})\n"
        f"  price     {price}\n"
        f"  status    {event.status} (version {event.version})"
    )


# --------------------------------------------------------------------------- db


def cmd_db_upgrade(args: argparse.Namespace) -> None:
    from hub.migrate import current_revision, upgrade

    settings = _settings()
    upgrade(settings, args.revision)
    print(f"database at revision {current_revision(settings)}")


def cmd_db_downgrade(args: argparse.Namespace) -> None:
    from hub.migrate import current_revision, downgrade

    settings = _settings()
    downgrade(settings, args.revision)
    print(f"database at revision {current_revision(settings)}")


def cmd_db_current(args: argparse.Namespace) -> None:
    from hub.migrate import current_revision

    print(current_revision(_settings()) or "empty (no migration applied)")


# --------------------------------------------------------------------------- services


def cmd_services(args: argparse.Namespace) -> None:
    from hub import embedded

    settings = _settings()
    if args.action == "up":
        rows = embedded.services_up(settings)
    elif args.action == "down":
        stopped = embedded.services_down(settings)
        print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
        rows = embedded.services_status(settings)
    else:
        rows = embedded.services_status(settings)
    for row in rows:
        print(row.line())
    if args.action == "status" and not all(r.running for r in rows):
        raise SystemExit(3)


# --------------------------------------------------------------------------- serve


def _dagster_env(settings: Settings) -> dict[str, str]:
    from orchestration.instance import prepare_dagster_home

    home = prepare_dagster_home(settings)
    return {"DAGSTER_HOME": str(home)}


def _serve_outbox(settings: Settings) -> None:
    """The outbox relay in the foreground until SIGINT/SIGTERM (hub.outbox_relay)."""
    import logging
    import signal
    import threading

    from hub.outbox_relay import run_relay

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    run_relay(settings, stop, handlers=relay_handlers())


def relay_handlers() -> dict:
    """What the relay delivers: the capacity mirror (hub) and the notifications, whose
    adapters live in integrations (hub imports none)."""
    from hub.outbox_relay import default_handlers
    from integrations.notify_email import KIND as NOTIFY_EMAIL
    from integrations.notify_email import email_handler
    from integrations.notify_sms import KIND as NOTIFY_SMS
    from integrations.notify_sms import sms_handler
    from integrations.notify_whatsapp import KIND as NOTIFY_WHATSAPP
    from integrations.notify_whatsapp import whatsapp_handler

    return default_handlers() | {
        NOTIFY_SMS: sms_handler,
        NOTIFY_WHATSAPP: whatsapp_handler,
        NOTIFY_EMAIL: email_handler,
    }


def cmd_serve(args: argparse.Namespace) -> None:
    settings = _settings()
    from hub.embedded import resolve_database_url, resolve_redis_url
    from hub.migrate import upgrade

    resolve_database_url(settings)
    resolve_redis_url(settings)
    upgrade(settings)
    if args.target == "outbox":
        _serve_outbox(settings)
        return
    if args.target == "receiver":
        port = args.port or 5000
        # granian behind the buffering front (webhook_receiver/serve.py, front.py)
        argv = [sys.executable, "-m", "webhook_receiver.serve", "--bind", f"{args.host}:{port}"]
        os.execvpe(argv[0], argv, os.environ | {"PYTHONPATH": str(PROJECT_ROOT)})
    else:
        port = args.port or 3000
        env = os.environ | _dagster_env(settings)
        argv = [
            str(Path(sys.executable).with_name("dagster")),
            "dev",
            "-w",
            str(PROJECT_ROOT / "workspace.yaml"),
            "-h",
            args.host,
            "-p",
            str(port),
        ]
        os.chdir(PROJECT_ROOT)
        os.execvpe(argv[0], argv, env)


# --------------------------------------------------------------------------- events


def cmd_events_create(args: argparse.Namespace) -> None:
    from hub.db import transaction
    from hub.events import create_event, load_spec_file

    spec = load_spec_file(args.file)
    settings = _settings()
    with transaction(settings) as conn:
        event = create_event(conn, spec, actor=f"cli:{os.environ.get('USER', 'unknown')}")
    _print_event(event, as_json=args.json)


def cmd_events_list(args: argparse.Namespace) -> None:
    from sqlalchemy import select

    from hub.db import event_channels, transaction
    from hub.events import list_events

    with transaction(_settings()) as conn:
        events = list_events(conn)
        channels = conn.execute(
            select(event_channels.c.event_id, event_channels.c.platform, event_channels.c.status)
        ).all()
    if args.json:
        print(json.dumps([json.loads(e.model_dump_json()) for e in events], indent=2))
        return
    if not events:
        print("no events")
        return
    by_event: dict = {}
    for event_id, platform, status in channels:
        by_event.setdefault(event_id, []).append(f"{platform}:{status}")
    for e in events:
        print(
            f"{_local(e.starts_at, e.timezone):%Y-%m-%d %H:%M}  {e.slug:<40} "
            f"cap={e.total_capacity:<5} {' '.join(sorted(by_event.get(e.id, [])))}"
        )


# --------------------------------------------------------------------------- integrations


def _vault():
    from hub.vault import Vault

    return Vault(settings=_settings())


def _secret_pairs(text: str, source: str) -> dict[str, str]:
    """``key=value`` lines (blank lines and ``#`` comments skipped) or one JSON object."""
    text = text.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            raise CliError(f"{source}: not a JSON object") from None
        if not isinstance(data, dict):
            raise CliError(f"{source}: not a JSON object")
        return {str(k).strip(): str(v).strip() for k, v in data.items()}
    values = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "=" not in line:
            raise CliError(f"{source} line {number}: expected key=value")
        key, value = line.split("=", 1)
        values[key.strip()] = value.strip()
    return values


def read_secret_values(args: argparse.Namespace) -> dict[str, str]:
    """The credentials to store, never from the command line (a process's arguments are
    visible to every user in the process list while it runs): ``--from-file PATH``,
    ``--stdin`` (key=value lines or a JSON object), or a hidden prompt per key named."""
    import getpass

    inline = [name for name in args.keys if "=" in name]
    if inline:
        keys = ", ".join(name.split("=", 1)[0] for name in inline)
        raise CliError(
            f"{keys}: secrets are not taken from the command line (visible in the process "
            "list); name the keys and type the values at the prompt, or use --stdin or "
            "--from-file PATH"
        )
    values: dict[str, str] = {}
    if args.from_file:
        path = Path(args.from_file)
        try:
            values.update(_secret_pairs(path.read_text(), str(path)))
        except OSError as exc:
            raise CliError(f"{path}: cannot read ({exc.strerror})") from None
    if args.stdin:
        values.update(_secret_pairs(sys.stdin.read(), "stdin"))
    for name in args.keys:
        if name not in values:
            values[name] = getpass.getpass(f"{name} for {args.platform} (hidden): ").strip()
    values = {k: v for k, v in values.items() if k}
    if not values or not all(values.values()):
        raise CliError("nothing to store: name the keys (prompted), or use --stdin/--from-file")
    return values


def cmd_integrations_set(args: argparse.Namespace) -> None:
    from integrations.factory import MEETUP_CLIENT_KEY

    values = read_secret_values(args)
    platform = MEETUP_CLIENT_KEY if args.platform == "meetup" else args.platform
    _vault().set(platform, values)
    print(f"stored {', '.join(sorted(values))} for {args.platform} (encrypted)")


def cmd_integrations_list(args: argparse.Namespace) -> None:
    rows = _vault().platforms()
    if not rows:
        print("no integrations stored")
    for platform, account, expires in rows:
        print(f"{platform:<22} {account:<10} expires={expires.isoformat() if expires else '-'}")


def cmd_integrations_connect(args: argparse.Namespace) -> None:
    from hub.settings import Mode
    from hub.vault import VaultTokenStore
    from integrations.factory import connect_sandbox_credentials, meetup_oauth
    from integrations.meetup import connect

    settings = _settings()
    vault = _vault()
    if args.platform == "sandbox":
        names = asyncio.run(connect_sandbox_credentials(settings, vault))
        print(f"connected to the sandboxes: {', '.join(names)}")
        return
    if args.platform != "meetup":
        raise CliError(f"{args.platform}: only meetup uses OAuth; use `hub integrations set`")

    async def run() -> None:
        import secrets

        from integrations.meetup import sandbox_authorize

        oauth = meetup_oauth(settings, vault)
        state = secrets.token_urlsafe(16)
        if settings.mode is Mode.SANDBOX and not args.code:
            code = await sandbox_authorize(oauth, state)
        else:
            code = args.code
            if not code:
                print(
                    "Open this URL, approve, then run again with --code CODE "
                    "(the `code` parameter of the page you are sent to):"
                )
                print(oauth.authorization_url(state))
                return
        await connect(oauth, VaultTokenStore(vault), code)
        print("meetup connected; tokens stored encrypted and refreshed before expiry")

    asyncio.run(run())


def cmd_keys_rotate(args: argparse.Namespace) -> None:
    from hub.vault import rotate_keys

    rows, keys = rotate_keys(_settings(), drop_old=args.drop_old)
    print(f"re-encrypted {rows} credential rows under a new key ({keys} key(s) kept)")


# --------------------------------------------------------------------------- sandbox


def cmd_sandbox(args: argparse.Namespace) -> None:
    from hub import processes
    from integrations.sandbox import run

    settings = _settings()
    names = args.names or sorted(run.SANDBOXES)
    unknown = sorted(set(names) - set(run.SANDBOXES))
    if unknown:
        raise CliError(f"unknown sandbox {', '.join(unknown)} (have {', '.join(run.SANDBOXES)})")
    if args.action == "serve":
        if len(names) != 1:
            raise CliError("serve takes one sandbox name")
        run.main(
            [
                names[0],
                "--port",
                str(args.port or SANDBOX_PORTS[names[0]]),
                "--host",
                settings.sandbox_host,
                "--state",
                str(run.state_path(settings, names[0])),
            ]
        )
        return
    for name in names:
        proc_name = run.process_name(name)
        if args.action == "up":
            processes.start(settings, proc_name, run.argv_for(settings, name), cwd=PROJECT_ROOT)
        elif args.action == "down":
            processes.stop(settings, proc_name)
    for name in names:
        port = SANDBOX_PORTS[name]
        url = f"http://{settings.sandbox_host}:{port}"
        if args.action == "up" and not processes.wait_http(f"{url}/_sandbox/health", 30):
            raise CliError(
                f"sandbox {name} did not start; see "
                f"{processes.log_path(settings, run.process_name(name))}"
            )
        state = processes.status(settings, run.process_name(name))
        print(f"{name:<11} {'running' if state.running else 'stopped':<8} {url}")


# --------------------------------------------------------------------------- stack


def cmd_up(args: argparse.Namespace) -> None:
    from orchestration.stack import stack_up

    for line in stack_up(_settings()):
        print(line)


def cmd_down(args: argparse.Namespace) -> None:
    from orchestration.stack import stack_down

    for line in stack_down(_settings()):
        print(line)


def cmd_demo(args: argparse.Namespace) -> None:
    from orchestration.demo import run_demo

    run_demo(_settings())


def _docs_options(rest: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="hub dbt docs", description="generate the dbt docs site and serve it"
    )
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--no-serve", action="store_true", help="generate only")
    return parser.parse_args(rest)


def cmd_dbt(args: argparse.Namespace) -> None:
    """``hub dbt ARGS``: dbt with the hub's connection. ``hub dbt docs [--port 8080]
    [--host H] [--no-serve]`` generates the docs site and serves it (``hub dbt docs
    generate`` / ``serve`` still reach dbt as they are)."""
    from orchestration.dbt_env import dbt_env

    settings = _settings()
    env = os.environ | dbt_env(settings)
    dbt = str(Path(sys.executable).with_name("dbt"))
    project = PROJECT_ROOT / "dbt_project"
    dbt_args = list(args.dbt_args)
    if dbt_args[:1] == ["docs"] and (len(dbt_args) == 1 or dbt_args[1].startswith("-")):
        from orchestration.analytics.docs import generate_docs, serve_argv

        options = _docs_options(dbt_args[1:])
        try:
            target = generate_docs(settings)
        except RuntimeError as exc:
            raise CliError(str(exc)) from exc
        print(f"dbt docs generated in {target}")
        if options.no_serve:
            return
        print(f"serving on http://{options.host}:{options.port}")
        argv = serve_argv(options.port, options.host)
        os.execvpe(argv[0], argv, env)
    argv = [dbt, *dbt_args, "--project-dir", str(project), "--profiles-dir", str(project)]
    os.execvpe(dbt, argv, env)


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hub", description="community event hub")
    sub = parser.add_subparsers(dest="command", required=True)

    db = sub.add_parser("db", help="database migrations").add_subparsers(dest="sub", required=True)
    p = db.add_parser("upgrade")
    p.add_argument("revision", nargs="?", default="head")
    p.set_defaults(func=cmd_db_upgrade)
    p = db.add_parser("downgrade")
    p.add_argument("revision", nargs="?", default="base")
    p.set_defaults(func=cmd_db_downgrade)
    db.add_parser("current").set_defaults(func=cmd_db_current)

    p = sub.add_parser("services", help="embedded PostgreSQL and Redis")
    p.add_argument("action", choices=["up", "down", "status"])
    p.set_defaults(func=cmd_services)

    p = sub.add_parser(
        "serve", help="run the receiver, Dagster or the outbox relay in the foreground"
    )
    p.add_argument("target", choices=["receiver", "dagster", "outbox"])
    p.add_argument("--port", type=int)
    p.add_argument("--host", default="127.0.0.1")
    p.set_defaults(func=cmd_serve)

    ev = sub.add_parser("events", help="create and list events").add_subparsers(
        dest="sub", required=True
    )
    p = ev.add_parser("create", help="createEvent from a YAML file")
    p.add_argument("file")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_events_create)
    p = ev.add_parser("list")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_events_list)

    integ = sub.add_parser("integrations", help="platform credentials").add_subparsers(
        dest="sub", required=True
    )
    p = integ.add_parser(
        "set",
        help="store credentials: hub integrations set luma api_key (value at a hidden "
        "prompt), or --stdin / --from-file PATH with key=value lines; never on the "
        "command line",
    )
    p.add_argument(
        "platform", choices=["meetup", "eventbrite", "luma", "stripe", "netgsm", "whatsapp"]
    )
    p.add_argument("keys", nargs="*", help="key names; each value is asked at a hidden prompt")
    p.add_argument("--stdin", action="store_true", help="read key=value lines from stdin")
    p.add_argument("--from-file", metavar="PATH", help="read key=value lines from a file")
    p.set_defaults(func=cmd_integrations_set)
    p = integ.add_parser("connect", help="OAuth connect (meetup) or all sandboxes (sandbox)")
    p.add_argument("platform", choices=["meetup", "sandbox"])
    p.add_argument("--code", help="the authorization code from Meetup's redirect")
    p.set_defaults(func=cmd_integrations_connect)
    integ.add_parser("list").set_defaults(func=cmd_integrations_list)

    keys = sub.add_parser("keys", help="encryption keys").add_subparsers(dest="sub", required=True)
    p = keys.add_parser("rotate", help="re-encrypt every credential under a new key")
    p.add_argument("--drop-old", action="store_true")
    p.set_defaults(func=cmd_keys_rotate)

    p = sub.add_parser("sandbox", help="platform emulators")
    p.add_argument("action", choices=["up", "down", "status", "serve"])
    p.add_argument(
        "names", nargs="*", default=[], help="meetup, eventbrite, luma, stripe (default all)"
    )
    p.add_argument("--port", type=int)
    p.set_defaults(func=cmd_sandbox)

    from hub_cli import capacity_cmd

    capacity_cmd.register(sub)

    sub.add_parser("up", help="start the whole stack in the background").set_defaults(func=cmd_up)
    sub.add_parser("down", help="stop the whole stack").set_defaults(func=cmd_down)
    sub.add_parser("demo", help="run the end-to-end scenario").set_defaults(func=cmd_demo)
    p = sub.add_parser(
        "dbt", help="run dbt with the hub's connection; `hub dbt docs` serves the docs site"
    )
    p.add_argument("dbt_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_dbt)
    return parser


def _describe(exc: BaseException) -> str:
    """One line for an error, naming the field or server; never a secret."""
    from sqlalchemy.exc import OperationalError

    from hub.embedded import EmbeddedServiceError
    from hub.events import EventInputError

    if isinstance(exc, EventInputError):
        return f"invalid event: {exc.field}: {exc.message}"
    if isinstance(exc, SettingsError | EmbeddedServiceError | CliError):
        return str(exc)
    if isinstance(exc, OperationalError):
        detail = str(exc.orig).strip().splitlines()[0] if exc.orig else "connection failed"
        return f"PostgreSQL unreachable: {detail}"
    try:
        import redis

        if isinstance(exc, redis.exceptions.ConnectionError):
            return f"Redis unreachable: {exc}"
    except ImportError:  # pragma: no cover
        pass
    try:
        from integrations.base import AdapterError

        if isinstance(exc, AdapterError):
            return str(exc)
    except ImportError:  # pragma: no cover
        pass
    try:
        from hub.vault import VaultError

        if isinstance(exc, VaultError):
            return str(exc)
    except ImportError:  # pragma: no cover
        pass
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], None] = args.func
    try:
        func(args)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except SystemExit:
        raise
    except Exception as exc:
        if os.environ.get("HUB_DEBUG"):
            raise
        print(f"error: {_describe(exc)}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
