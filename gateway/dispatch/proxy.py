"""`POST` / `GET /v1/services/{name}/{path}`: any model service's endpoint, behind the scheduler.

Body, content type (JSON or multipart), query string, status and body pass through as they
are; server-sent events (`/v1/chat/completions` with `stream: true`) are streamed, and the
model stays held until the stream ends.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from fastapi.routing import APIRoute
from starlette.background import BackgroundTask

from gateway.dispatch.dispatcher import ServiceDispatcher


class PassThroughRoute(APIRoute):
    """A route whose endpoint gets its path parameters as they matched, and the request.

    The parameters are plain strings that need no validation, so FastAPI's per-request solving of the
    signature (about 8 % of the gateway's CPU per proxied call in a py-spy profile) is skipped; the
    signature still documents them in the OpenAPI schema. Errors propagate to the app's handlers as from
    any route. No dependency runs for such a route (`Depends`, router or app `dependencies=`)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint = self.endpoint

        async def handle(request: Request) -> Response:
            response: Response = await endpoint(**request.path_params, request=request)
            return response

        return handle


router = APIRouter(tags=["services"], route_class=PassThroughRoute)


# two routes rather than one with two methods: each gets its own OpenAPI operation id
@router.get("/v1/services/{name}/{path:path}", summary="Read a model service's state (holds no model)")
@router.post("/v1/services/{name}/{path:path}", summary="Call a model service's task endpoint")
async def proxy(name: str, path: str, request: Request) -> Response:
    dispatcher: ServiceDispatcher = request.app.state.dispatcher
    upstream = await dispatcher.open(
        # the raw query string as sent, without building `request.url` (its parsing costs more)
        name, path, content=await request.body(), headers=request.headers,
        query=request.scope["query_string"].decode("latin-1"), method=request.method,
    )
    if upstream.content_type.startswith("text/event-stream"):
        # the background close also runs when the client goes away mid-stream: the model is released
        return StreamingResponse(upstream.stream(), status_code=upstream.status_code, headers=upstream.headers,
                                 background=BackgroundTask(upstream.close))
    body = await upstream.body()
    return Response(body, status_code=upstream.status_code, headers=upstream.headers)
