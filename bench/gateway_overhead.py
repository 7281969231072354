"""`python -m bench gateway_overhead`: what the gateway adds to a CNN-only classify.

The cnn service (its tiny model, loaded) is called directly, through the gateway's proxy
(`/v1/services/cnn/v1/classify`) and through the cascade (`/v1/classify`, `mode=never`: the
gateway also reads the image's header to refuse what is not an image or too large; the one full
decode happens in the service). The three are interleaved request by request on keep-alive
connections so drift hits them alike. Target: each gateway path's p50 within 10 % of the direct
call's p50.

On a shared, busy machine wall-clock differences are noisy, so the gateway process's own CPU
time per request is measured too (psutil): on an idle machine the added latency is about that
plus one loopback hop.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
from PIL import Image

from bench.report import write_section
from shared.imaging import encode_image_base64
from tests.support.models import tiny_model_dir
from tests.support.processes import ServiceProcess

TARGET_SHARE = 0.10  # of the direct call's p50
REQUESTS = 250
CPU_REQUESTS = 200
WARMUP = 30


def timed(call: Callable[[], httpx.Response]) -> float:
    started = time.perf_counter()
    answer = call()
    elapsed = time.perf_counter() - started
    answer.raise_for_status()
    return elapsed * 1000


def p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1]


def calls_for(direct: httpx.Client, gw: httpx.Client, image: str) -> dict[str, Callable[[], httpx.Response]]:
    payload = {"images": [image], "top_k": 5}
    return {
        "direct": lambda: direct.post("/v1/classify", json=payload),
        "proxy": lambda: gw.post("/v1/services/cnn/v1/classify", json=payload),
        "cascade": lambda: gw.post("/v1/classify", json={"image": image, "mode": "never"}),
    }


def measure(cnn_url: str, gateway_url: str, gateway_pid: int, image: str) -> tuple[dict[str, list[float]],
                                                                                 dict[str, float]]:
    """Interleaved wall times per path, and the gateway's CPU ms per request for each gateway path."""
    gateway_process = psutil.Process(gateway_pid)
    with httpx.Client(base_url=cnn_url) as direct, httpx.Client(base_url=gateway_url) as gw:
        calls = calls_for(direct, gw, image)
        for _ in range(WARMUP):
            for call in calls.values():
                timed(call)
        times: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(REQUESTS):
            for name, call in calls.items():
                times[name].append(timed(call))
        cpu = {}
        for name in ("proxy", "cascade"):
            before = sum(gateway_process.cpu_times()[:2])
            for _ in range(CPU_REQUESTS):
                calls[name]()
            cpu[name] = (sum(gateway_process.cpu_times()[:2]) - before) / CPU_REQUESTS * 1000
    return times, cpu


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
                assert gateway.proc is not None
                times, cpu = measure(cnn.url, gateway.url, gateway.proc.pid, image)
    report(times, cpu)


def report(times: dict[str, list[float]], cpu: dict[str, float]) -> None:
    base = statistics.median(times["direct"])
    rows, lines = [], []
    for name, label in (("direct", "cnn service directly"), ("proxy", "gateway proxy `/v1/services/cnn/…`"),
                        ("cascade", "gateway cascade `/v1/classify` (cnn only)")):
        p50, p95 = statistics.median(times[name]), p(times[name], 95)
        paired = statistics.median(a - b for a, b in zip(times[name], times["direct"], strict=True))
        gw_cpu = f"{cpu[name]:.2f}" if name in cpu else "–"
        rows.append(f"| {label} | {p50:.2f} | {p95:.2f} | {p50 - base:+.2f} | {paired:+.2f} | {gw_cpu} |")
        lines.append(f"{name}: p50 {p50:.2f} ms ({p50 - base:+.2f} ms, paired {paired:+.2f}), p95 {p95:.2f} ms, "
                     f"gateway CPU {gw_cpu} ms/request")
    print("\n".join(lines))
    worst = max(statistics.median(times[n]) for n in ("proxy", "cascade")) - base
    share = worst / base
    verdict = "meets" if share <= TARGET_SHARE else f"misses by {(share - TARGET_SHARE) * 100:.1f} points"
    load = psutil.getloadavg()[0]
    write_section("gateway_overhead", f"""
## Gateway overhead on a CNN-only classify

The cnn service with its tiny model (loaded), one 224×224 JPEG per request, {REQUESTS} requests per path,
interleaved, sequential, keep-alive, after {WARMUP} warm-up rounds; then {CPU_REQUESTS} requests per gateway
path to measure the gateway process's CPU time per request. Times in ms; load average {load:.1f} on
{psutil.cpu_count()} cores while it ran (other work shares this machine, so wall times are noisy; the CPU
column is not).

| path | p50 | p95 | p50 − direct | median paired difference | gateway CPU per request |
|---|---|---|---|---|---|
{chr(10).join(rows)}

Worst p50 overhead **{worst:.2f} ms = {share * 100:.1f} %** of the direct call's p50: it {verdict} the target
(≤ {TARGET_SHARE * 100:.0f} %). The cascade path checks the image at the gateway from its header only
(`shared.imaging.check_image`: format and size, no pixels decoded), so what is not an image never
holds or loads a model; the service decodes it, once.
""")


if __name__ == "__main__":
    main()
