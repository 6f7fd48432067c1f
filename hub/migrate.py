"""Run the Alembic migrations in migrations/ programmatically (``hub db upgrade``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from hub.embedded import resolve_database_url
from hub.settings import Settings, get_settings

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def alembic_config(settings: Settings | None = None) -> Config:
    settings = settings or get_settings()
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    config.attributes["url"] = resolve_database_url(settings)
    return config


def upgrade(settings: Settings | None = None, revision: str = "head") -> None:
    command.upgrade(alembic_config(settings), revision)


def downgrade(settings: Settings | None = None, revision: str = "base") -> None:
    command.downgrade(alembic_config(settings), revision)


def current_revision(settings: Settings | None = None) -> str | None:
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine, pool

    engine = create_engine(
        resolve_database_url(settings or get_settings()), poolclass=pool.NullPool
    )
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
