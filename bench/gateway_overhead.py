"""`python -m bench gateway_overhead`: what the gateway adds to a CNN-only classify.

The cnn service (its tiny model, loaded) is called directly, through the gateway's proxy
(`/v1/services/cnn/v1/classify`) and through the cascade (`/v1/classify`, `mode=never`: the
gateway also decodes the image to refuse bad ones). The three are interleaved request by
request on keep-alive connections so drift hits them alike. Target: p50 difference <= 2 ms.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from PIL import Image

from bench.report import write_section
from shared.imaging import encode_image_base64
from tests.support.models import tiny_model_dir
from tests.support.processes import ServiceProcess

REQUESTS = 300
WARMUP = 30


def timed(call: Callable[[], httpx.Response]) -> float:
    started = time.perf_counter()
    answer = call()
    elapsed = time.perf_counter() - started
    answer.raise_for_status()
    return elapsed * 1000


def p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1]


def measure(cnn_url: str, gateway_url: str, image: str) -> dict[str, list[float]]:
    payload = {"images": [image], "top_k": 5}
    with httpx.Client(base_url=cnn_url) as direct, httpx.Client(base_url=gateway_url) as gw:
        calls = {
            "direct": lambda: direct.post("/v1/classify", json=payload),
            "proxy": lambda: gw.post("/v1/services/cnn/v1/classify", json=payload),
            "cascade": lambda: gw.post("/v1/classify", json={"image": image, "mode": "never"}),
        }
        for _ in range(WARMUP):
            for call in calls.values():
                timed(call)
        times: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(REQUESTS):
            for name, call in calls.items():
                times[name].append(timed(call))
    return times


def main() -> None:
    model = tiny_model_dir("cnn")
    image = encode_image_base64(Image.new("RGB", (224, 224), (120, 60, 30)), "JPEG")
    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp)
        cnn = ServiceProcess("services.cnn.app:create_app", {"CNN_MODEL_PATH": str(model)}, logs / "cnn.log")
        with cnn:
            httpx.post(cnn.url + "/v1/model/load", timeout=120).raise_for_status()
            env = {"GATEWAY_STORAGE_ENABLED": "false", "GATEWAY_POLL_INTERVAL_S": "30",
                   "GATEWAY_SERVICES": json.dumps({"cnn": {"url": cnn.url, "kind": "cnn"}})}
            with ServiceProcess("gateway.app:create_app", env, logs / "gateway.log") as gateway:
                times = measure(cnn.url, gateway.url, image)
    report(times)


def report(times: dict[str, list[float]]) -> None:
    base = statistics.median(times["direct"])
    rows, lines = [], []
    for name, label in (("direct", "cnn service directly"), ("proxy", "gateway proxy `/v1/services/cnn/…`"),
                        ("cascade", "gateway cascade `/v1/classify` (cnn only)")):
        p50, p95 = statistics.median(times[name]), p(times[name], 95)
        extra = p50 - base
        rows.append(f"| {label} | {p50:.2f} | {p95:.2f} | {extra:+.2f} | {p50 / base:.2f} × |")
        lines.append(f"{name}: p50 {p50:.2f} ms (+{extra:.2f} ms), p95 {p95:.2f} ms")
    print("\n".join(lines))
    worst = max(statistics.median(times[n]) for n in ("proxy", "cascade")) - base
    verdict = "meets" if worst <= 2.0 else "misses"
    write_section("gateway_overhead", f"""
## Gateway overhead on a CNN-only classify

The cnn service with its tiny model (loaded), one 224×224 JPEG per request, {REQUESTS} requests per path,
interleaved, sequential, keep-alive, after {WARMUP} warm-up rounds. Times in ms on this machine; the
column that matters is the p50 difference.

| path | p50 | p95 | p50 − direct | p50 / direct |
|---|---|---|---|---|
{chr(10).join(rows)}

Worst p50 overhead **{worst:.2f} ms**: it {verdict} the target (≤ 2 ms at p50).
""")


if __name__ == "__main__":
    main()
