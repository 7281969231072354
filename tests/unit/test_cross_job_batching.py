"""Images of concurrent jobs go to the service in one call; one job's refused image fails only that job's stage."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from shared.client import GatewayError, GatewayUnreachable
from worker.batching import CrossJobBatcher
from worker.model_client import StageFailed


def doubling(calls: list[list[str]]):  # type: ignore[no-untyped-def]
    lock = threading.Lock()

    def call(items: list[str]) -> list[str]:
        with lock:
            calls.append(items)
        if "bad" in items:
            try:
                raise GatewayError(422, "images[1]: not an image")
            except GatewayError as exc:
                raise StageFailed("clip", "HTTP 422: not an image") from exc
        return [item * 2 for item in items]

    return call


def test_concurrent_items_share_calls_and_get_their_own_answers() -> None:
    calls: list[list[str]] = []
    batcher = CrossJobBatcher(doubling(calls), max_batch=16, wait_s=0.5, name="test")
    items = [f"i{n}" for n in range(8)]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(batcher.submit, items))
    batcher.close()
    assert answers == [item * 2 for item in items]
    assert len(calls) < len(items) and sorted(sum(calls, [])) == sorted(items)


def test_a_refused_item_fails_alone() -> None:
    calls: list[list[str]] = []
    batcher = CrossJobBatcher(doubling(calls), max_batch=16, wait_s=0.5, name="test")
    with ThreadPoolExecutor(3) as pool:
        futures = {item: pool.submit(batcher.submit, item) for item in ("a", "bad", "c")}
        assert futures["a"].result() == "aa" and futures["c"].result() == "cc"
        with pytest.raises(StageFailed, match="not an image"):
            futures["bad"].result()
    batcher.close()


def test_an_unreachable_gateway_reaches_every_waiting_job() -> None:
    def unreachable(items: list[str]) -> list[str]:
        raise GatewayUnreachable("http://127.0.0.1:9", ConnectionRefusedError())

    batcher = CrossJobBatcher(unreachable, max_batch=16, wait_s=0.2, name="test")
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(batcher.submit, item) for item in ("a", "b")]
        for future in futures:
            with pytest.raises(GatewayUnreachable):
                future.result()
    batcher.close()
