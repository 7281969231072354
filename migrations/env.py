"""Alembic environment: the URL comes from the caller (gateway start-up) or `DATABASE_URL`."""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine, pool, text

from shared.config import ConnectionSettings
from storage.db import sqlalchemy_url
from storage.models import Base

config = context.config
if config.config_file_name is not None and not config.attributes.get("database_url"):
    fileConfig(config.config_file_name, disable_existing_loggers=False)  # CLI use only: keep app logging


def _url() -> str:
    url = config.attributes.get("database_url") or ConnectionSettings().database_url
    if not url:
        raise SystemExit("DATABASE_URL is not set: point it at a Postgres with the pgvector extension")
    return sqlalchemy_url(url)


def run_offline() -> None:
    context.configure(url=_url(), target_metadata=Base.metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    engine = create_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        # Gateway and worker may start together: one migrates, the other waits, neither half-applies.
        connection.execute(text("SELECT pg_advisory_lock(724301)"))
        connection.commit()
        context.configure(connection=connection, target_metadata=Base.metadata)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
