"""Engine and sessions; Alembic upgrade at start-up (the pre-start step)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[1]


def sqlalchemy_url(url: str) -> str:
    """Accept the usual `postgres://` / `postgresql://` spellings; we always drive psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


# A pooled connection idle this long is pinged before use. One in steady use is not: a ping per checkout
# was a round trip per transaction. A Postgres restart while connections are busy costs those transactions
# an error (a job then retries; a request answers 503) and the pool reconnects.
IDLE_PING_S = 2.0


def make_engine(url: str, pool_size: int = 5) -> Engine:
    engine = create_engine(sqlalchemy_url(url), pool_size=pool_size, max_overflow=10, pool_recycle=1800)

    @event.listens_for(engine, "checkin")
    def stamp(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def ping_if_idle(dbapi_connection: Any, record: ConnectionPoolEntry, proxy: PoolProxiedConnection) -> None:
        checked_in_at = record.info.get("checked_in_at")
        if checked_in_at is None or time.monotonic() - checked_in_at < IDLE_PING_S:
            return  # a new connection, or one used a moment ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # the server restarted meanwhile: every pooled connection is gone
            raise InvalidatePoolError() from exc

    return engine


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
