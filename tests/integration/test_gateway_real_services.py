"""The gateway with the real cnn, clip and blip2 services (tiny random-weight models): the cascade's
calls match the services' contracts, and the gateway loads each model on first use."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from shared.imaging import encode_image_base64
from tests.support.processes import ServiceProcess

LABELS = {"abyssinian", "bengal", "maine_coon", "persian", "siamese"}  # services/cnn/tiny.py


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, tiny_model: Callable[[str], Path]) -> Iterator[ServiceProcess]:
    logs = tmp_path_factory.mktemp("real")
    procs = {name: ServiceProcess(f"services.{name}.app:create_app",
                                  {f"{name.upper()}_MODEL_PATH": str(tiny_model(name)),
                                   f"{name.upper()}_DEVICE": "cpu"}, logs / f"{name}.log")
             for name in ("cnn", "clip", "blip2")}
    started = []
    try:
        for proc in procs.values():
            started.append(proc.start(timeout_s=120))
        registry = {name: {"url": p.url, "kind": name} for name, p in procs.items()}
        env = {"GATEWAY_STORAGE_ENABLED": "false", "GATEWAY_SERVICES": json.dumps(registry)}
        with ServiceProcess("gateway.app:create_app", env, logs / "gateway.log") as proc:
            yield proc
    finally:
        for proc in started:
            proc.stop()


def test_cascade_runs_the_real_cnn_and_clip(gateway: ServiceProcess) -> None:
    image = encode_image_base64(Image.new("RGB", (80, 60), (30, 140, 200)), "JPEG")
    with httpx.Client(base_url=gateway.url, timeout=120) as gw:
        assert {m["id"]: m["state"] for m in gw.get("/v1/models").json()["data"]} == {
            "cnn": "unloaded", "clip": "unloaded", "blip2": "unloaded"}
        config = gw.get("/v1/cascade/config").json()
        config["variants"]["a"]["stages"][1]["templates"] = ["a photo of a {}.", "a blurry photo of a {}."]
        config["variants"]["a"]["stages"][1]["label_templates"] = {"persian": ["a fluffy {} cat."]}
        assert gw.put("/v1/cascade/config", json=config).status_code == 200
        answer = gw.post("/v1/classify", json={"image": image, "mode": "always"})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        stages = body["trace"]["stages"]
        assert [(s["stage"], s["status"]) for s in stages] == [("cnn", "ok"), ("clip", "ok"), ("blip2", "ok")]
        assert {s["label"] for s in stages[1]["top_k"]} <= LABELS and body["label"] in LABELS
        assert body["trace"]["degraded"] is False
        for stage in stages[1:]:  # clip (prompt ensembles) and blip2 (score-options): distributions over the candidates
            assert {s["label"] for s in stage["top_k"]} <= LABELS and len(stage["top_k"]) == len(stages[0]["top_k"])
            assert abs(sum(s["score"] for s in stage["top_k"]) - 1) < 1e-3
        assert isinstance(stages[2]["answer"], str)  # the free-text answer, kept as the reasoning
        models = {m["id"]: m for m in gw.get("/v1/models").json()["data"]}
        assert models["cnn"]["state"] == models["clip"]["state"] == models["blip2"]["state"] == "loaded"
        assert models["cnn"]["footprint_bytes"] > 0 and models["clip"]["footprint_bytes"] > 0
        embed = gw.post("/v1/services/clip/v1/embed/text", json={"texts": ["a cat"]})
        assert embed.status_code == 200 and embed.json()["dim"] == 512
