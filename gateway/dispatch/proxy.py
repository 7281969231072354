"""`POST` / `GET /v1/services/{name}/{path}`: any model service's endpoint, behind the scheduler.

Body, content type (JSON or multipart), query string, status and body pass through as they
are; server-sent events (`/v1/chat/completions` with `stream: true`) are streamed, and the
model stays held until the stream ends.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask

from gateway.dispatch.dispatcher import DispatcherDep

router = APIRouter(tags=["services"])


# two routes rather than one with two methods: each gets its own OpenAPI operation id
@router.get("/v1/services/{name}/{path:path}", summary="Read a model service's state (holds no model)")
@router.post("/v1/services/{name}/{path:path}", summary="Call a model service's task endpoint")
async def proxy(name: str, path: str, request: Request, dispatcher: DispatcherDep) -> Response:
    upstream = await dispatcher.open(
        name, path, content=await request.body(), headers=request.headers, query=request.url.query,
        method=request.method,
    )
    if upstream.content_type.startswith("text/event-stream"):
        # the background close also runs when the client goes away mid-stream: the model is released
        return StreamingResponse(upstream.stream(), status_code=upstream.status_code, headers=upstream.headers,
                                 background=BackgroundTask(upstream.close))
    body = await upstream.body()
    return Response(body, status_code=upstream.status_code, headers=upstream.headers)
