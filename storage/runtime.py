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
from storage.repositories.classify_results import ClassifyResultRepository
from storage.repositories.clusters import ClusterRepository
from storage.repositories.jobs import JobRepository
from storage.repositories.media import MediaRepository
from storage.search import MediaSearch
from storage.spaces import SpaceRepository
from storage.thumbnails import ThumbnailStore

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
        self.classify_results = ClassifyResultRepository(self.db)
        self.jobs = JobRepository(self.db)
        self.clusters = ClusterRepository(self.db)
        self.search = MediaSearch(self.db)
        self.spaces = SpaceRepository(self.db)
        # beside the media folder: MEDIAMESH_HOME/thumbnails by default
        self.thumbnails = ThumbnailStore(self.store.root.parent / "thumbnails", self.store)

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
    database_url = connections.database_url or _start_embedded(EmbeddedPostgres(), "DATABASE_URL", embedded)
    redis_url = connections.redis_url or _start_embedded(EmbeddedRedis(), "REDIS_URL", embedded)
    if migrate:
        dbmod.upgrade(database_url)
    client = connect(redis_url)
    queue = JobQueue(client, connections.queue_name)
    queue.ensure_group()
    return Storage(connections=connections, db=dbmod.Database(database_url), redis=client, queue=queue,
                   store=MediaStore(connections.resolved_media_dir()), embedded=embedded)



def _start_embedded(server: EmbeddedPostgres | EmbeddedRedis, variable: str, started: list[Any]) -> str:
    url = server.start()
    started.append(server)
    log.info("%s unset: embedded %s started", variable, type(server).__name__.removeprefix("Embedded"))
    return url
