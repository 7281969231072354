"""The one gateway client (shared/client.py), sync and async: the same request, the same answer checked
against its schema, the same error mapping."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from shared.client import (
    AsyncGatewayClient,
    GatewayClient,
    GatewayError,
    GatewayNoAnswer,
    GatewayUnreachable,
    RetryPolicy,
    UnexpectedAnswer,
)
from shared.schemas.clip import EmbedResponse

EMBEDDED = {"model": "m", "dim": 1, "embeddings": [[1.0]], "processing_time_ms": 1.0}


def handler_with(answers: list[httpx.Response | Exception], seen: list[httpx.Request]):  # type: ignore[no-untyped-def]
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return handler


def test_sync_call_sends_the_key_and_validates_the_answer() -> None:
    seen: list[httpx.Request] = []
    transport = httpx.MockTransport(handler_with([httpx.Response(200, json=EMBEDDED)], seen))
    with GatewayClient("http://gw/", "k3y", transport=transport) as client:
        answer = client.call("clip", "/v1/embed/text", {"texts": ["x"]}, EmbedResponse)
    assert answer == EmbedResponse.model_validate(EMBEDDED)
    assert seen[0].url.path == "/v1/services/clip/v1/embed/text"
    assert seen[0].headers["authorization"] == "Bearer k3y"


async def test_async_client_retries_busy_and_validates_the_same_way() -> None:
    seen: list[httpx.Request] = []
    busy = httpx.Response(503, json={"detail": "busy"}, headers={"Retry-After": "0"})
    transport = httpx.MockTransport(handler_with([busy, httpx.Response(200, json=EMBEDDED)], seen))
    async with AsyncGatewayClient("http://gw", transport=transport, retry=RetryPolicy(busy_retries=1)) as client:
        answer = await client.call("clip", "v1/embed/image", {"images": ["aGk="]}, EmbedResponse)
    assert answer.embeddings == [[1.0]] and len(seen) == 2


@pytest.mark.parametrize(("answer", "error", "reason"), [
    (lambda: httpx.Response(404, json={"detail": "no media"}), GatewayError, "HTTP 404: no media"),
    (lambda: httpx.Response(200, json={"dim": 1}), UnexpectedAnswer,
     "the answer is not a valid EmbedResponse: model: Field required"),
    (lambda: httpx.ReadTimeout("slow"), GatewayNoAnswer, "no answer through the gateway (ReadTimeout: slow)"),
    (lambda: httpx.ConnectError("refused"), GatewayUnreachable,
     "cannot reach the gateway at http://gw: it is not answering"),
])
async def test_errors_map_the_same_in_both_clients(answer: Callable[[], httpx.Response | Exception],
                                                    error: type[GatewayError], reason: str) -> None:
    transport = httpx.MockTransport(handler_with([answer()], []))
    with GatewayClient("http://gw", transport=transport) as client, pytest.raises(error) as raised:
        client.call("clip", "v1/embed/text", {}, EmbedResponse)
    assert raised.value.reason.startswith(reason)
    async_transport = httpx.MockTransport(handler_with([answer()], []))
    async with AsyncGatewayClient("http://gw", transport=async_transport) as async_client:
        with pytest.raises(error) as raised_async:
            await async_client.call("clip", "v1/embed/text", {}, EmbedResponse)
    assert raised_async.value.reason == raised.value.reason


def test_health_report_comes_back_with_a_503() -> None:
    body = {"status": "down", "services": [], "dependencies": []}
    transport = httpx.MockTransport(handler_with([httpx.Response(503, json=body)], []))
    with GatewayClient("http://gw", transport=transport) as client:
        assert client.health().status == "down"
