"""Connect to Postgres and Redis: the configured servers, or the embedded ones under MEDIAMESH_HOME."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import redis
from sqlalchemy import text

from shared.config import ConnectionSettings
from shared.embedded import EmbeddedPostgres, EmbeddedRedis
from storage import db as dbmod
from storage.media_files import MediaStore
from storage.queue import JobQueue, connect
from storage.repositories.clusters import ClusterRepository
from storage.repositories.jobs import JobRepository
from storage.repositories.media import MediaRepository
from storage.search import MediaSearch

log = logging.getLogger(__name__)


@dataclass
class Storage:
    """Everything the storage routes and the worker share, built once per process."""

    connections: ConnectionSettings
    db: dbmod.Database
    redis: redis.Redis
    queue: JobQueue
    store: MediaStore
    embedded: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.media = MediaRepository(self.db)
        self.jobs = JobRepository(self.db)
        self.clusters = ClusterRepository(self.db)
        self.search = MediaSearch(self.db)

    def ping_postgres(self) -> None:
        with self.db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def ping_redis(self) -> None:
        self.redis.ping()

    def close(self) -> None:
        self.redis.close()
        self.db.dispose()
        for server in reversed(self.embedded):
            server.stop()


def open_storage(connections: ConnectionSettings, *, migrate: bool = True) -> Storage:
    """Blocking: may start the embedded servers and runs `alembic upgrade head` (unless told not to)."""
    embedded: list[Any] = []
    database_url = connections.database_url
    if not database_url:
        server = EmbeddedPostgres()
        database_url = server.start()
        embedded.append(server)
        log.info("DATABASE_URL unset: embedded Postgres at %s", server.data_dir)
    redis_url = connections.redis_url
    if not redis_url:
        redis_server = EmbeddedRedis()
        redis_url = redis_server.start()
        embedded.append(redis_server)
        log.info("REDIS_URL unset: embedded Redis at %s", redis_server.db_file)
    if migrate:
        dbmod.upgrade(database_url)
    client = connect(redis_url)
    queue = JobQueue(client, connections.queue_name)
    queue.ensure_group()
    return Storage(connections=connections, db=dbmod.Database(database_url), redis=client, queue=queue,
                   store=MediaStore(connections.resolved_media_dir()), embedded=embedded)

