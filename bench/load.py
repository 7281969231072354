"""Load shapes the serving benchmarks share."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx


def concurrent_throughput(url: str, clients: int, per_client: int, send: Callable[[httpx.Client, int], None]) -> float:
    """`clients` threads, each calling `send(http, its index)` `per_client` times back to back, all
    starting together: calls per second."""
    start = threading.Barrier(clients + 1)

    def client(index: int) -> None:
        with httpx.Client(base_url=url, timeout=600) as http:
            http.get("/health")
            start.wait()
            for _ in range(per_client):
                send(http, index)

    with ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(client, i) for i in range(clients)]
        start.wait()
        started = time.perf_counter()
        for future in futures:
            future.result()
    return clients * per_client / (time.perf_counter() - started)
