"""`python -m bench detect_cascade`: per-image latency of the detection cascade vs whole-image classify.

Real-size architectures with random weights, all on the CPU, each a service process behind the
gateway: RT-DETR R18 (the default detector's sizes, 640×640 input), ResNet-50 (the cnn) and CLIP
ViT-B/32. The baseline is `POST /v1/classify` with the cnn alone on the whole image; the detection
cascade adds the detector, a crop per box and a per-object classification (cnn, or CLIP with
condition prompts). Random weights give meaningless boxes, so the score threshold is 0 and the cap
(`max_objects`) sets the objects per image; the answers' own `objects` are counted.
"""

from __future__ import annotations

import base64
import io
import json
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import torch
from PIL import Image, ImageDraw

from bench.clip_batching import CACHE as CLIP_CACHE
from bench.clip_batching import build_clip
from bench.cnn_service import CACHE as CNN_CACHE
from bench.cnn_service import build_resnet50
from bench.report import write_section
from tests.support.processes import REPO, ServiceProcess

DETECTOR_CACHE = REPO / "bench" / ".cache" / "rtdetr-r18-v1"
IMAGES, WARMUP = 6, 1
ROW_BUDGET_S = 150.0  # a row stops after this long (at least 3 images): the shared machine can be very slow
TARGET_S = 2.0  # seed 003: under 2 s per image, at its 5.09 objects per image
WHOLE = [{"kind": "cnn", "service": "cnn", "escalate": {"threshold": 0.0}}]
CONDITIONS = ["normal", "damaged", "blocked"]


def build_rtdetr_r18(folder: Path) -> Path:
    """PekingU/rtdetr_r18vd's sizes: ResNet-18 (basic blocks, 2-2-2-2), 256-wide hybrid encoder, 3 decoder layers."""
    from transformers import RTDetrConfig, RTDetrForObjectDetection, RTDetrImageProcessorPil, RTDetrResNetConfig

    from services.detector.labels import COCO_LABELS

    if (folder / "config.json").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    backbone = RTDetrResNetConfig(  # type: ignore[call-arg]  # out_indices: a BackboneConfigMixin property
        depths=[2, 2, 2, 2], hidden_sizes=[64, 128, 256, 512], layer_type="basic", out_indices=[2, 3, 4])
    config = RTDetrConfig(  # type: ignore[call-arg]
        backbone_config=backbone, use_pretrained_backbone=False, encoder_in_channels=[128, 256, 512],
        decoder_layers=3, id2label=dict(enumerate(COCO_LABELS)),
        label2id={name: i for i, name in enumerate(COCO_LABELS)})
    RTDetrForObjectDetection(config).eval().save_pretrained(folder)
    RTDetrImageProcessorPil(size={"height": 640, "width": 640}).save_pretrained(folder)
    return folder


def photo(seed: int) -> str:
    """A 640×480 picture of a few coloured shapes on a gradient (JPEG)."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 255, 640, dtype=np.float64)
    pixels = np.stack([np.tile(ramp, (480, 1)), np.tile(ramp[::-1], (480, 1)), np.full((480, 640), 90.0)], -1)
    image = Image.fromarray(pixels.astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(5):
        x, y = int(rng.integers(0, 560)), int(rng.integers(0, 400))
        draw.ellipse((x, y, x + int(rng.integers(30, 120)), y + int(rng.integers(30, 120))),
                     fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return base64.b64encode(buffer.getvalue()).decode()


def variant(detection: dict | None) -> dict:
    return {"stages": WHOLE} if detection is None else {"stages": WHOLE, "detection": detection}


def run(client: httpx.Client, images: list[str], detection: dict | None) -> dict[str, float]:
    """Median wall time per image (s) and mean objects per image, over the images, after a warm-up."""
    answer = client.put("/v1/cascade/config", json={"variants": {"a": variant(detection)}})
    answer.raise_for_status()
    for image in images[:WARMUP]:
        client.post("/v1/classify", json={"image": image}).raise_for_status()
    seconds, objects, classified = [], [], []
    deadline = time.monotonic() + ROW_BUDGET_S
    for i, image in enumerate(images):
        if i >= 3 and time.monotonic() > deadline:
            break
        started = time.perf_counter()
        answer = client.post("/v1/classify", json={"image": image})
        seconds.append(time.perf_counter() - started)
        answer.raise_for_status()
        found = answer.json().get("objects") or []
        objects.append(len(found))
        classified.append(sum(o["classification"] is not None for o in found))
        print(f"  image {i + 1}/{len(images)}: {seconds[-1]:.2f} s, {len(found)} objects", flush=True)
    return {"s": statistics.median(seconds), "objects": statistics.mean(objects),
            "classified": statistics.mean(classified), "n": len(seconds)}


def serve(folder: Path) -> tuple[ServiceProcess, list[ServiceProcess]]:
    models = {"detector": ("services.detector.app:create_app", build_rtdetr_r18(DETECTOR_CACHE)),
              "cnn": ("services.cnn.app:create_app", build_resnet50(CNN_CACHE)),
              "clip": ("services.clip.app:create_app", build_clip(CLIP_CACHE))}
    # one torch thread each: on 2 cores shared by three services (and other work) more threads only wait
    procs = {name: ServiceProcess(app, {f"{name.upper()}_MODEL_PATH": str(path), f"{name.upper()}_DEVICE": "cpu",
                                        f"{name.upper()}_TORCH_THREADS": "1"}, folder / f"{name}.log")
             for name, (app, path) in models.items()}
    started = [p.start(timeout_s=120) for p in procs.values()]
    registry = {name: {"url": p.url, "kind": name} for name, p in procs.items()}
    gateway = ServiceProcess("gateway.app:create_app", {"GATEWAY_STORAGE_ENABLED": "false",
                                                        "GATEWAY_SERVICES": json.dumps(registry)},
                             folder / "gateway.log").start()
    return gateway, [gateway, *started]


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that `finally` stops the service processes
    images = [photo(seed) for seed in range(IMAGES)]
    configs: dict[str, dict | None] = {"whole image, cnn only (baseline)": None}
    for cap in (1, 5):
        configs[f"detector + cnn per object, cap {cap}"] = {
            "score_threshold": 0.0, "max_objects": cap, "min_crop_pixels": 4, "stages": [WHOLE[0]]}
    configs["detector + CLIP conditions per object, cap 5"] = {
        "score_threshold": 0.0, "max_objects": 5, "min_crop_pixels": 4, "conditions": CONDITIONS,
        "stages": [{"kind": "clip", "service": "clip"}]}
    with tempfile.TemporaryDirectory(prefix="bench-detect-") as tmp:
        gateway, procs = serve(Path(tmp))
        try:
            with httpx.Client(base_url=gateway.url, timeout=300) as client:
                rows = {}
                for name, detection in configs.items():
                    print(name, flush=True)
                    rows[name] = run(client, images, detection)
        finally:
            for proc in procs:
                proc.stop()
    report(rows)


def report(rows: dict[str, dict[str, float]]) -> None:
    base = rows["whole image, cnn only (baseline)"]["s"]
    lines = "\n".join(f"| {name} | {r['n']} | {r['objects']:.1f} | {r['classified']:.1f} | {r['s'] * 1000:,.0f} ms | "
                      f"{r['s'] / base:.2f} × |" for name, r in rows.items())
    print(lines)
    worst = max(r["s"] for name, r in rows.items() if "cap 5" in name)
    verdict = "meets" if worst < TARGET_S else "misses"
    one, five = rows["detector + cnn per object, cap 1"]["s"], rows["detector + cnn per object, cap 5"]["s"]
    write_section("detect_cascade", f"""
## Detection cascade vs whole-image classify (RT-DETR R18 → crops → cnn / CLIP, through the gateway)

Up to {IMAGES} synthetic 640×480 JPEGs per row (a row stops after {ROW_BUDGET_S:.0f} s, with at least 3), one
`POST /v1/classify` at a time, median wall time per image from the client (after {WARMUP} warm-up call per
row). Random-weight models of the real sizes on
the CPU: RT-DETR R18 (640×640), ResNet-50, CLIP ViT-B/32; each its own service process (one torch
thread) behind the gateway. The detector runs beside the whole-image cnn; the crops of one image are classified
concurrently (the services batch them). Objects per image are counted from the answers
(`objects`; *classified*: those with a classification). The machine is 2 CPU cores shared with
other work while this ran, so absolute times are noisy; the ratio is to the baseline in the same run.

| per image | images | objects | classified | median latency | vs whole image |
|---|---|---|---|---|---|
{lines}

**Seed 003's target** (under {TARGET_S:.0f} s per image at about 5 objects per image): {verdict} — the slowest
5-object row took {worst:.2f} s per image here, on the CPU. The 1-object row is mostly the detector's
640×640 forward pass (about {one - base:.1f} s more than the whole-image cnn); each further object added
about {(five - one) / 4:.2f} s (a crop's cnn call). No GPU was measured here.
""")


if __name__ == "__main__":
    main()
