"""The cascade over HTTP: gateway → stand-in cnn / clip / blip2 services with known answers.

The stand-ins are kit services (so the gateway loads them through the budget) whose answers
depend on the image's colour: a green image is a confident cat, a red one is uncertain (the
cnn says cat 0.6, clip says dog, blip2 says fox).
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from PIL import Image

from shared.imaging import decode_image_base64
from shared.kit.service import LifecycleDep, create_service_app
from shared.schemas.blip2 import VqaRequest, VqaResponse
from shared.schemas.clip import ZeroShotRequest, ZeroShotResponse
from shared.schemas.cnn import ClassifyRequest, CnnClassifyResponse
from tests.support.linear_service import LinearModel, LinearSettings
from tests.support.processes import ServiceProcess

stand_in = APIRouter()
CNN = {"green": {"cat": 0.95, "dog": 0.04, "fox": 0.01}, "red": {"cat": 0.6, "dog": 0.3, "fox": 0.1}}
CLIP = {"dog": 0.7, "cat": 0.2, "fox": 0.1}


def colour(image_b64: str) -> str:
    r, g, _ = decode_image_base64(image_b64, max_pixels=10_000).getpixel((0, 0))
    return "green" if g > r else "red"


@stand_in.post("/v1/classify")
async def cnn(body: ClassifyRequest, lifecycle: LifecycleDep) -> CnnClassifyResponse:
    async with lifecycle.use():
        probs = CNN[colour(body.images[0])]
    top = [{"label": k, "score": v} for k, v in probs.items()][: body.top_k]
    return CnnClassifyResponse.model_validate({"model": "cnn", "processing_time_ms": 0.1,
                                            "results": [{"top_k": top, "entropy": 0.5, "margin": 0.1}]})


@stand_in.post("/v1/zero-shot")
async def clip(body: ZeroShotRequest, lifecycle: LifecycleDep) -> ZeroShotResponse:
    async with lifecycle.use():
        scores = sorted(({"label": la, "score": CLIP[la]} for la in body.labels), key=lambda s: -s["score"])
    results = [{"scores": scores}]
    return ZeroShotResponse.model_validate({"model": "clip", "processing_time_ms": 0.1, "results": results})


@stand_in.post("/v1/vqa")
async def vqa(body: VqaRequest, lifecycle: LifecycleDep) -> VqaResponse:
    async with lifecycle.use():
        return VqaResponse(answer="I see a fox", processing_time_ms=0.1)


def stand_in_app() -> FastAPI:
    return create_service_app(LinearSettings(), LinearModel, [stand_in], title="stand-in")


def png(rgb: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), rgb).save(buffer, "PNG")
    return buffer.getvalue()


GREEN, RED = base64.b64encode(png((0, 200, 0))).decode(), base64.b64encode(png((200, 0, 0))).decode()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    logs = tmp_path_factory.mktemp("cascade")
    procs = {name: ServiceProcess("tests.integration.test_gateway_cascade:stand_in_app",
                                  {"LINEAR_NAME": name, "LINEAR_MODEL_PATH": str(logs)}, logs / f"{name}.log")
             for name in ("cnn", "clip")}
    registry = {name: {"url": p.url, "kind": name} for name, p in procs.items()}
    registry["blip2"] = {"url": "http://127.0.0.1:9", "kind": "blip2"}  # down
    started = [p.start() for p in procs.values()]
    env = {"GATEWAY_STORAGE_ENABLED": "false", "GATEWAY_SERVICES": json.dumps(registry),
           "GATEWAY_CASCADE_CONFIG": str(logs / "cascade.json")}
    try:
        with ServiceProcess("gateway.app:create_app", env, logs / "gateway.log") as proc:
            yield proc
    finally:
        for p in started:
            p.stop()


@pytest.fixture
def gw(gateway: ServiceProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        yield client


def test_confident_image_stops_at_the_cnn(gw: httpx.Client) -> None:
    answer = gw.post("/v1/classify", json={"image": GREEN}).json()
    assert answer["label"] == "cat" and answer["confidence"] == 0.95 and answer["variant"] == "a"
    assert [s["stage"] for s in answer["trace"]["stages"]] == ["cnn"]
    assert answer["trace"]["stages"][0]["decision"] == "stop"


def test_uncertain_image_is_reranked_by_clip(gw: httpx.Client) -> None:
    answer = gw.post("/v1/classify", json={"image": RED}).json()
    stages = answer["trace"]["stages"]
    assert [s["stage"] for s in stages] == ["cnn", "clip"]
    assert stages[0]["decision"] == "escalate" and "< threshold 0.800" in stages[0]["reason"]
    assert stages[1]["top_k"][0]["label"] == "dog" and stages[1]["decision"] == "stop"
    # fused 0.4 * cnn + 0.6 * clip: dog 0.54 (>= the clip stage's threshold 0.5), cat 0.36
    assert answer["label"] == "dog" and answer["confidence"] == pytest.approx(0.54)
    assert answer["trace"]["degraded"] is False


def test_down_blip2_degrades_to_the_clip_answer(gw: httpx.Client) -> None:
    config = gw.get("/v1/cascade/config").json()
    config["variants"]["a"]["stages"][1]["escalate"]["threshold"] = 0.9
    assert gw.put("/v1/cascade/config", json=config).status_code == 200
    answer = gw.post("/v1/classify", json={"image": RED}).json()
    stages = answer["trace"]["stages"]
    assert [s["stage"] for s in stages] == ["cnn", "clip", "blip2"]
    assert stages[2]["status"] == "failed" and "'blip2'" in stages[2]["error"]
    assert answer["trace"]["degraded"] is True and answer["label"] == "dog"


def test_runtime_config_ab_split_and_upload(gw: httpx.Client) -> None:
    config = gw.get("/v1/cascade/config").json()
    two_stage = {"stages": [
        {"kind": "cnn", "service": "cnn", "weight": 1, "escalate": {"threshold": 0.5}},
        {"kind": "clip", "service": "clip", "weight": 1}]}
    config["variants"]["b"] = two_stage
    config["split"] = {"a": 0.5, "b": 0.5}
    assert gw.put("/v1/cascade/config", json=config).status_code == 200
    served = {gw.post("/v1/classify", json={"image": RED, "request_id": f"r{i}"}).json()["variant"] for i in range(20)}
    assert served == {"a", "b"}
    again = [gw.post("/v1/classify", json={"image": RED, "request_id": "fixed"}).json()["variant"] for _ in range(3)]
    assert len(set(again)) == 1
    forced = gw.post("/v1/classify/upload", files={"file": ("red.png", png((200, 0, 0)), "image/png")},
                     data={"variant": "b"}).json()
    assert forced["variant"] == "b" and [s["stage"] for s in forced["trace"]["stages"]] == ["cnn"]


def test_bad_config_is_refused_and_nothing_changes(gw: httpx.Client) -> None:
    before = gw.get("/v1/cascade/config").json()
    bad = gw.put("/v1/cascade/config", json={"split": {"nope": 1.0}})
    assert bad.status_code == 422 and "unknown variant" in json.dumps(bad.json())
    unknown = gw.put("/v1/cascade/config", json={"variants": {"a": {"stages": [{"kind": "cnn", "service": "x"}]}}})
    assert unknown.status_code == 422 and "unknown service(s) ['x']" in unknown.json()["detail"]
    assert gw.get("/v1/cascade/config").json() == before


def test_calibrate_command_picks_and_applies_a_threshold(gw: httpx.Client, gateway: ServiceProcess,
                                                         tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from mediamesh.cli.main import app

    gw.put("/v1/cascade/config", json={})  # back to the default three-stage cascade
    for label, rgb, count in (("cat", (0, 200, 0), 3), ("dog", (200, 0, 0), 2)):
        (tmp_path / "val" / label).mkdir(parents=True)
        for i in range(count):
            (tmp_path / "val" / label / f"{i}.png").write_bytes(png((rgb[0], rgb[1] + i, i)))
    result = CliRunner().invoke(app, ["calibrate", str(tmp_path / "val"), "--target", "recall:dog>=0.99",
                                      "--url", gateway.url, "--out", str(tmp_path / "out"), "--apply"])
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "out" / "calibration.json").read_text())
    # the cnn calls the red dogs "cat" at 0.6: recovering them needs a threshold above 0.6
    assert saved["chosen"]["threshold"] == pytest.approx(0.61) and saved["chosen"]["escalation"] == 0.4
    assert saved["chosen"]["recall"] == {"cat": 1.0, "dog": 1.0}
    assert "threshold,accuracy,escalation,recall:cat,recall:dog" in (tmp_path / "out" / "curve.csv").read_text()
    applied = gw.get("/v1/cascade/config").json()["variants"]["a"]["stages"][0]["escalate"]
    assert applied["threshold"] == pytest.approx(0.61)
    unmet = CliRunner().invoke(app, ["calibrate", str(tmp_path / "val"), "--target", "escalation<=0.1",
                                     "--target", "accuracy>=0.9", "--url", gateway.url,
                                     "--out", str(tmp_path / "out2")])
    assert unmet.exit_code == 1 and "no threshold meets" in unmet.output
