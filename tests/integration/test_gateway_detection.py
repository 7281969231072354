"""The cascade's detection stage over HTTP: gateway → stand-in detector, cnn and clip services.

The stand-ins are kit services (so the gateway loads them through the budget). The detector finds
fixed boxes on the test picture: a green block ("cat"), a red block ("dog"), a 3-pixel speck
("bird") and a weak box ("car", score 0.3). The cnn and clip answer by the colour of what they
are sent, so each object's answer shows which crop it was given.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from fastapi import APIRouter, FastAPI
from PIL import Image

from shared.imaging import decode_image_base64
from shared.kit.service import LifecycleDep, create_service_app
from shared.schemas.clip import ZeroShotRequest, ZeroShotResponse
from shared.schemas.cnn import ClassifyRequest, CnnClassifyResponse
from shared.schemas.detector import DetectRequest, DetectResponse
from tests.support.linear_service import LinearModel, LinearSettings
from tests.support.processes import ServiceProcess
from tests.support.stand_ins import gateway_over_stand_ins

stand_in = APIRouter()
WIDTH, HEIGHT = 120, 80
BOXES = [("cat", 0.9, (10, 10, 50, 60)), ("dog", 0.8, (70, 10, 110, 60)), ("bird", 0.7, (100, 70, 103, 73)),
         ("car", 0.3, (0, 0, 20, 20))]
CNN = {"green": {"tabby": 0.9, "lynx": 0.1}, "red": {"fox": 0.55, "dog": 0.45}, "blue": {"scene": 0.95, "x": 0.05}}
CONDITION = {"green": ("normal", "cat"), "red": ("damaged", "dog")}


def colour(image_b64: str) -> str:
    pixels = np.asarray(decode_image_base64(image_b64, max_pixels=100_000), dtype=float)
    return ("red", "green", "blue")[int(pixels.reshape(-1, 3).mean(axis=0).argmax())]


@stand_in.post("/v1/detect")
async def detect(body: DetectRequest, lifecycle: LifecycleDep) -> DetectResponse:
    async with lifecycle.use():
        wanted = {q.lower() for q in body.queries or []}
        objects = [{"label": label, "score": score, "box": dict(zip(("x0", "y0", "x1", "y1"), box, strict=True)),
                    "box_normalized": {"x0": box[0] / WIDTH, "y0": box[1] / HEIGHT, "x1": box[2] / WIDTH,
                                       "y1": box[3] / HEIGHT}}
                   for label, score, box in BOXES
                   if score >= (body.score_threshold or 0.5) and (not wanted or label in wanted)]
    return DetectResponse.model_validate({"model": "detector", "open_vocabulary": False, "results": [
        {"width": WIDTH, "height": HEIGHT, "objects": objects[: body.max_boxes]}]})


@stand_in.post("/v1/classify")
async def cnn(body: ClassifyRequest, lifecycle: LifecycleDep) -> CnnClassifyResponse:
    async with lifecycle.use():
        probs = CNN[colour(body.images[0])]
    top = [{"label": k, "score": v} for k, v in probs.items()][: body.top_k]
    return CnnClassifyResponse.model_validate({"model": "cnn", "results": [{"top_k": top, "entropy": 0.5,
                                                                           "margin": 0.1}]})


@stand_in.post("/v1/zero-shot")
async def clip(body: ZeroShotRequest, lifecycle: LifecycleDep) -> ZeroShotResponse:
    """The crop's condition scores 0.8, but only when the prompt names the object it shows."""
    async with lifecycle.use():
        condition, thing = CONDITION.get(colour(body.images[0]), ("", ""))
        named = any(thing in template for template in body.prompts()[0])
        scores = {label: (0.8 if label == condition else 0.2 / (len(body.labels) - 1)) if named
                  else 1 / len(body.labels) for label in body.labels}
    ranked = sorted(({"label": k, "score": v} for k, v in scores.items()), key=lambda s: -s["score"])
    return ZeroShotResponse.model_validate({"model": "clip", "results": [{"scores": ranked}]})


def stand_in_app() -> FastAPI:
    return create_service_app(LinearSettings(), LinearModel, [stand_in], title="stand-in")


def picture() -> str:
    image = Image.new("RGB", (WIDTH, HEIGHT), (0, 0, 200))
    image.paste((0, 200, 0), (10, 10, 50, 60))
    image.paste((200, 0, 0), (70, 10, 110, 60))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


PICTURE = picture()
WHOLE = [{"kind": "cnn", "service": "cnn", "escalate": {"threshold": 0.5}}]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    logs = tmp_path_factory.mktemp("detection")
    with gateway_over_stand_ins("tests.integration.test_gateway_detection:stand_in_app",
                                {name: name for name in ("detector", "cnn", "clip")}, logs,
                                down={"detector_down": "detector"}) as proc:
        yield proc


@pytest.fixture
def gw(gateway: ServiceProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        yield client


def classify_with(gw: httpx.Client, detection: dict | None) -> dict:
    variant: dict = {"stages": WHOLE} if detection is None else {"stages": WHOLE, "detection": detection}
    configured = gw.put("/v1/cascade/config", json={"variants": {"a": variant}})
    assert configured.status_code == 200, configured.text
    answer = gw.post("/v1/classify", json={"image": PICTURE})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_each_object_is_cropped_and_classified_with_its_box(gw: httpx.Client) -> None:
    answer = classify_with(gw, {"service": "detector", "min_crop_pixels": 5, "margin": 0.1})
    assert answer["label"] == "scene" and answer["confidence"] == 0.95  # the whole-image answer is unchanged
    objects = answer["objects"]
    assert [(o["label"], o["score"]) for o in objects] == [("cat", 0.9), ("dog", 0.8), ("bird", 0.7)]
    assert objects[0]["box"] == {"x0": 10, "y0": 10, "x1": 50, "y1": 60}
    assert objects[1]["box_normalized"]["x0"] == pytest.approx(70 / WIDTH)
    assert objects[0]["classification"]["label"] == "tabby" and objects[1]["classification"]["label"] == "fox"
    assert objects[1]["classification"]["confidence"] == 0.55 and objects[2]["classification"] is None
    detection = answer["trace"]["detection"]
    assert detection["status"] == "ok" and detection["found"] == 3
    traced = detection["objects"]
    assert [t["status"] for t in traced] == ["ok", "ok", "skipped"]
    assert traced[0]["crop"] == [48, 60]  # 40x50 box plus 10 % of its size on each side
    assert "3.0x3.0 px is smaller than min_crop_pixels 5" in traced[2]["reason"]
    assert [s["service"] for s in traced[0]["stages"]] == ["cnn"] and traced[0]["stages"][0]["decision"] == "final"


def test_the_cap_keeps_the_highest_scoring_objects(gw: httpx.Client) -> None:
    answer = classify_with(gw, {"max_objects": 1, "score_threshold": 0.2})
    assert [o["label"] for o in answer["objects"]] == ["cat"]
    assert answer["trace"]["detection"]["found"] == 4


def test_clip_scores_each_objects_condition_in_its_own_prompt(gw: httpx.Client) -> None:
    answer = classify_with(gw, {"stages": [{"kind": "clip", "service": "clip"}], "queries": ["cat", "dog"],
                                "conditions": ["normal", "damaged", "blocked"]})
    results = [(o["label"], o["classification"]["label"], o["classification"]["confidence"])
               for o in answer["objects"]]
    # 0.8 only when the prompt "a photo of a {condition} {object}." named the object the crop shows
    assert results == [("cat", "normal", 0.8), ("dog", "damaged", 0.8)]


def test_escalation_runs_the_next_object_stage_only_when_unsure(gw: httpx.Client) -> None:
    stages = [{"kind": "cnn", "service": "cnn", "escalate": {"threshold": 0.8}},
              {"kind": "clip", "service": "clip", "weight": 1.0}]
    answer = classify_with(gw, {"stages": stages, "queries": ["cat", "dog"]})
    traced = answer["trace"]["detection"]["objects"]
    assert [s["decision"] for s in traced[0]["stages"]] == ["stop"]  # tabby 0.9 >= 0.8
    assert [s["decision"] for s in traced[1]["stages"]] == ["escalate", "final"]  # fox 0.55 < 0.8


def test_a_down_detector_leaves_the_whole_image_answer(gw: httpx.Client) -> None:
    answer = classify_with(gw, {"service": "detector_down"})
    assert answer["label"] == "scene" and answer["objects"] == []
    detection = answer["trace"]["detection"]
    assert detection["status"] == "failed" and "detector_down" in detection["error"]


def test_without_a_detection_stage_there_are_no_objects(gw: httpx.Client) -> None:
    answer = classify_with(gw, None)
    assert answer["objects"] is None and answer["trace"]["detection"] is None


@pytest.mark.parametrize(("detection", "phrase"), [
    ({"service": "nowhere"}, "unknown service(s) ['nowhere']"),
    ({"conditions": ["normal", "damaged"]}, "conditions are scored by clip stages only"),
    ({"conditions": ["normal"], "stages": [{"kind": "clip", "service": "clip"}]}, "at least 2 different"),
    ({"stages": [{"kind": "clip", "service": "clip"}]}, "the first object stage must propose the labels"),
    ({"conditions": ["a", "b"], "condition_template": "a {condition}", "stages": [{"kind": "clip", "service": "clip"}]},
     "must contain {object}"),
    ({"max_objects": 0}, "greater than or equal to 1"),
])
def test_bad_detection_configs_are_422_and_change_nothing(gw: httpx.Client, detection: dict, phrase: str) -> None:
    before = gw.get("/v1/cascade/config").json()
    bad = gw.put("/v1/cascade/config", json={"variants": {"a": {"stages": WHOLE, "detection": detection}}})
    assert bad.status_code == 422 and phrase in json.dumps(bad.json()), bad.text
    assert gw.get("/v1/cascade/config").json() == before
