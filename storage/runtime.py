"""Connect to Postgres and Redis: the configured servers, or the embedded ones under MEDIAMESH_HOME."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import redis

from shared.embedded import EmbeddedPostgres, EmbeddedRedis
from storage import db as dbmod
from storage.jobs import JobStore
from storage.media_files import MediaStore
from storage.queue import JobQueue, connect
from storage.settings import StorageConnection

log = logging.getLogger(__name__)


@dataclass
class Storage:
    """Everything the storage routes and the worker share, built once per process."""

    settings: StorageConnection
    db: dbmod.Database
    redis: redis.Redis
    queue: JobQueue
    jobs: JobStore
    store: MediaStore
    embedded: list[Any] = field(default_factory=list)

    def close(self) -> None:
        self.redis.close()
        self.db.dispose()
        for server in reversed(self.embedded):
            server.stop()


def open_storage(settings: StorageConnection, *, migrate: bool | None = None) -> Storage:
    embedded: list[Any] = []
    database_url = settings.database_url
    if not database_url:
        server = EmbeddedPostgres()
        database_url = server.start()
        embedded.append(server)
        log.info("DATABASE_URL unset: embedded Postgres at %s", server.data_dir)
    redis_url = settings.redis_url
    if not redis_url:
        redis_server = EmbeddedRedis()
        redis_url = redis_server.start()
        embedded.append(redis_server)
        log.info("REDIS_URL unset: embedded Redis at %s", redis_server.db_file)
    if settings.migrate_on_start if migrate is None else migrate:
        dbmod.upgrade(database_url)
    database = dbmod.Database(database_url)
    client = connect(redis_url)
    queue = JobQueue(client, settings.queue_name)
    queue.ensure_group()
    return Storage(settings=settings, db=database, redis=client, queue=queue, jobs=JobStore(database),
                   store=MediaStore(settings.resolved_media_dir()), embedded=embedded)
