"""Task hooks, after LitServe: a service declares decode / predict (or a batch) / encode; the kit runs them.

    decode(model, body) -> x           a worker thread, never the event loop: base64, images, audio, tokens
    batch=Batch(fn)                    fn(model, items) -> one result per item, through the dynamic batcher
    predict(model, body, x) -> y       the lifecycle's inference thread (after the batch, if there is one)
    encode(model, body, y) -> answer   the event loop: only shapes the answer

A batch waits (up to the batch timeout) only for requests that are still decoding, never for
requests that may not come; a request that finds the service otherwise idle skips the hand-offs and
runs decode and batch in one call on the inference thread (same hooks, same answer).

The kit holds the model for the whole call (503 while it is unloaded, unless autoload), measures
the call and sets `processing_time_ms` on the answer. The hooks are plain functions, so a service
has no `async def` in which it could block the event loop.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, get_type_hints

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from shared.kit.batching import Batch, DynamicBatcher
from shared.kit.lifecycle import ModelLifecycle
from shared.schemas.common import TimedResponse

Decode = Callable[[Any, Any], Any]
Predict = Callable[[Any, Any, Any], Any]
Encode = Callable[[Any, Any, Any], Any]


@dataclass(frozen=True)
class Task:
    """One task's pipeline. `run` is also what a hand-written route calls after parsing its own input
    (a multipart upload, say): the hooks then run exactly as they do behind `TaskRouter.task`."""

    encode: Encode
    decode: Decode | None = None
    batch: Batch[Any, Any] | None = None
    predict: Predict | None = None

    async def run(self, lifecycle: ModelLifecycle[Any], body: Any) -> Any:
        started = time.perf_counter()
        async with lifecycle.use() as model:
            batcher = None if self.batch is None else lifecycle.batcher(self.batch)
            if batcher is not None and lifecycle.in_flight == 1 and batcher.idle:
                # alone: decode, batch and predict in one hop to the inference thread, not three (a
                # thread wake-up is dear on busy cores); the same hooks run, so the answer is the same
                async with batcher.alone():
                    value = await lifecycle.run(self._alone, model, body, batcher)
            else:
                value = await self._pipelined(lifecycle, model, body, batcher)
            answer = self.encode(model, body, value)
        if isinstance(answer, TimedResponse):
            answer.processing_time_ms = (time.perf_counter() - started) * 1000
        return answer

    async def _pipelined(self, lifecycle: ModelLifecycle[Any], model: Any, body: Any,
                         batcher: DynamicBatcher[Any, Any] | None) -> Any:
        if batcher is None:
            value = body if self.decode is None else await run_in_threadpool(self.decode, model, body)
        else:
            with batcher.expect() as arrival:  # a batch waits for this request only while it decodes
                value = body if self.decode is None else await run_in_threadpool(self.decode, model, body)
                value = _raise_failed(await batcher.submit_many(value, arrival))
        if self.predict is not None:
            value = await lifecycle.run(self.predict, model, body, value)
        return value

    def _alone(self, model: Any, body: Any, batcher: DynamicBatcher[Any, Any]) -> Any:
        """decode, the batch function (in batches no larger than the batcher's) and predict in one call."""
        assert self.batch is not None
        items = list(body if self.decode is None else self.decode(model, body))
        results: list[Any] = []
        for start in range(0, len(items), batcher.max_batch_size):
            chunk = items[start:start + batcher.max_batch_size]
            if batcher.on_batch is not None:
                batcher.on_batch(len(chunk))
            results.extend(self.batch.fn(model, chunk))
        value = _raise_failed(results)
        return value if self.predict is None else self.predict(model, body, value)


def _raise_failed(results: Sequence[Any]) -> list[Any]:
    for result in results:
        if isinstance(result, Exception):
            raise result
    return list(results)


class TaskRouter(APIRouter):
    """An `APIRouter` whose `task` decorator turns an encode function into a POST endpoint.

    The decorated function's second parameter's annotation is the request body, its return
    annotation the response model; `aliases` are older paths served by the same handler (marked
    deprecated in the OpenAPI schema).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.batches: list[Batch[Any, Any]] = []

    def task(
        self,
        path: str,
        *,
        decode: Decode | None = None,
        predict: Predict | None = None,
        batch: Batch[Any, Any] | None = None,
        aliases: Sequence[str] = (),
    ) -> Callable[[Encode], Task]:
        def register(encode: Encode) -> Task:
            task = Task(encode=encode, decode=decode, batch=batch, predict=predict)
            endpoint, response_model = _endpoint(task, encode)
            self.add_api_route(path, endpoint, methods=["POST"], response_model=response_model)
            for alias in aliases:
                self.add_api_route(alias, endpoint, methods=["POST"], response_model=response_model, deprecated=True)
            if batch is not None and batch not in self.batches:
                self.batches.append(batch)
            return task

        return register


def _endpoint(task: Task, encode: Encode) -> tuple[Callable[..., Any], Any]:
    """An `async def (body: <Request>, request: Request) -> <Response>` FastAPI can read, calling `task.run`."""
    hints = get_type_hints(encode)
    names = list(inspect.signature(encode).parameters)
    if len(names) != 3:
        raise TypeError(f"{encode.__name__}: an encode hook takes (model, body, value), got ({', '.join(names)})")
    body_type, response_type = hints.get(names[1]), hints.get("return")
    if body_type is None:
        raise TypeError(f"{encode.__name__}: annotate `{names[1]}` with the request model so FastAPI can parse it")

    async def endpoint(body: Any, request: Request) -> Any:
        return await task.run(request.app.state.lifecycle, body)

    parameters = [
        inspect.Parameter("body", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=body_type),
        inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request),
    ]
    endpoint.__signature__ = inspect.Signature(parameters, return_annotation=response_type)  # type: ignore[attr-defined]
    endpoint.__name__, endpoint.__doc__ = encode.__name__, encode.__doc__
    return endpoint, response_type
