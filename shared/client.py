"""ONE client of the gateway's HTTP API, sync (`GatewayClient`) and async (`AsyncGatewayClient`), for the
command line, the worker and anyone scripting the mesh.

Both build requests the same way (base URL, bearer key), read answers the same way (checked against a
shared schema when the caller names one) and map errors the same way:

* `GatewayError`: an error answer, with its status and `detail` (the base of the three below).
* `UnexpectedAnswer`: an answer whose body does not match the expected schema.
* `GatewayNoAnswer`: no HTTP answer at all, e.g. none in time (a model hung; the gateway may be fine);
  `GatewayUnreachable`, one kind of it: no connection for `connect_wait_s` (the gateway itself is away).

A 503 with Retry-After (the memory budget is busy) is retried up to `busy_retries` times, waiting as told.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import IO, Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from shared.config import GatewayAccess
from shared.http.errors import error_detail
from shared.schemas.gateway import ClassifyRequest, ClassifyResponse, HealthReport, ModelsReport

T = TypeVar("T", bound=BaseModel)
Payload = BaseModel | dict[str, Any]


class GatewayError(RuntimeError):
    """The gateway answered with an error. `reason` is the short form: `HTTP 503: blip2 is down`."""

    def __init__(self, status_code: int, detail: str, reason: str | None = None) -> None:
        super().__init__(reason or f"gateway answered {status_code}: {detail}")
        self.status_code, self.detail = status_code, detail
        self.reason = reason or f"HTTP {status_code}: {detail}"


class GatewayNoAnswer(GatewayError):
    """No HTTP answer at all: no answer in time (e.g. a model hung), or the connection broke mid-answer."""

    def __init__(self, cause: Exception, reason: str | None = None) -> None:
        cause_text = f"{type(cause).__name__}: {cause}"
        super().__init__(0, cause_text, reason or f"no answer through the gateway ({cause_text})")


class GatewayUnreachable(GatewayNoAnswer):
    """No connection to the gateway (refused, no route) for `connect_wait_s`: the gateway itself is away,
    not one model."""

    def __init__(self, url: str, cause: Exception) -> None:
        super().__init__(cause, f"cannot reach the gateway at {url}: it is not answering "
                         f"({type(cause).__name__}: {cause}); is it running?")


class UnexpectedAnswer(GatewayError):
    """The answer's body is not what the contract (a schema in shared/schemas) says."""

    def __init__(self, status_code: int, expected: str, problem: str) -> None:
        super().__init__(status_code, problem, f"the answer is not a valid {expected}: {problem}")


@dataclass(frozen=True)
class RetryPolicy:
    busy_retries: int = 0
    connect_wait_s: float = 0.0
    max_busy_wait_s: float = 10.0


@dataclass(frozen=True)
class _Request:
    method: str
    path: str
    answer: type[BaseModel] | None = None
    accept: tuple[int, ...] = ()  # error statuses whose body is still the answer (a 503 health report)
    kwargs: dict[str, Any] = field(default_factory=dict)


class _Attempts:
    """When to try a request again: after a refused connection (until `connect_wait_s` is spent) and after
    a busy 503. No I/O here, so the sync and the async client share it; they only sleep differently."""

    def __init__(self, policy: RetryPolicy, url: str) -> None:
        self.policy, self.url = policy, url
        self.deadline = time.monotonic() + policy.connect_wait_s
        self.pause, self.busy = 0.2, 0

    def after_refused(self, exc: httpx.ConnectError) -> float:
        if time.monotonic() + self.pause > self.deadline:
            raise GatewayUnreachable(self.url, exc) from exc
        pause, self.pause = self.pause, min(self.pause * 2, 5.0)
        return pause

    def busy_wait(self, response: httpx.Response) -> float | None:
        if response.status_code != 503 or "retry-after" not in response.headers:
            return None
        if self.busy >= self.policy.busy_retries:
            return None
        self.busy += 1
        try:
            told = float(response.headers["retry-after"] or 1)
        except ValueError:  # an HTTP date: we do not wait that long anyway
            told = self.policy.max_busy_wait_s
        return min(self.policy.max_busy_wait_s, told)


def read_answer(response: httpx.Response, answer: type[BaseModel] | None = None, accept: tuple[int, ...] = ()) -> Any:
    """The answer's JSON (validated as `answer` when given), or the GatewayError it stands for."""
    if response.status_code >= 400 and response.status_code not in accept:
        raise GatewayError(response.status_code, error_detail(response.content))
    try:
        body = response.json()
        return body if answer is None else answer.model_validate(body)
    except ValueError as exc:  # not JSON, or pydantic's ValidationError (a ValueError)
        raise UnexpectedAnswer(response.status_code, answer.__name__ if answer else "JSON answer",
                               validation_problem(exc)) from exc


def validation_problem(exc: ValueError) -> str:
    """What is wrong with a body, in one line: the first few of pydantic's errors, or the parser's message."""
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()[:3])
    return str(exc)[:200]


def _json(payload: Payload) -> Any:
    return payload.model_dump(mode="json", exclude_none=True) if isinstance(payload, BaseModel) else payload


class _ClientBase:
    def __init__(self, url: str | None, api_key: str | None, retry: RetryPolicy | None) -> None:
        if url is None or api_key is None:
            access = GatewayAccess()
            url = url or access.url
            api_key = api_key or (access.api_key.get_secret_value() if access.api_key else None)
        self.base_url = url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.retry = retry or RetryPolicy()

    @staticmethod
    def _service(service: str, path: str, payload: Payload, answer: type[BaseModel] | None) -> _Request:
        """A model service's task endpoint through the gateway's scheduler (`/v1/services/{name}/{path}`)."""
        return _Request("POST", f"/v1/services/{service}/{path.lstrip('/')}", answer, kwargs={"json": _json(payload)})

    @staticmethod
    def _classify(request: ClassifyRequest) -> _Request:
        return _Request("POST", "/v1/classify", ClassifyResponse, kwargs={"json": _json(request)})

    _HEALTH = _Request("GET", "/v1/health", HealthReport, accept=(503,))  # a degraded gateway answers 503
    _MODELS = _Request("GET", "/v1/models", ModelsReport)


class GatewayClient(_ClientBase):
    def __init__(self, url: str | None = None, api_key: str | None = None, timeout_s: float = 300.0, *,
                 retry: RetryPolicy | None = None, transport: httpx.BaseTransport | None = None) -> None:
        super().__init__(url, api_key, retry)
        self.http = httpx.Client(base_url=self.base_url, timeout=timeout_s, headers=self.headers, transport=transport)

    def request(self, method: str, path: str, *, answer: type[BaseModel] | None = None, **kwargs: Any) -> Any:
        return self._run(_Request(method, path, answer, kwargs=kwargs))

    def call(self, service: str, path: str, payload: Payload, answer: type[T]) -> T:
        return self._run(self._service(service, path, payload, answer))

    def call_json(self, service: str, path: str, payload: Payload) -> Any:
        return self._run(self._service(service, path, payload, None))

    def classify(self, request: ClassifyRequest) -> ClassifyResponse:
        return self._run(self._classify(request))

    def classify_file(self, data: bytes, filename: str, *, mode: str = "auto",
                      variant: str | None = None) -> ClassifyResponse:
        form = {"mode": mode} | ({"variant": variant} if variant else {})
        return self.request("POST", "/v1/classify/upload", answer=ClassifyResponse,
                            files={"file": (filename, data)}, data=form)

    def cascade_config(self) -> Any:
        return self.request("GET", "/v1/cascade/config")

    def put_cascade_config(self, config: Any) -> Any:
        return self.request("PUT", "/v1/cascade/config", json=config)

    def health(self) -> HealthReport:
        return self._run(self._HEALTH)

    def models(self) -> ModelsReport:
        return self._run(self._MODELS)

    def media_by_sha256(self, sha256: str) -> dict[str, Any] | None:
        """The stored item with these bytes, or None."""
        try:
            return self.request("GET", f"/v1/media/by-sha256/{sha256}")
        except GatewayError as exc:
            if exc.status_code == 404:
                return None
            raise

    def upload_media(self, filename: str, content: bytes | IO[bytes]) -> dict[str, Any]:
        return self.request("POST", "/v1/media", files={"file": (filename, content)})

    def media_file(self, media_id: str) -> bytes:
        """A stored item's original bytes (`GET /v1/media/{id}/file`)."""
        try:
            response = self.http.get(f"/v1/media/{quote(media_id, safe='')}/file")
        except httpx.ConnectError as exc:
            raise GatewayUnreachable(self.base_url, exc) from exc
        except httpx.HTTPError as exc:
            raise GatewayNoAnswer(exc) from exc
        if response.status_code >= 400:
            raise GatewayError(response.status_code, error_detail(response.content))
        return response.content

    def job(self, job_id: str) -> dict[str, Any]:
        return self.request("GET", f"/v1/jobs/{job_id}")

    def search(self, **params: Any) -> dict[str, Any]:
        query = {k: v for k, v in params.items() if v is not None}
        return self.request("GET", "/v1/search", params=query)

    def _run(self, request: _Request) -> Any:
        attempts = _Attempts(self.retry, self.base_url)
        while True:
            try:
                response = self.http.request(request.method, request.path, **request.kwargs)
            except httpx.ConnectError as exc:
                time.sleep(attempts.after_refused(exc))
                continue
            except httpx.HTTPError as exc:
                raise GatewayNoAnswer(exc) from exc
            wait_s = attempts.busy_wait(response)
            if wait_s is None:
                return read_answer(response, request.answer, request.accept)
            time.sleep(wait_s)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncGatewayClient(_ClientBase):
    def __init__(self, url: str | None = None, api_key: str | None = None, timeout_s: float = 300.0, *,
                 retry: RetryPolicy | None = None, transport: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__(url, api_key, retry)
        self.http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout_s, headers=self.headers,
                                      transport=transport)

    async def request(self, method: str, path: str, *, answer: type[BaseModel] | None = None, **kwargs: Any) -> Any:
        return await self._run(_Request(method, path, answer, kwargs=kwargs))

    async def call(self, service: str, path: str, payload: Payload, answer: type[T]) -> T:
        return await self._run(self._service(service, path, payload, answer))

    async def call_json(self, service: str, path: str, payload: Payload) -> Any:
        return await self._run(self._service(service, path, payload, None))

    async def classify(self, request: ClassifyRequest) -> ClassifyResponse:
        return await self._run(self._classify(request))

    async def health(self) -> HealthReport:
        return await self._run(self._HEALTH)

    async def models(self) -> ModelsReport:
        return await self._run(self._MODELS)

    async def _run(self, request: _Request) -> Any:
        attempts = _Attempts(self.retry, self.base_url)
        while True:
            try:
                response = await self.http.request(request.method, request.path, **request.kwargs)
            except httpx.ConnectError as exc:
                await asyncio.sleep(attempts.after_refused(exc))
                continue
            except httpx.HTTPError as exc:
                raise GatewayNoAnswer(exc) from exc
            wait_s = attempts.busy_wait(response)
            if wait_s is None:
                return read_answer(response, request.answer, request.accept)
            await asyncio.sleep(wait_s)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> AsyncGatewayClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
