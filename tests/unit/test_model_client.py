"""The worker's model client: busy 503s are retried as told, a refused connection is waited out, a model
failure is a StageFailed (degrade this stage), an unreachable gateway is GatewayUnreachable (retry the job),
and an answer is checked against its shared schema."""

from __future__ import annotations

import httpx
import pytest

from shared.client import GatewayUnreachable
from shared.schemas.gateway import ClassifyResponse
from worker.model_client import ModelClient, StageFailed

CASCADE_ANSWER = {"label": "cat", "confidence": 0.9, "top_k": [{"label": "cat", "score": 0.9}], "variant": "a",
                  "request_id": "r", "trace": {"variant": "a", "stages": [], "total_ms": 1.0}}


def client_with(answers: list[httpx.Response | Exception], **kwargs: float) -> tuple[ModelClient, list[str]]:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return ModelClient("http://gw", transport=httpx.MockTransport(handler), **kwargs), seen  # type: ignore[arg-type]


def test_calls_the_proxy_path_and_returns_json() -> None:
    client, seen = client_with([httpx.Response(200, json={"embeddings": [[1.0]]})])
    assert client.call("clip", "/v1/embed/text", {"texts": ["x"]}) == {"embeddings": [[1.0]]}
    assert seen == ["/v1/services/clip/v1/embed/text"]


def test_busy_503_is_retried_after_retry_after_then_succeeds() -> None:
    busy = httpx.Response(503, json={"detail": "budget busy"}, headers={"Retry-After": "0"})
    client, seen = client_with([busy, httpx.Response(200, json=CASCADE_ANSWER)], busy_retries=1)
    assert client.classify("aGk=") == ClassifyResponse.model_validate(CASCADE_ANSWER)
    assert seen == ["/v1/classify", "/v1/classify"]


def test_model_down_is_a_stage_failure_with_the_detail() -> None:
    client, _ = client_with([httpx.Response(503, json={"detail": "blip2 is down"})], busy_retries=0)
    with pytest.raises(StageFailed) as failure:
        client.call("blip2", "analyze-image", {})
    assert failure.value.reason == "blip2: HTTP 503: blip2 is down"


def test_refused_connection_is_waited_out() -> None:
    refused = httpx.ConnectError("connection refused")
    client, seen = client_with([refused, refused, httpx.Response(200, json={})], gateway_wait_s=5.0)
    assert client.call("llm", "generate", {}) == {} and len(seen) == 3


def test_gateway_that_stays_away_raises_gateway_unreachable() -> None:
    client, _ = client_with([httpx.ConnectError("refused")] * 10, gateway_wait_s=0.5)
    with pytest.raises(GatewayUnreachable, match="not answering"):
        client.call("clip", "v1/embed/image", {})


def test_answer_outside_its_schema_is_a_stage_failure() -> None:
    client, _ = client_with([httpx.Response(200, json={"embeddings": "not a list"})])
    with pytest.raises(StageFailed) as failure:
        client.embed_image("aGk=")
    assert failure.value.reason.startswith("clip: the answer is not a valid EmbedResponse: ")


def test_timeout_is_a_stage_failure_not_an_unreachable_gateway() -> None:
    client, _ = client_with([httpx.ReadTimeout("slow")])
    with pytest.raises(StageFailed) as failure:
        client.call("llm", "generate", {})
    assert failure.value.reason == "llm: no answer through the gateway (ReadTimeout: slow)"
