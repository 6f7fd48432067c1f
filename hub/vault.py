"""Encrypted platform credentials in ``app.integrations`` (cryptography MultiFernet).

Keys come from ``HUB_SECRET_KEYS`` (comma-separated, newest first) or, when that is unset,
from the key file ``<data dir>/secret.keys`` (one key a line, newest first; created in
sandbox mode on first use, mode 0600).

Rotation with no downtime (``hub keys rotate``): a new key is put first in the key file,
the database's marker (``app.vault_state.primary_key_id``, a fingerprint, never the key)
is moved to it, then every row is re-encrypted under it, each row in its own short
transaction. A process still holding the old key list that meets a row it cannot decrypt
re-reads the key file once and tries again, so readers never fail during or after a
rotation. Old keys can be dropped from the file once every row is rotated
(``hub keys rotate --drop-old``).

Writers are safe during a rotation too: a process encrypts only with the key the marker
names, holding the marker row ``FOR SHARE`` until its row is committed. A process that
built its vault before the rotation sees the new marker, re-reads the key file and uses
the new key (or, if it cannot get that key, e.g. HUB_SECRET_KEYS set in its environment
before the rotation, refuses to write: fail closed). The rotation moves the marker under
a row lock, which waits for writers in flight, and only then re-encrypts; so every row
written under an old key is committed before the re-encryption reads it, and no row can
be written under a key that ``--drop-old`` removes.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Engine

from hub.db import get_engine, integrations, vault_state
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


def key_id(key: str) -> str:
    """A key's fingerprint (what the database may know of it)."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


_MARKER_SQL = text(
    "insert into app.vault_state (id, primary_key_id) values (1, :key_id) "
    "on conflict (id) do nothing"
)
_MARKER_SHARE_SQL = text("select primary_key_id from app.vault_state where id = 1 for share")


class Vault:
    def __init__(self, engine: Engine | None = None, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.engine = engine or get_engine(self.settings)
        self._lock = threading.Lock()
        self._load()

    def _load(self) -> None:
        keys = load_keys(self.settings)
        self._keys = {key_id(k): Fernet(k) for k in keys}
        self._primary = key_id(keys[0])
        self._fernet = MultiFernet([Fernet(k) for k in keys])

    def _reload(self) -> None:
        with self._lock:
            self._load()

    def _writer(self, conn: Any) -> Fernet:
        """The key to encrypt with: the one the database's marker names (created with
        this process's first key when there is none), held FOR SHARE until commit."""
        conn.execute(_MARKER_SQL, {"key_id": self._primary})
        marker = conn.execute(_MARKER_SHARE_SQL).scalar_one()
        if marker not in self._keys:
            self._reload()  # a rotation moved the marker since this process read its keys
        fernet = self._keys.get(marker)
        if fernet is None:
            raise VaultError(
                "the vault's current key (set by the last `hub keys rotate`) is not among "
                "this process's keys; restart it with the current key file or HUB_SECRET_KEYS"
            )
        return fernet

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
        with self.engine.begin() as conn:
            token = self._writer(conn).encrypt(json.dumps(credentials).encode())
            stmt = pg_insert(integrations).values(
                platform=platform,
                account=account,
                credentials_encrypted=token,
                expires_at=expires_at,
            )
            stmt = stmt.on_conflict_do_update(
                constraint="uq_integrations_platform_account",
                set_={
                    "credentials_encrypted": token,
                    "expires_at": expires_at,
                    "updated_at": func.now(),
                },
            )
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
        """Move the marker to the current first key (waiting for writers in flight), then
        re-encrypt every row under it; returns rows rotated."""
        self._reload()
        with self.engine.begin() as conn:
            conn.execute(
                pg_insert(vault_state)
                .values(id=1, primary_key_id=self._primary)
                .on_conflict_do_update(
                    index_elements=["id"],
                    set_={"primary_key_id": self._primary, "updated_at": func.now()},
                )
            )
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
