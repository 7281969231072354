"""Model lifecycle: unloaded → loading → loaded (or error), in-flight counting, safe unload."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from shared.config import RESTART_EXIT_CODE, BatchSettings
from shared.http.errors import Unavailable
from shared.http.metrics import ServiceMetrics
from shared.kit.batching import Batch, DynamicBatcher
from shared.kit.device_use import DeviceMeter
from shared.kit.memory import release_memory
from shared.kit.placement import placement
from shared.kit.served_model import ServedModel
from shared.schemas.model import LoadResult, ModelInfo, ModelState, UnloadResult

log = logging.getLogger("mediamesh.lifecycle")

M = TypeVar("M", bound=ServedModel)
R = TypeVar("R")
T = TypeVar("T")


class ModelLifecycle(Generic[M]):
    """Owns one ServedModel: collapses concurrent loads, drains requests before unload."""

    def __init__(self, model: M, metrics: ServiceMetrics, *, autoload: bool = False, threads: int = 1) -> None:
        self.model = model
        self.metrics = metrics
        self.autoload = autoload
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=f"{model.settings.name}-infer")
        self.state = ModelState.unloaded
        self.error: str | None = None
        self.in_flight = 0
        self.loads = 0
        self.load_seconds: float | None = None
        self.loaded_at: datetime | None = None
        self.last_used: datetime | None = None
        self.footprint_bytes: int | None = None
        self._load_task: asyncio.Task[LoadResult] | None = None
        self._unloading = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._transition = asyncio.Lock()
        self._batchers: dict[Batch[Any, Any], DynamicBatcher[Any, Any]] = {}
        self.meter = DeviceMeter(model.device)
        self.restarting = False  # unload mode restart: unloaded, the process is about to exit
        self._running: dict[int, float] = {}  # request number → when it took the model (the watchdog's view)
        self._overdue: set[int] = set()
        self._numbers = itertools.count()

    @property
    def name(self) -> str:
        return self.model.settings.name

    async def run(self, fn: Callable[..., R], *args: object) -> R:
        """Run blocking work (inference) on the bounded inference thread pool."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    def batched(
        self, fn: Callable[[list[T]], Sequence[R]], *, max_batch_size: int, max_wait_s: float,
        max_queue: int | None = None,
    ) -> DynamicBatcher[T, R]:
        """A batcher that runs the blocking `fn` on the inference pool and records batch sizes."""

        async def run_batch(items: list[T]) -> Sequence[R]:
            return await self.run(fn, items)

        return DynamicBatcher(
            run_batch, max_batch_size=max_batch_size, max_wait_s=max_wait_s, on_batch=self.metrics.batch_size.observe,
            max_queue=max_queue, eager=True,  # tasks announce their requests (`Task.run`)
        )

    def batcher(self, batch: Batch[T, R]) -> DynamicBatcher[T, R]:
        """This app's batcher for `batch`, sized by the service's BatchSettings (made on first call)."""
        found = self._batchers.get(batch)
        if found is None:
            settings = self.model.settings
            if not isinstance(settings, BatchSettings):
                raise TypeError(f"{type(settings).__name__} has no max_batch_size / batch_timeout_ms: "
                                f"derive it from shared.config.BatchSettings to serve the batch '{batch.name}'")
            model = self.model
            found = self.batched(lambda items: batch.fn(model, items), max_batch_size=settings.max_batch_size,
                                 max_wait_s=settings.batch_timeout_ms / 1000, max_queue=settings.max_queue)
            self._batchers[batch] = found
        return found

    async def load(self) -> LoadResult:
        if self.restarting:
            raise Unavailable(self._not_loaded_message(), retry_after_s=5)
        if self.state is ModelState.loaded and not self._unloading:
            return self._load_result(already_loaded=True)
        if self._load_task is None or self._load_task.done():
            self._load_task = asyncio.create_task(self._load_once())
        return await asyncio.shield(self._load_task)

    async def _load_once(self) -> LoadResult:
        async with self._transition:
            if self.state is ModelState.loaded:
                return self._load_result(already_loaded=True)
            self.state, self.error = ModelState.loading, None
            started = time.perf_counter()
            try:
                await self.run(self._read_and_load)
            except Exception as exc:  # the reason is shown in /v1/model and /health
                log.exception("loading %s failed", self.name)
                await self.run(self._drop_weights)
                self.state, self.error = ModelState.error, f"{type(exc).__name__}: {exc}"
                raise Unavailable(f"model '{self.name}' failed to load: {self.error}", retry_after_s=30) from exc
            self.load_seconds = time.perf_counter() - started
            self.loads += 1
            self.loaded_at = self.last_used = datetime.now(UTC)
            self.footprint_bytes = self.model.measure_bytes()[0]
            self.state = ModelState.loaded
            self._observe_device()
            self.metrics.observe_load(self.load_seconds, self.footprint_bytes)
            log.info("loaded %s in %.2fs (%d bytes)", self.name, self.load_seconds, self.footprint_bytes)
            return self._load_result(already_loaded=False)

    def _load_result(self, *, already_loaded: bool) -> LoadResult:
        return LoadResult(
            name=self.name,
            state=self.state,
            memory_bytes=self.model.measure_bytes()[0],
            load_seconds=self.load_seconds,
            already_loaded=already_loaded,
            device_bytes=self._device_bytes(),
        )

    def _device_bytes(self) -> int | None:
        use = self.meter.measure()
        return use.process_bytes if use is not None else None

    def _observe_device(self) -> int | None:
        found = self._device_bytes()
        if found is not None:
            self.metrics.device_bytes.set(found)
        return found

    async def unload(self) -> UnloadResult:
        if self._load_task is not None and not self._load_task.done():
            await asyncio.gather(self._load_task, return_exceptions=True)
        async with self._transition:
            restart = self.model.settings.unload_mode == "restart"
            if self.state in (ModelState.unloaded, ModelState.error) and not (restart and self.meter.context_bytes):
                return UnloadResult(
                    name=self.name, state=self.state, freed_bytes=0, memory_bytes=self.model.measure_bytes()[0],
                    already_unloaded=True, device_bytes=self._device_bytes(),
                )
            self._unloading = True
            try:
                await self._idle.wait()
                before = self.model.measure_bytes()[0]
                device_before = self._device_bytes()
                if restart:  # the process's exit frees everything, context included: nothing to drop first
                    self.restarting, self.state = True, ModelState.unloaded
                    log.info("unloaded %s by ending the process (unload mode restart); it holds %s bytes on the "
                             "GPU until it exits", self.name, device_before)
                    return UnloadResult(name=self.name, state=self.state, freed_bytes=before, memory_bytes=0,
                                        device_bytes=0 if device_before is not None else None,
                                        device_freed_bytes=device_before, restarting=True)
                await self.run(self._drop_weights)
                after = self.model.measure_bytes()[0]
                self.state = ModelState.unloaded
            finally:
                self._unloading = self.restarting  # a restarting process takes no more requests
            self.metrics.observe_unload(after)
            device_after = self._observe_device()
            log.info("unloaded %s, freed %d bytes (%s bytes left on the GPU)", self.name, before - after, device_after)
            freed_on_device = None if device_before is None or device_after is None else device_before - device_after
            return UnloadResult(
                name=self.name, state=self.state, freed_bytes=max(before - after, 0), memory_bytes=after,
                device_bytes=device_after, device_freed_bytes=freed_on_device,
            )

    def exit_for_restart(self) -> None:
        """Unload mode restart, once the unload's answer is sent: end the process; its supervisor starts it again."""
        log.info("%s exits with code %d to free the GPU; its supervisor starts it again", self.name, RESTART_EXIT_CODE)
        for handler in logging.getLogger().handlers:
            handler.flush()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(RESTART_EXIT_CODE)  # now: a clean shutdown would wait for keep-alive connections

    def _read_and_load(self) -> None:
        self.model.read_weights_ahead()
        self.meter.before_first_load()
        self.model.load()

    def _drop_weights(self) -> None:
        self.model.unload()
        release_memory()

    @asynccontextmanager
    async def use(self) -> AsyncIterator[M]:
        """Hold the model for one request: 503 when it is not loaded (unless autoload)."""
        if self.state is not ModelState.loaded or self._unloading:
            if not self.autoload or self._unloading:
                raise Unavailable(self._not_loaded_message())
            await self.load()
        self.in_flight += 1
        self._idle.clear()
        self.metrics.in_flight.set(self.in_flight)
        number, started = next(self._numbers), time.monotonic()
        self._running[number] = started
        limit = self.model.settings.inference_limit_s
        watchdog = asyncio.get_running_loop().call_later(limit, self._past_limit, number) if limit else None
        try:
            yield self.model
        finally:
            if watchdog is not None:
                watchdog.cancel()
            self._running.pop(number, None)
            if number in self._overdue:
                self._overdue.discard(number)
                self.metrics.overdue_now.set(len(self._overdue))
                log.warning("inference on %s finished after %.1fs, past its limit of %ss",
                            self.name, time.monotonic() - started, limit)
            self.in_flight -= 1
            self.last_used = datetime.now(UTC)
            self.metrics.in_flight.set(self.in_flight)
            if self.in_flight == 0:
                self._idle.set()

    def _past_limit(self, number: int) -> None:
        """The watchdog: an inference has held the model longer than INFERENCE_LIMIT_S."""
        if number not in self._running:
            return
        self._overdue.add(number)
        self.metrics.overdue.inc()
        self.metrics.overdue_now.set(len(self._overdue))
        log.warning("inference on %s has run past its limit of %ss (INFERENCE_LIMIT_S) and is still running; "
                    "%d past the limit now", self.name, self.model.settings.inference_limit_s, len(self._overdue))

    @property
    def overdue(self) -> int:
        return len(self._overdue)

    def longest_inference_s(self) -> float | None:
        return time.monotonic() - min(self._running.values()) if self._running else None

    def _not_loaded_message(self) -> str:
        if self.restarting:
            return f"model '{self.name}' was unloaded and its process is restarting; retry shortly"
        if self._unloading:
            return f"model '{self.name}' is being unloaded; load it again with POST /v1/model/load"
        if self.state is ModelState.error:
            return f"model '{self.name}' failed to load ({self.error}); fix it and POST /v1/model/load"
        if self.state is ModelState.loading:
            return f"model '{self.name}' is still loading; retry shortly"
        return (
            f"model '{self.name}' is not loaded; load it with POST /v1/model/load "
            "(the gateway does this for you) or start the service with autoload"
        )

    def info(self) -> ModelInfo:
        used, reserved = self.model.measure_bytes()
        return ModelInfo(
            name=self.name,
            model_id=str(self.model.path),
            state=self.state,
            error=self.error,
            tiny=self.model.is_tiny(),
            device=str(self.model.device),
            dtype=str(self.model.dtype).removeprefix("torch."),
            quantization=self.model.quantization,
            memory_bytes=used,
            memory_reserved_bytes=reserved,
            footprint_bytes=self.footprint_bytes,
            estimated_bytes=self.model.estimate_bytes(),
            load_seconds=self.load_seconds,
            loaded_at=self.loaded_at,
            last_used=self.last_used,
            in_flight=self.in_flight,
            loads=self.loads,
            details=self.model.describe() if self.state is ModelState.loaded else {},
            pid=os.getpid(),
            unload_mode=self.model.settings.unload_mode,
            device_use=self.meter.measure(),
            overdue=self.overdue,
            longest_inference_s=self.longest_inference_s(),
            placement=placement(self.model.device, self.model.settings.node.name),
        )

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
