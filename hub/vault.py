"""Encrypted platform credentials in ``app.integrations`` (cryptography MultiFernet).

Keys come from ``HUB_SECRET_KEYS`` (comma-separated, newest first) or, when that is unset,
from the key file ``<data dir>/secret.keys`` (one key a line, newest first; created in
sandbox mode on first use, mode 0600).

Rotation with no downtime (``hub keys rotate``): a new key is put first in the key file,
then every row is re-encrypted under it, each row in its own short transaction. A process
still holding the old key list that meets a row it cannot decrypt re-reads the key file
once and tries again, so readers never fail during or after a rotation. Old keys can be
dropped from the file once every row is rotated (``hub keys rotate --drop-old``).
"""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Engine

from hub.db import get_engine, integrations
from hub.settings import Mode, Settings, get_settings


class VaultError(RuntimeError):
    """Vault problems; messages never include key material or credentials."""


def key_file(settings: Settings) -> Path:
    return settings.data_dir / "secret.keys"


def _parse_keys(text: str, source: str) -> list[str]:
    keys = [k.strip() for k in text.replace(",", "\n").splitlines() if k.strip()]
    for index, key in enumerate(keys):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            raise VaultError(f"{source}: key #{index + 1} is not a valid Fernet key") from None
    return keys


def load_keys(settings: Settings) -> list[str]:
    if settings.secret_keys is not None:
        keys = _parse_keys(settings.secret_keys.get_secret_value(), "HUB_SECRET_KEYS")
        if not keys:
            raise VaultError("HUB_SECRET_KEYS is empty")
        return keys
    path = key_file(settings)
    if path.exists():
        keys = _parse_keys(path.read_text(), str(path))
        if keys:
            return keys
    if settings.mode is Mode.LIVE:
        raise VaultError("HUB_SECRET_KEYS must be set in live mode (comma-separated Fernet keys)")
    write_keys(settings, [Fernet.generate_key().decode()])
    return load_keys(settings)


def write_keys(settings: Settings, keys: list[str]) -> None:
    path = key_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("\n".join(keys) + "\n")
    os.replace(tmp, path)


class Vault:
    def __init__(self, engine: Engine | None = None, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.engine = engine or get_engine(self.settings)
        self._lock = threading.Lock()
        self._fernet = MultiFernet([Fernet(k) for k in load_keys(self.settings)])

    def _reload(self) -> None:
        with self._lock:
            self._fernet = MultiFernet([Fernet(k) for k in load_keys(self.settings)])

    def _decrypt(self, token: bytes) -> dict[str, Any]:
        try:
            plain = self._fernet.decrypt(token)
        except InvalidToken:
            self._reload()  # a rotation may have added a key since this process started
            try:
                plain = self._fernet.decrypt(token)
            except InvalidToken:
                raise VaultError(
                    "stored credentials cannot be decrypted with any known key "
                    "(HUB_SECRET_KEYS or the key file lost a key?)"
                ) from None
        return json.loads(plain)

    def set(
        self,
        platform: str,
        credentials: dict[str, Any],
        *,
        expires_at: datetime | None = None,
        account: str = "default",
    ) -> None:
        token = self._fernet.encrypt(json.dumps(credentials).encode())
        stmt = pg_insert(integrations).values(
            platform=platform, account=account, credentials_encrypted=token, expires_at=expires_at
        )
        stmt = stmt.on_conflict_do_update(
            constraint="uq_integrations_platform_account",
            set_={
                "credentials_encrypted": token,
                "expires_at": expires_at,
                "updated_at": func.now(),
            },
        )
        with self.engine.begin() as conn:
            conn.execute(stmt)

    def get(self, platform: str, account: str = "default") -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            token = conn.scalar(
                select(integrations.c.credentials_encrypted).where(
                    integrations.c.platform == platform, integrations.c.account == account
                )
            )
        return None if token is None else self._decrypt(bytes(token))

    def platforms(self) -> list[tuple[str, str, datetime | None]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(
                    integrations.c.platform, integrations.c.account, integrations.c.expires_at
                ).order_by(integrations.c.platform)
            ).all()
        return [tuple(r) for r in rows]

    def delete(self, platform: str, account: str = "default") -> bool:
        with self.engine.begin() as conn:
            result = conn.execute(
                integrations.delete().where(
                    integrations.c.platform == platform, integrations.c.account == account
                )
            )
        return result.rowcount > 0

    def rotate(self) -> int:
        """Re-encrypt every row under the current first key; returns rows rotated."""
        self._reload()
        with self.engine.connect() as conn:
            ids = conn.scalars(select(integrations.c.id).order_by(integrations.c.id)).all()
        count = 0
        for row_id in ids:
            with self.engine.begin() as conn:
                token = conn.scalar(
                    select(integrations.c.credentials_encrypted)
                    .where(integrations.c.id == row_id)
                    .with_for_update()
                )
                if token is None:
                    continue
                rotated = self._fernet.rotate(bytes(token))
                conn.execute(
                    update(integrations)
                    .where(integrations.c.id == row_id)
                    .values(credentials_encrypted=rotated)
                )
                count += 1
        return count


def rotate_keys(settings: Settings, *, drop_old: bool = False) -> tuple[int, int]:
    """Put a new key first in the key file and re-encrypt every row; returns (rows, keys)."""
    if settings.secret_keys is not None:
        raise VaultError(
            "keys come from HUB_SECRET_KEYS: prepend a new key there "
            "(Fernet.generate_key()) and run `hub keys rotate` again with it set"
        )
    keys = load_keys(settings)
    new_keys = [Fernet.generate_key().decode(), *keys]
    write_keys(settings, new_keys)
    rows = Vault(settings=settings).rotate()
    if drop_old:
        write_keys(settings, new_keys[:1])
        new_keys = new_keys[:1]
    return rows, len(new_keys)


class VaultTokenStore:
    """The adapters' TokenStore over the vault (OAuth tokens, API keys)."""

    def __init__(self, vault: Vault) -> None:
        self.vault = vault

    def load(self, platform: str) -> dict[str, Any] | None:
        return self.vault.get(platform)

    def save(self, platform: str, credentials: dict[str, Any], expires_at: datetime | None) -> None:
        self.vault.set(platform, credentials, expires_at=expires_at)
