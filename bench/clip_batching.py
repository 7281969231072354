"""clip image embeddings, 16 concurrent clients: the batching service vs one offline batch of 16 in
the same process, and vs the same service with batching off (CLIP_MAX_BATCH_SIZE=1).

The model is a ViT-B/32 CLIP config (the size of `openai/clip-vit-base-patch32`) with random
weights, built here once. The three ways are measured in alternating rounds, so that other load
on the machine hits them alike; each reports images per second, the median over the rounds.
"""

from __future__ import annotations

import base64
import io
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import torch
from PIL import Image

from bench.load import concurrent_throughput
from bench.report import write_section
from services.clip.model import ClipModel
from services.clip.settings import ClipSettings
from shared.imaging import decode_image
from tests.support.processes import REPO, ServiceProcess

CACHE = REPO / "bench" / ".cache" / "clip-vit-b32-v1"
CLIENTS, ROUNDS = 16, 3
# Requests per client per round. Batching off is ~5x slower here, so it sends one wave, not two,
# to keep the benchmark near five minutes on 2 busy cores (throughput is per image either way).
PER_CLIENT = {"offline batch of 16": 2, "service, batching on": 2, "service, batching off": 1}
# The batch wait the services run with (the default); overridable to see its effect.
BATCH_WAIT_MS = float(os.environ.get("BENCH_CLIP_BATCH_WAIT_MS", ClipSettings().batch_timeout_ms))
APP = "services.clip.app:create_app"


def build_clip(folder: Path) -> Path:
    """CLIPConfig()'s towers are ViT-B/32 sizes; only the vocabulary is the small local tokenizer's."""
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPProcessor

    from services.clip.tiny import tiny_tokenizer

    if (folder / "config.json").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    tokenizer = tiny_tokenizer()
    vocab = len(tokenizer)
    config = CLIPConfig(text_config={"vocab_size": vocab, "bos_token_id": vocab - 2, "eos_token_id": vocab - 1,
                                     "pad_token_id": vocab - 1}, projection_dim=512)
    CLIPModel(config).eval().save_pretrained(folder)
    CLIPProcessor(image_processor=CLIPImageProcessorPil(), tokenizer=tokenizer).save_pretrained(folder)
    return folder


def test_images(count: int) -> list[bytes]:
    rng = np.random.default_rng(0)
    images = []
    for _ in range(count):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)).save(buffer, "JPEG", quality=90)
        images.append(buffer.getvalue())
    return images


def clients_throughput(url: str, payloads: list[str], per_client: int) -> float:
    """CLIENTS threads, each sending `per_client` one-image requests back to back: images per second."""

    def send(http: httpx.Client, index: int) -> None:
        http.post("/v1/embed/image", json={"images": [payloads[index]]}).raise_for_status()

    return concurrent_throughput(url, CLIENTS, per_client, send)


def offline_throughput(model: ClipModel, raws: list[bytes], batches: int) -> float:
    """The same images through the same model in-process, as `batches` batches of CLIENTS."""
    started = time.perf_counter()
    for _ in range(batches):
        images = [decode_image(raw, max_pixels=40_000_000) for raw in raws]
        model.embed_images(model.preprocess(images))
    return CLIENTS * batches / (time.perf_counter() - started)


def warm_up(model: ClipModel, raws: list[bytes], on: str, off: str, payloads: list[str]) -> None:
    """First calls allocate and pick kernels for each batch shape; keep them out of the rounds."""
    offline_throughput(model, raws, 1)
    httpx.post(on + "/v1/embed/image", json={"images": payloads}, timeout=600).raise_for_status()
    for payload in payloads[:2]:
        httpx.post(off + "/v1/embed/image", json={"images": [payload]}, timeout=600).raise_for_status()


def run_rounds(ways: dict[str, Callable[[], float]]) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(ROUNDS):
        for name, way in ways.items():
            results[name].append(way())
            print(f"  {name}: {results[name][-1]:.2f} images/s", flush=True)
    return results


def batch_totals(url: str) -> tuple[float, float]:
    """(images, batches) the service has run so far, from its /metrics."""
    metrics = httpx.get(url + "/metrics").text
    value = {line.split()[0]: float(line.split()[1]) for line in metrics.splitlines()
             if line.startswith("mediamesh_batch_size_")}
    return value["mediamesh_batch_size_sum"], value["mediamesh_batch_size_count"]


def report(results: dict[str, list[float]], device: str, mean_batch: float) -> str:
    med = {name: statistics.median(values) for name, values in results.items()}
    vs_offline = med["service, batching on"] / med["offline batch of 16"]
    vs_unbatched = med["service, batching on"] / med["service, batching off"]

    def verdict(value: float, target: float) -> str:
        return "meets" if value >= target else f"misses by {target - value:.2f}"

    on, off, offline = (results[k] for k in ("service, batching on", "service, batching off", "offline batch of 16"))
    paired_offline = statistics.median(a / b for a, b in zip(on, offline, strict=True))
    paired_off = statistics.median(a / b for a, b in zip(on, off, strict=True))
    rows = "\n".join(f"| {name} | {med[name]:.2f} | {', '.join(f'{v:.2f}' for v in values)} |"
                     for name, values in results.items())
    return f"""## clip batching (ViT-B/32 image embeddings, 16 concurrent clients)

CLIP with ViT-B/32 towers (random weights), {device}; 640x480 JPEGs; {CLIENTS} client threads each sending
one-image `POST /v1/embed/image` requests back to back (2 per client per round; 1 with batching off);
the offline baseline decodes, preprocesses and embeds the same images as 2 batches of {CLIENTS} in this
process. Batching on: `CLIP_MAX_BATCH_SIZE=16`, `CLIP_BATCH_TIMEOUT_MS={BATCH_WAIT_MS:g}` (mean batch
{mean_batch:.1f} images); off: `CLIP_MAX_BATCH_SIZE=1`. Median of {ROUNDS} alternating rounds after a warm-up.

| way | images/s (median) | rounds |
|---|---|---|
{rows}

**Batching service / offline batch of 16: {vs_offline:.2f}x** (target >= 0.9: {verdict(vs_offline, 0.9)}).
**Batching on / batching off: {vs_unbatched:.2f}x** (target >= 1.5: {verdict(vs_unbatched, 1.5)}).
Median of the per-round ratios (each round's three ways ran back to back): {paired_offline:.2f}x and
{paired_off:.2f}x.

How to read these on a shared 2-core machine: the numbers swing with other load. When other work
takes the cores, batch-1 inference suffers most (each of its many small ops waits for both torch
threads to be scheduled), so batching gains several times; on quiet cores a ViT-B/32 forward is
already efficient at batch 1 and batching gains little. The service also pays for HTTP, JSON and
base64 of 16 large requests on the same 2 cores, and a burst of 16 reaches the batcher over the
time its bodies take to parse, so it usually runs as two batches (see the mean batch above).
"""


def start_service(env: dict[str, str], log: Path) -> ServiceProcess:
    service = ServiceProcess(APP, {"CLIP_AUTOLOAD": "true", **env}, log)
    service.start(300)
    return service


def main() -> None:
    folder = build_clip(CACHE)
    raws = test_images(CLIENTS)
    payloads = [base64.b64encode(raw).decode() for raw in raws]
    model = ClipModel(ClipSettings(model_path=folder))
    model.load()
    services: list[ServiceProcess] = []
    with tempfile.TemporaryDirectory() as logs:
        try:
            common = {"CLIP_MODEL_PATH": str(folder), "CLIP_BATCH_TIMEOUT_MS": f"{BATCH_WAIT_MS:g}"}
            on = start_service({**common, "CLIP_MAX_BATCH_SIZE": str(CLIENTS)}, Path(logs) / "on.log")
            services.append(on)
            off = start_service({**common, "CLIP_MAX_BATCH_SIZE": "1"}, Path(logs) / "off.log")
            services.append(off)
            warm_up(model, raws, on.url, off.url, payloads)
            per = PER_CLIENT
            images_before, batches_before = batch_totals(on.url)
            results = run_rounds({
                "offline batch of 16": lambda: offline_throughput(model, raws, per["offline batch of 16"]),
                "service, batching on": lambda: clients_throughput(on.url, payloads, per["service, batching on"]),
                "service, batching off": lambda: clients_throughput(off.url, payloads, per["service, batching off"]),
            })
            images, batches = batch_totals(on.url)
            mean_batch = (images - images_before) / max(batches - batches_before, 1)
        finally:
            for service in services:
                service.stop()
    markdown = report(results, str(model.device), mean_batch)
    print(markdown)
    write_section("clip_batching", markdown)


if __name__ == "__main__":
    main()
