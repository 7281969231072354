"""`GET /v1/heads`: the trained CLIP heads with their held-out metrics, as the clip service serving
them lists them (its heads folder is the one place heads live)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from gateway.dispatch.dispatcher import DispatcherDep, UpstreamError
from shared.http.errors import BadInput, error_detail
from shared.schemas.heads import HeadsReport

router = APIRouter(tags=["heads"])


@router.get("/v1/heads", response_model=HeadsReport)
async def list_heads(
    dispatcher: DispatcherDep,
    service: Annotated[str, Query(description="The clip service whose heads to list (a GATEWAY_SERVICES name).")]
    = "clip",
) -> HeadsReport:
    """Every version of every head `mediamesh train-head` saved, newest first per name, with its labels,
    embedding space and held-out metrics against zero-shot CLIP. Reading them loads no model."""
    kind = dispatcher.registry.record(service).endpoint.kind
    if kind != "clip":
        raise BadInput(f"service '{service}' is a {kind} service; heads live on a clip service: "
                       f"{', '.join(dispatcher.registry.of_kind('clip')) or 'none configured'}")
    upstream = await dispatcher.open(service, "/v1/heads", content=b"", headers={}, method="GET")
    body = await upstream.body()
    if upstream.status_code >= 400:
        raise UpstreamError(service, upstream.status_code, error_detail(body), upstream.headers)
    return HeadsReport.model_validate_json(body)
