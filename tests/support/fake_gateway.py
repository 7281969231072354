"""TEST DOUBLE of the gateway for storage tests: the real storage routes (`install_storage`) plus fake
model endpoints behind the same paths as the real proxy (`/v1/services/{name}/...`, `/v1/classify`),
and the same fakes in process for the routes that call the dispatcher (search).

The fakes give known answers, in the shapes of shared/schemas (the worker checks every answer): an image's
CLIP embedding encodes its mean colour, so the text "red" finds red images; the cascade labels an image
with its nearest colour name. `POST /fake/config` makes a service down (503) or slow, to test degraded
results and killed workers.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
from typing import Any

import numpy as np
from fastapi import FastAPI, HTTPException, Request
from PIL import Image

from gateway.api.storage_install import install_storage, storage_lifespan
from gateway.dispatch.dispatcher import UpstreamError
from gateway.settings import GatewaySettings
from shared.http.errors import declare_error_responses, install_error_handlers
from tests.support.media_samples import COLORS

DIM = 512


def color_vector(rgb: tuple[float, float, float], salt: bytes = b"") -> list[float]:
    vector = np.zeros(DIM)
    vector[:3] = np.asarray(rgb) / 255.0 + 0.05
    if salt:
        noise = np.random.default_rng(int.from_bytes(hashlib.sha256(salt).digest()[:8], "big")).normal(size=DIM)
        vector += 0.01 * noise
    return (vector / np.linalg.norm(vector)).tolist()


def mean_rgb(image_b64: str) -> tuple[float, float, float]:
    image = Image.open(io.BytesIO(base64.b64decode(image_b64))).convert("RGB")
    r, g, b = np.asarray(image, dtype=np.float64).reshape(-1, 3).mean(axis=0)
    return float(r), float(g), float(b)


def nearest_color(rgb: tuple[float, float, float]) -> str:
    return min(COLORS, key=lambda name: sum((a - b) ** 2 for a, b in zip(COLORS[name], rgb, strict=True)))


def create_app() -> FastAPI:
    app = FastAPI(title="fake gateway (test double)", lifespan=storage_lifespan)
    install_error_handlers(app)
    declare_error_responses(app)
    app.state.fake = {"down": [], "delay_s": {}, "transcript": "the quarterly report is ready", "calls": {}}
    app.state.dispatcher = FakeDispatcher(app)
    app.state.settings = settings = GatewaySettings()
    install_storage(app, settings)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/fake/config")
    def configure(config: dict[str, Any]) -> dict[str, Any]:
        app.state.fake.update(config)
        return app.state.fake

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        """Only when a test lists its services (`services` in the fake's config): else 404, as before."""
        names = app.state.fake.get("services")
        if not names:
            raise HTTPException(404, "the fake gateway lists no models unless configured")
        data = [{"id": name, "kind": name, "url": "http://fake", "state": "unloaded", "reserved_bytes": 0}
                for name in names]
        return {"data": data, "budget_bytes": 1, "reserved_bytes": 0, "free_bytes": 1}

    @app.get("/fake/calls")
    def calls() -> dict[str, int]:
        return app.state.fake["calls"]

    @app.post("/v1/classify")
    async def classify(body: dict[str, Any]) -> dict[str, Any]:
        await _gate(app, "cnn")
        label = nearest_color(mean_rgb(body["image"]))
        top_k = [{"label": label, "score": 0.9}, {"label": "other", "score": 0.1}]
        stage = {"stage": "cnn", "service": "cnn", "status": "ok", "top_k": top_k, "fused": top_k, "ms": 1.0,
                 "decision": "final", "reason": "confident"}
        answer = {"label": label, "confidence": 0.9, "top_k": top_k, "variant": "a", "request_id": "x",
                  "trace": {"variant": "a", "stages": [stage], "degraded": False, "total_ms": 1.0}}
        if app.state.fake.get("cascade_objects"):  # a variant with a detection stage: each object classified
            found = _detect(app, {"images": [body["image"]]})["results"][0]["objects"]
            answer["objects"] = [{**obj, "classification": {"label": f"{label} {obj['label']}", "confidence": 0.8,
                                                            "top_k": []}} for obj in found]
            answer["trace"]["detection"] = {"service": "detector", "status": "ok", "ms": 1.0, "found": len(found)}
        return answer

    @app.post("/v1/services/{name}/{path:path}")
    async def proxy(name: str, path: str, request: Request) -> dict[str, Any]:
        await _gate(app, name)
        body = await _body(request)
        handler = FAKES.get((name, path))
        if handler is None:
            raise HTTPException(404, f"fake gateway has no {name}/{path}")
        return handler(app, body)

    return app


class FakeDispatcher:
    """`ServiceDispatcher.post_json` as the gateway's own routes call it, answered by the fakes."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    async def post_json(self, name: str, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            await _gate(self.app, name)
        except HTTPException as exc:
            raise UpstreamError(name, exc.status_code, str(exc.detail), exc.headers or {}) from exc
        return FAKES[(name, path)](self.app, payload)


async def _body(request: Request) -> dict[str, Any]:
    """A JSON body, or a multipart one (whisper's file upload) as {"file": its bytes, other fields...}."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        return dict(await request.json())
    form = await request.form()
    return {key: (await value.read() if hasattr(value, "read") else value) for key, value in form.items()}


async def _gate(app: FastAPI, service: str) -> None:
    fake = app.state.fake
    fake["calls"][service] = fake["calls"].get(service, 0) + 1
    await asyncio.sleep(float(fake["delay_s"].get(service, 0)))
    if service in fake["down"]:
        raise HTTPException(503, f"service '{service}' is down (fake)", headers={"Retry-After": "1"})


def _embed_image(app: FastAPI, body: dict[str, Any]) -> dict[str, Any]:
    vectors = [color_vector(mean_rgb(image), salt=image.encode()[:4096]) for image in body["images"]]
    return {"model": "fake-clip", "dim": DIM, "embeddings": vectors, "processing_time_ms": 1.0}


def _embed_text(app: FastAPI, body: dict[str, Any]) -> dict[str, Any]:
    vectors = []
    for text in body["texts"]:
        words = [w for w in text.lower().split() if w in COLORS]
        vectors.append(color_vector(COLORS[words[0]] if words else (128, 128, 128), salt=text.encode()))
    return {"model": "fake-clip", "dim": DIM, "embeddings": vectors, "processing_time_ms": 1.0}


def _analyze(app: FastAPI, body: dict[str, Any]) -> dict[str, Any]:
    rgb = mean_rgb(body["image"])
    color = nearest_color(rgb)
    return {"caption": f"a {color} square on a plain background", "objects": [{"name": "square", "confidence": 0.8}],
            "scene_type": "indoor", "dominant_colors": ["#" + "".join(f"{int(c):02x}" for c in rgb)],
            "processing_time_ms": 1.0}


def _detect(app: FastAPI, body: dict[str, Any]) -> dict[str, Any]:
    """Every picture has a "square" in its middle 80 %; a green one also a "dog" in its top-left quarter."""
    image = Image.open(io.BytesIO(base64.b64decode(body["images"][0])))
    width, height = image.size
    boxes = [("square", 0.9, (0.1, 0.1, 0.9, 0.9))]
    if nearest_color(mean_rgb(body["images"][0])) == "green":
        boxes.append(("dog", 0.6, (0.0, 0.0, 0.5, 0.5)))
    wanted = {q.lower() for q in body.get("queries") or []}
    objects = [{"label": label, "score": score,
                "box": {"x0": x0 * width, "y0": y0 * height, "x1": x1 * width, "y1": y1 * height},
                "box_normalized": {"x0": x0, "y0": y0, "x1": x1, "y1": y1}}
               for label, score, (x0, y0, x1, y1) in boxes if not wanted or label in wanted]
    return {"model": "fake-detector", "open_vocabulary": False, "processing_time_ms": 1.0,
            "results": [{"width": width, "height": height, "objects": objects}]}


def _transcribe(app: FastAPI, body: dict[str, Any]) -> dict[str, Any]:
    """The configured transcript, one 2-second segment per sentence (". " ends one); an uploaded file's size
    and first bytes are noted in the fake's state (`whisper_files`)."""
    if isinstance(body.get("file"), bytes):
        app.state.fake.setdefault("whisper_files", []).append(
            {"size": len(body["file"]), "head": body["file"][:4].hex()})
    text = app.state.fake["transcript"]
    sentences = text.split(". ")
    segments = [{"id": i, "start": 2.0 * i, "end": 2.0 * i + 1.0, "text": sentence}
                for i, sentence in enumerate(sentences)]
    return {"model": "fake-whisper", "text": text, "language": "en", "duration_s": 2.0 * len(sentences) - 1.0,
            "segments": segments, "processing_time_ms": 1.0}


def _json_schema(app: FastAPI, body: dict[str, Any]) -> dict[str, Any]:
    keys = sorted({k for sample in body["json_samples"] if isinstance(sample, dict) for k in sample})
    return {"table_name": "records", "storage_type": "jsonb", "reasoning": "fake analysis",
            "fields": {k: f"field {k}" for k in keys}, "indexes": keys[:1], "processing_time_ms": 1.0}


def _label_cluster(app: FastAPI, body: dict[str, Any]) -> dict[str, Any]:
    names = [nearest_color(mean_rgb(image)) for image in body["images"]]
    name = max(set(names), key=names.count)
    return {"cluster_name": f"{name} things", "description": f"mostly {name}", "tags": [name],
            "primary_category": "colour", "confidence": names.count(name) / len(names), "processing_time_ms": 1.0}


def _enrich(app: FastAPI, body: dict[str, Any]) -> dict[str, Any]:
    name = body["cluster_name"]
    return {"hierarchy": ["colours", name], "folder_path": f"/colours/{name.replace(' ', '_')}/",
            "extended_tags": [name, "colour"], "relationships": {}, "search_description": f"images of {name}",
            "processing_time_ms": 1.0}


FAKES = {("clip", "v1/embed/image"): _embed_image, ("clip", "v1/embed/text"): _embed_text,
         ("blip2", "v1/analyze-image"): _analyze, ("whisper", "v1/transcribe"): _transcribe,
         ("llm", "v1/analyze-json-schema"): _json_schema, ("blip2", "v1/label-cluster"): _label_cluster,
         ("llm", "v1/enrich-cluster"): _enrich, ("detector", "v1/detect"): _detect}
