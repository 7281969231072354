"""Engine and sessions; Alembic upgrade at start-up (the pre-start step)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[1]


def sqlalchemy_url(url: str) -> str:
    """Accept the usual `postgres://` / `postgresql://` spellings; we always drive psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def make_engine(url: str, pool_size: int = 5) -> Engine:
    # pool_pre_ping: a Postgres restart between two jobs costs one reconnect, not a failed job.
    return create_engine(sqlalchemy_url(url), pool_pre_ping=True, pool_size=pool_size, max_overflow=10,
                         pool_recycle=1800)


class Database:
    def __init__(self, url: str, pool_size: int = 5) -> None:
        self.url = sqlalchemy_url(url)
        self.engine = make_engine(self.url, pool_size)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: commits on success, rolls back on any error."""
        with self.sessions() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


def alembic_config(url: str):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    config = Config(str(REPO / "alembic.ini"))
    config.set_main_option("script_location", str(REPO / "migrations"))
    config.attributes["database_url"] = sqlalchemy_url(url)
    return config


def upgrade(url: str, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    from alembic import command

    command.downgrade(alembic_config(url), revision)
