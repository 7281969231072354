"""OpenAI's error shape on the OpenAI-compatible routes: `{"error": {"message", "type", "param", "code"}}`.

The rest of the gateway answers `{"detail": ...}`; OpenAI clients read `error.message` and
`error.code`, so these routes carry their own route class that shapes every failure that way:
validation errors, `ServiceError`s (the scheduler's 503 with Retry-After included), a service's
own error answers (a 422 becomes OpenAI's 400), and the unexpected (logged with its traceback,
answered 500 without internals).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from shared.http.errors import ServiceError

log = logging.getLogger("mediamesh.openai")

ERROR_TYPES = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIError(BaseModel):
    error: OpenAIErrorDetail


# declared on the OpenAI router, so the OpenAPI document names this shape for these routes
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": OpenAIError, "description": "Invalid request, unknown model (404 `model_not_found`)."},
    503: {"model": OpenAIError, "description": "No memory frees up for the model now; retry after `Retry-After`.",
          "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}}},
    "5XX": {"model": OpenAIError, "description": "An unexpected error, or the service is unreachable."},
}


def openai_error(
    status: int, message: str, *, code: str | None = None, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    status = 400 if status == 422 else status  # OpenAI answers every invalid request 400, never 422
    kind = ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return JSONResponse({"error": {"message": message, "type": kind, "param": None, "code": code}},
                        status_code=status, headers=dict(headers or {}))


def validation_message(exc: RequestValidationError) -> str:
    parts = [f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body') or 'body'}: {e.get('msg')}"
             for e in exc.errors()]
    return "; ".join(parts) or "the request is not valid"


class OpenAIRoute(APIRoute):
    """A route whose every error answer is in OpenAI's shape."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                return openai_error(400, validation_message(exc))
            except ServiceError as exc:
                return openai_error(exc.status_code, exc.detail, code=getattr(exc, "code", None), headers=exc.headers)
            except HTTPException as exc:
                return openai_error(exc.status_code, str(exc.detail), headers=exc.headers)
            except Exception:
                log.exception("unhandled error on %s %s", request.method, request.url.path)
                return openai_error(500, "internal error; the gateway log has the traceback")

        return handle
