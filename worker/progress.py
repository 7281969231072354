"""A running job's stage, written to Postgres without a transaction per stage.

The first stage is written at once, so a job that just started says what it does. After that a stage is
written when it has lasted `delay_s` (by a timer), or at once when the last write is `delay_s` old: a long
stage always shows, a job whose stages all take a few milliseconds writes just the first. Each write is
also where a cancel (or the media's deletion) is noticed: the next report then raises `JobStopped`. A
cancel no write saw is noticed when the job is marked done (`JobRepository.finish`), which then records
nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from worker.pipelines.context import JobStopped

log = logging.getLogger("mediamesh.worker")
Record = Callable[[float, str], bool]  # False: the job is no longer running


class ProgressReporter:
    def __init__(self, job_id: str, record: Record, delay_s: float) -> None:
        self.job_id, self.record, self.delay_s = job_id, record, delay_s
        self.lock = threading.Lock()
        self.last_write: float | None = None  # None: the first stage is still to come
        self.timer: threading.Timer | None = None
        self.generation = 0  # a timer whose report was overtaken by a newer one writes nothing
        self.stopped_before: str | None = None

    def __call__(self, progress: float, stage: str) -> None:
        with self.lock:
            self._cancel_timer()
            if self.stopped_before is not None:
                raise self._stopped(stage)
            now = time.monotonic()
            if self.last_write is not None and now - self.last_write < self.delay_s:
                self.generation += 1
                self.timer = threading.Timer(self.delay_s, self._write_later, (self.generation, progress, stage))
                self.timer.daemon = True
                self.timer.start()
                return
            self.last_write = now
            if not self.record(progress, stage):
                raise self._stopped(stage)

    def close(self) -> None:
        with self.lock:
            self._cancel_timer()

    def _write_later(self, generation: int, progress: float, stage: str) -> None:
        with self.lock:
            if generation != self.generation or self.stopped_before is not None:
                return
            self.last_write = time.monotonic()
            try:
                running = self.record(progress, stage)
            except Exception:  # Postgres away for a moment: the next report or the finish will tell
                log.warning("progress of job %s not recorded", self.job_id, exc_info=True)
                return
            if not running:
                self.stopped_before = stage

    def _cancel_timer(self) -> None:
        self.generation += 1
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _stopped(self, stage: str) -> JobStopped:
        return JobStopped(f"job {self.job_id} was cancelled or its media deleted; stopped before {stage}")
