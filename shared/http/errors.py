"""One error policy for every process: 4xx with an actionable message, 500 without internals."""

from __future__ import annotations

import json
import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

log = logging.getLogger("mediamesh.errors")


class ServiceError(Exception):
    """An error whose message is safe and useful to show the caller."""

    status_code = 400

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}


class BadInput(ServiceError):
    status_code = 422


class UnsupportedMedia(ServiceError):
    status_code = 415


class PayloadTooLarge(ServiceError):
    status_code = 413


class NotFound(ServiceError):
    status_code = 404


class Conflict(ServiceError):
    status_code = 409


class Unavailable(ServiceError):
    """The model or a dependency cannot serve now; the caller may retry later."""

    status_code = 503

    def __init__(self, detail: str, *, retry_after_s: int = 5) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after_s)})


def error_detail(body: bytes | str, *, limit: int = 500) -> str:
    """The message of an error answer from any mesh process: its JSON `detail`, else the start of the body."""
    try:
        parsed = json.loads(body)
    except ValueError:
        text = body.decode(errors="replace") if isinstance(body, bytes) else body
        return text[:limit]
    detail = parsed.get("detail", parsed) if isinstance(parsed, dict) else parsed
    return str(detail)[:limit]


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service_error(_: Request, exc: ServiceError) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error; the service log has the traceback"}, status_code=500)
