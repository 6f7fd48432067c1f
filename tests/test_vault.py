"""Credentials are encrypted at rest, rotate with no downtime, and never print."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pgserver
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from hub.db import integrations
from hub.embedded import resolve_database_url
from hub.settings import Mode, load_settings
from hub.vault import Vault, VaultError, load_keys, rotate_keys

ROOT = Path(__file__).resolve().parents[1]
SECRETS = {
    "token": "EBLIVETOKEN9Z8Y7X6W5V",
    "api_key": "secret-luma-d41d8cd98f00b204",
    "refresh_token": "mtr-5f4dcc3b5aa765d61d8327deb882cf99",
}


@pytest.fixture()
def vault_settings(tmp_path, monkeypatch, hub_settings):
    monkeypatch.setenv("HUB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HUB_DATABASE_URL", os.environ["HUB_DATABASE_URL"])
    monkeypatch.delenv("HUB_SECRET_KEYS", raising=False)
    return load_settings()


def _pg_dump(url: str) -> str:
    """A real pg_dump (the one pgserver ships, PostgreSQL 16; dumps 15 servers too)."""
    binary = Path(pgserver.__file__).parent / "pginstall" / "bin" / "pg_dump"
    parsed = make_url(url)
    host = parsed.query.get("host") or parsed.host
    args = [
        str(binary),
        "-h",
        str(host),
        "-p",
        str(parsed.port or 5432),
        "-U",
        parsed.username or "postgres",
        "-d",
        parsed.database,
        "--data-only",
    ]
    env = {**os.environ, "PGPASSWORD": parsed.password or ""}
    return subprocess.run(
        args, capture_output=True, text=True, check=True, env=env, timeout=120
    ).stdout


def test_database_dump_holds_no_plaintext_secret(clean_db, vault_settings):
    vault = Vault(settings=vault_settings)
    vault.set("eventbrite", {"token": SECRETS["token"], "organization_id": "1000000001"})
    vault.set("luma", {"api_key": SECRETS["api_key"]})
    vault.set("meetup", {"access_token": "x", "refresh_token": SECRETS["refresh_token"]})
    dump = _pg_dump(resolve_database_url(vault_settings))
    assert "integrations" in dump  # the rows are there ...
    for secret in SECRETS.values():
        assert secret not in dump  # ... but not readable
    assert vault.get("luma") == {"api_key": SECRETS["api_key"]}


def test_rotation_re_encrypts_every_row_and_old_readers_keep_working(clean_db, vault_settings):
    writer = Vault(settings=vault_settings)
    for platform in ("eventbrite", "luma", "meetup"):
        writer.set(platform, {"token": f"{platform}-{SECRETS['token']}"})
    reader = Vault(settings=vault_settings)  # a running process holding the old key list
    with clean_db.connect() as conn:
        before = dict(
            conn.execute(
                select(integrations.c.platform, integrations.c.credentials_encrypted)
            ).all()
        )
    old_keys = load_keys(vault_settings)
    rows, key_count = rotate_keys(vault_settings)
    assert rows == 3 and key_count == 2
    with clean_db.connect() as conn:
        after = dict(
            conn.execute(
                select(integrations.c.platform, integrations.c.credentials_encrypted)
            ).all()
        )
    assert all(bytes(after[p]) != bytes(before[p]) for p in before)
    # The old reader never saw the new key: it reloads the key file and still decrypts.
    assert reader.get("luma") == {"token": f"luma-{SECRETS['token']}"}
    # Dropping the old key after the rotation loses nothing.
    rotate_keys(vault_settings, drop_old=True)
    assert load_keys(vault_settings)[0] not in old_keys and len(load_keys(vault_settings)) == 1
    assert Vault(settings=vault_settings).get("meetup") == {"token": f"meetup-{SECRETS['token']}"}


def test_live_mode_requires_keys(monkeypatch, tmp_path, hub_settings):
    monkeypatch.setenv("HUB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HUB_MODE", Mode.LIVE.value)
    monkeypatch.delenv("HUB_SECRET_KEYS", raising=False)
    with pytest.raises(VaultError, match="HUB_SECRET_KEYS"):
        load_keys(load_settings())
    monkeypatch.setenv("HUB_SECRET_KEYS", "not-a-fernet-key")
    with pytest.raises(VaultError, match="not a valid Fernet key") as info:
        load_keys(load_settings())
    assert "not-a-fernet-key" not in str(info.value)


def test_cli_set_and_list_never_print_the_secret(clean_db, vault_settings):
    env = {**os.environ, "HUB_DATA_DIR": str(vault_settings.data_dir)}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "hub_cli",
            "integrations",
            "set",
            "luma",
            "--stdin",  # never on the command line (visible in the process list)
        ],
        input=f"api_key={SECRETS['api_key']}\n",
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    listing = subprocess.run(
        [sys.executable, "-m", "hub_cli", "integrations", "list"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )
    assert "luma" in listing.stdout
    for output in (result.stdout, result.stderr, listing.stdout, listing.stderr):
        assert SECRETS["api_key"] not in output
    assert Vault(settings=vault_settings).get("luma") == {"api_key": SECRETS["api_key"]}
