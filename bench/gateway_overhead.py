"""`python -m bench gateway_overhead`: what the gateway adds to a CNN-only classify.

The cnn service (its tiny model, loaded) is called directly, through the gateway's proxy
(`/v1/services/cnn/v1/classify`) and through the cascade (`/v1/classify`, `mode=never`: the
gateway also reads the image's header to refuse what is not an image or too large; the one full
decode happens in the service), and through the floor: a bare ASGI app under uvicorn that only passes
the body on with the gateway's HTTP client (`bench/passthrough_floor.py`), what any Python hop costs.
The four are interleaved request by request on keep-alive connections so drift hits them alike.
Target: each gateway path's p50 within 10 % of the direct call's p50.

On a shared, busy machine wall-clock differences are noisy, so the CPU time per request of the
process in front of the service is measured too (psutil): on an idle machine the added latency is
about that plus one loopback hop. To see where it goes: `py-spy record --gil -p GATEWAY_PID` meanwhile.
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


def calls_for(direct: httpx.Client, gw: httpx.Client, floor: httpx.Client,
              image: str) -> dict[str, Callable[[], httpx.Response]]:
    payload = {"images": [image], "top_k": 5}
    return {
        "direct": lambda: direct.post("/v1/classify", json=payload),
        "floor": lambda: floor.post("/v1/classify", json=payload),
        "proxy": lambda: gw.post("/v1/services/cnn/v1/classify", json=payload),
        "cascade": lambda: gw.post("/v1/classify", json={"image": image, "mode": "never"}),
    }


def measure(urls: dict[str, str], pids: dict[str, int], image: str) -> tuple[dict[str, list[float]],
                                                                         dict[str, float]]:
    """Interleaved wall times per path, and the CPU ms per request of the process in front of the service."""
    with (httpx.Client(base_url=urls["cnn"]) as direct, httpx.Client(base_url=urls["gateway"]) as gw,
          httpx.Client(base_url=urls["floor"]) as floor):
        calls = calls_for(direct, gw, floor, image)
        for _ in range(WARMUP):
            for call in calls.values():
                timed(call)
        times: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(REQUESTS):
            for name, call in calls.items():
                times[name].append(timed(call))
        cpu = {}
        for name, process in (("floor", "floor"), ("proxy", "gateway"), ("cascade", "gateway")):
            front = psutil.Process(pids[process])
            before = sum(front.cpu_times()[:2])
            for _ in range(CPU_REQUESTS):
                calls[name]()
            cpu[name] = (sum(front.cpu_times()[:2]) - before) / CPU_REQUESTS * 1000
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
            floor_env = {"BENCH_FLOOR_UPSTREAM": cnn.url}
            with (ServiceProcess("gateway.app:create_app", env, logs / "gateway.log") as gateway,
                  ServiceProcess("bench.passthrough_floor:create_app", floor_env, logs / "floor.log") as floor):
                assert gateway.proc is not None and floor.proc is not None
                times, cpu = measure({"cnn": cnn.url, "gateway": gateway.url, "floor": floor.url},
                                     {"gateway": gateway.proc.pid, "floor": floor.proc.pid}, image)
    report(times, cpu)


def report(times: dict[str, list[float]], cpu: dict[str, float]) -> None:
    base = statistics.median(times["direct"])
    rows, lines = [], []
    for name, label in (("direct", "cnn service directly"), ("floor", "floor: bare ASGI + aiohttp pass-through"),
                        ("proxy", "gateway proxy `/v1/services/cnn/…`"),
                        ("cascade", "gateway cascade `/v1/classify` (cnn only)")):
        p50, p95 = statistics.median(times[name]), p(times[name], 95)
        paired = statistics.median(a - b for a, b in zip(times[name], times["direct"], strict=True))
        front_cpu = f"{cpu[name]:.2f}" if name in cpu else "–"
        rows.append(f"| {label} | {p50:.2f} | {p95:.2f} | {p50 - base:+.2f} | {paired:+.2f} | {front_cpu} |")
        lines.append(f"{name}: p50 {p50:.2f} ms ({p50 - base:+.2f} ms, paired {paired:+.2f}), p95 {p95:.2f} ms, "
                     f"CPU in front {front_cpu} ms/request")
    print("\n".join(lines))
    worst = max(statistics.median(times[n]) for n in ("proxy", "cascade")) - base
    share = worst / base
    floor_share = (statistics.median(times["floor"]) - base) / base
    verdict = "meets" if share <= TARGET_SHARE else f"misses by {(share - TARGET_SHARE) * 100:.1f} points"
    floor_note = (": no Python hop meets the target here; meeting it needs the pass-through out of Python (a native "
                  "proxy in front of the services for `/v1/services/…`) or the call in process"
                  if floor_share > TARGET_SHARE else "")
    load = psutil.getloadavg()[0]
    write_section("gateway_overhead", f"""
## Gateway overhead on a CNN-only classify

The cnn service with its tiny model (loaded), one 224×224 JPEG per request, {REQUESTS} requests per path,
interleaved, sequential, keep-alive, after {WARMUP} warm-up rounds; then {CPU_REQUESTS} requests per path
to measure the CPU time per request of the process in front of the service (the gateway, or the floor).
Times in ms; load average {load:.1f} on {psutil.cpu_count()} cores while it ran (other work shares this
machine, so wall times are noisy; the CPU column less so, about ±15 % between runs). The floor is
`bench/passthrough_floor.py`: a bare ASGI app under uvicorn that passes the body to the service with the
gateway's HTTP client (aiohttp) and returns the answer, nothing else — what any Python hop costs.

| path | p50 | p95 | p50 − direct | median paired difference | CPU in front per request |
|---|---|---|---|---|---|
{chr(10).join(rows)}

Worst p50 overhead **{worst:.2f} ms = {share * 100:.1f} %** of the direct call's p50: it {verdict} the target
(≤ {TARGET_SHARE * 100:.0f} %). The floor alone adds {floor_share * 100:.0f} %{floor_note}; what the gateway adds
above the floor (routing, scheduler, metrics, checks) is the part this code controls.

What the profile shows (`py-spy record --gil` on the gateway, proxied calls): about 40 % of the samples
holding the GIL are the two loopback socket writes (the request to the service, the answer to the
client; on a busy machine the woken receiver preempts the writer, so part of that is waiting, not CPU);
of the rest, aiohttp's request/response handling about a third, FastAPI + Starlette routing and
middleware about 15 %, uvicorn's HTTP protocol about 11 %, asyncio about 9 %, the gateway's own code
(dispatcher, budget, resuming the coroutine chain through the middleware) the remainder. The cascade
adds the request's JSON and pydantic models, the image-header check (PIL), the answer's trace and
serialisation and its Prometheus counters: each a few percent, none dominant.

Tried: the proxy route hands its endpoint the matched path parameters without FastAPI's per-request
parameter solving, reads the raw query string instead of building `request.url`, and the model routes are
matched first (in an interleaved A/B run against the previous code: proxy CPU −16 %, cascade −7 %).
Measured and left out: `gc.freeze()` after start (collections cost under 1 % here), cached Prometheus
label children (3 µs a request). Not done: storing cascade answers in the background — that runs only with
storage on (not in this benchmark), and a feedback call sent to another gateway right after the answer
would then find nothing. The image check reads the header only
(`shared.imaging.check_image`: format and size, no pixels decoded), so what is not an image never
holds or loads a model; the service decodes it, once.
""")


if __name__ == "__main__":
    main()
