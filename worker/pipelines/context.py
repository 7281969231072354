"""What every pipeline gets: the media and cluster repositories, the media store, the model client and a
progress callback."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from storage.media_files import MediaStore
from storage.repositories.clusters import ClusterRepository
from storage.repositories.media import MediaRepository
from worker.model_client import ModelClient
from worker.settings import WorkerSettings

Progress = Callable[[float, str], None]


@dataclass
class PipelineContext:
    media: MediaRepository
    clusters: ClusterRepository
    store: MediaStore
    models: ModelClient
    settings: WorkerSettings
    report: Progress = field(default=lambda progress, stage: None)


class PermanentError(Exception):
    """The job cannot succeed however often it runs (its input is gone or unusable): fail it at once."""


class JobStopped(Exception):
    """The job was cancelled, or its media item deleted, while it ran: stop at this stage, record nothing."""


@dataclass
class Outcome:
    """What a pipeline computed and what it could not (each reason names the service and why)."""

    reasons: list[str] = field(default_factory=list)
    computed: list[str] = field(default_factory=list)

    def merge(self, other: Outcome) -> None:
        self.reasons.extend(r for r in other.reasons if r not in self.reasons)
        self.computed.extend(c for c in other.computed if c not in self.computed)
