"""Runs ingest and cluster jobs from the Redis stream (settings prefix `WORKER_`).

Each job is acknowledged only once its outcome is in Postgres, and heart-beats while it runs, so a
killed worker's job is delivered again after the visibility timeout. A failing job is retried with
exponential backoff; after `max_attempts` it ends `failed` with its error.

`concurrency` threads run jobs at once; the images they embed are sent to clip together (worker/batching.py),
and the next job is picked from a few claimed ahead so that loaded models are used before others are
loaded (worker/ordering.py).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time

from shared.schemas.clip import EmbedResponse
from storage.repositories.jobs import RunningElsewhere
from storage.runtime import Storage, open_storage
from worker.batching import CrossJobBatcher
from worker.metrics import WorkerMetrics
from worker.model_client import ModelClient
from worker.ordering import JobPicker, models_for
from worker.pipeline_runner import run_job
from worker.pipelines.context import JobStopped, PermanentError, PipelineContext
from worker.progress import ProgressReporter
from worker.settings import WorkerSettings

log = logging.getLogger("mediamesh.worker")


class Worker:
    def __init__(self, settings: WorkerSettings, storage: Storage) -> None:
        self.settings = settings
        self.storage = storage
        self.consumer = settings.consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.stopping = threading.Event()
        self.metrics = WorkerMetrics(waiting=storage.queue.waiting)

    def run_forever(self) -> None:
        settings = self.settings
        shared = ModelClient.from_settings(settings)  # the batcher's and the picker's calls
        # a lone job has no one to wait for: its images go at once
        wait_s = settings.batch_wait_ms / 1000 if settings.concurrency > 1 else 0.0
        embedder: CrossJobBatcher[str, EmbedResponse] = CrossJobBatcher(
            lambda images: one_each(shared.embed_images(images)), max_batch=settings.batch_max, wait_s=wait_s,
            name="clip")
        picker = JobPicker(self.storage.queue, self.consumer, needs=self.models_needed, loaded=shared.loaded_models,
                           lookahead=settings.lookahead, max_deferrals=settings.max_deferrals,
                           visibility_ms=int(settings.visibility_timeout_s * 1000),
                           refresh_s=settings.models_refresh_s, touch=self.storage.jobs.touch)
        threads = [threading.Thread(target=self._loop, args=(f"{self.consumer}-{i}", picker, embedder),
                                    name=f"worker-{i}") for i in range(settings.concurrency)]
        for thread in threads:
            thread.start()
        try:
            with _Heartbeat(picker.heartbeat, settings.visibility_timeout_s / 3):
                for thread in threads:
                    thread.join()
        finally:
            released = picker.release()
            if released:
                log.info("stopping: %d claimed-ahead job(s) put back on the queue", released)
            embedder.close()
            shared.close()

    def models_needed(self, job_ids: list[str]) -> dict[str, frozenset[str]]:
        """The services each queued job will call (by its kind and its media's), for the picker."""
        kinds = self.storage.jobs.work_kinds(job_ids)
        return {job_id: models_for(kind, self.settings.image_analysis) for job_id, kind in kinds.items()}

    def _loop(self, consumer: str, picker: JobPicker, embedder: CrossJobBatcher[str, EmbedResponse]) -> None:
        reconciles = consumer.endswith("-0")  # one thread per worker looks for lost jobs
        next_reconcile = 0.0
        models = ModelClient.from_settings(self.settings, image_embedder=embedder.submit)
        try:
            while not self.stopping.is_set():
                try:
                    if reconciles and time.monotonic() >= next_reconcile:
                        next_reconcile = time.monotonic() + self.settings.reconcile_interval_s
                        self.reconcile()
                    self.storage.queue.promote_due()
                    delivery = picker.next(block_ms=500)
                    if delivery is not None:
                        try:
                            self.process(consumer, delivery.message_id, delivery.job_id, models)
                        finally:
                            picker.done(delivery)
                except Exception:  # Redis or Postgres away: keep the worker alive, wait, go on
                    log.exception("worker loop error; retrying in 1s")
                    self.stopping.wait(1.0)
        finally:
            models.close()

    def reconcile(self) -> int:
        """Queue again the unfinished jobs whose queue entry is gone (e.g. Redis restarted without its data).
        Postgres is the record of what was accepted; a duplicate delivery is harmless (see JobRepository.start)."""
        queue, jobs = self.storage.queue, self.storage.jobs
        if not queue.lock("reconcile", self.settings.reconcile_interval_s) or queue.waiting() > 0:
            return 0
        lost = jobs.stale(self.settings.resolved_stale_after_s())
        for job_id in lost:
            jobs.touch(job_id)
            queue.enqueue(job_id)
        if lost:
            log.warning("re-queued %d job(s) with no queue entry: %s", len(lost), ", ".join(lost[:10]))
        return len(lost)

    def process(self, consumer: str, message_id: str, job_id: str, models: ModelClient) -> None:
        queue, jobs = self.storage.queue, self.storage.jobs
        try:
            started = jobs.start(job_id, alive_within_s=0.8 * self.settings.visibility_timeout_s)
        except RunningElsewhere:
            # not acknowledged: if its worker is alive it takes the message back with its next heartbeat (and
            # acknowledges it when done); if it died, the message comes back here after the visibility timeout
            log.info("job %s is running on another worker that beat lately; looking again later", job_id)
            return
        if started is None:  # unknown, cancelled, its media deleted, or already final: nothing to do
            log.info("job %s skipped: gone, cancelled or already finished", job_id)
            queue.ack(message_id)
            return
        job = started.job
        log.info("job %s (%s) attempt %d/%d", job.id, job.kind, job.attempts, job.max_attempts)

        report = ProgressReporter(job_id, lambda progress, stage: jobs.progress(job_id, progress, stage),
                                  self.settings.progress_delay_s)
        ctx = PipelineContext(media=self.storage.media, clusters=self.storage.clusters, store=self.storage.store,
                              models=models, settings=self.settings, report=report)
        def beat() -> None:
            queue.heartbeat(consumer, message_id)
            jobs.touch(job_id)

        heartbeat = _Heartbeat(beat, self.settings.visibility_timeout_s / 3)
        began = time.monotonic()
        self.metrics.running.inc()
        try:
            with heartbeat:
                try:
                    finished = run_job(ctx, started)
                finally:
                    report.close()
                if not jobs.finish(job_id, finished.result, finished.writes):
                    raise JobStopped(f"job {job_id} was cancelled or its media deleted; stopped before done")
        except JobStopped as exc:
            log.info("%s", exc)
            self.metrics.observe(job.kind, "cancelled", time.monotonic() - began)
            queue.ack(message_id)
            return
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            log.warning("job %s attempt %d failed: %s", job_id, job.attempts, error, exc_info=True)
            final = job.attempts >= job.max_attempts or isinstance(exc, PermanentError)
            self.metrics.observe(job.kind, "failed" if final else "retried", time.monotonic() - began)
            if final:
                jobs.fail(job_id, error)
            else:
                delay = backoff_delay(job.attempts, self.settings.backoff_base_s, self.settings.backoff_max_s)
                if jobs.retry_later(job_id, error, delay):  # not when cancelled or deleted meanwhile
                    queue.schedule(job_id, delay)  # scheduled before the ack: a crash in between re-delivers
            queue.ack(message_id)
            return
        finally:
            self.metrics.running.dec()
        queue.ack(message_id)
        self.metrics.observe(job.kind, "done", time.monotonic() - began)


def one_each(answer: EmbedResponse) -> list[EmbedResponse]:
    """A batch's answer as one answer per image, each as if that image had been sent alone."""
    return [answer.model_copy(update={"embeddings": [vector]}) for vector in answer.embeddings]


def backoff_delay(attempt: int, base_s: float, max_s: float) -> float:
    """Exponential backoff: base, 2*base, 4*base, ... capped at max_s."""
    return min(max_s, base_s * (2 ** max(0, attempt - 1)))


class _Heartbeat:
    """Calls `beat` every `interval_s` on a thread while a job runs."""

    def __init__(self, beat, interval_s: float) -> None:  # type: ignore[no-untyped-def]
        self.beat, self.interval_s = beat, interval_s
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.done.wait(self.interval_s):
            try:
                self.beat()
            except Exception:
                log.warning("heartbeat failed", exc_info=True)

    def __enter__(self) -> _Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join(timeout=5)


def main() -> None:
    settings = WorkerSettings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per model call drowns the job log
    logging.getLogger("alembic").setLevel(logging.WARNING)
    storage = open_storage(settings.connections, migrate=settings.migrate_on_start)
    worker = Worker(settings, storage)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: worker.stopping.set())
    log.info("worker %s: queue %s, gateway %s", worker.consumer, settings.connections.queue_name, settings.gateway.url)
    worker.metrics.serve(settings.metrics_host, settings.metrics_port)
    try:
        worker.run_forever()
    finally:
        storage.close()


if __name__ == "__main__":
    main()
