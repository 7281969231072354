"""One error policy for every process: 4xx with an actionable message, 500 without internals."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

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


class ErrorDetail(BaseModel):
    """The body of every error answer of the mesh (FastAPI's own 422 for a malformed request aside)."""

    detail: str = Field(description="What went wrong and, where it can be said, how to fix it.")


_REF = "#/components/schemas/{model}"
_VALIDATION_REF = {"$ref": _REF.format(model="HTTPValidationError")}


def declare_error_responses(app: FastAPI) -> None:
    """Make every operation of `app`'s OpenAPI document name the error answers of this policy.

    Added once to the finished document rather than to each route: `4XX` and `5XX` answer
    `ErrorDetail`, `503` also carries `Retry-After`, and FastAPI's 422 (its validation-error list)
    becomes "either shape", as `BadInput` answers 422 with a plain `detail` string. A response an
    operation declares itself is left as it is."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            _add_error_responses(build())
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _add_error_responses(document: dict[str, Any]) -> None:
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["ErrorDetail"] = ErrorDetail.model_json_schema(ref_template=_REF)
    error = {"application/json": {"schema": {"$ref": _REF.format(model="ErrorDetail")}}}
    added = {
        "4XX": {"description": "The request cannot be served as sent; `detail` says why.", "content": error},
        "503": {"description": "A model or a dependency cannot serve now; retry after `Retry-After` seconds.",
                "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}},
                "content": error},
        "5XX": {"description": "An unexpected error (logged with its traceback) or an unreachable upstream.",
                "content": error},
    }
    for path in document.get("paths", {}).values():
        for operation in path.values():
            responses = operation.setdefault("responses", {})
            for status, response in added.items():
                responses.setdefault(status, response)
            validation = responses.get("422", {}).get("content", {}).get("application/json", {})
            if validation.get("schema") == _VALIDATION_REF:
                validation["schema"] = {"anyOf": [_VALIDATION_REF, error["application/json"]["schema"]]}
