"""The cascade over HTTP: gateway → stand-in cnn / clip / blip2 services with known answers.

The stand-ins are kit services (so the gateway loads them through the budget) whose answers
depend on the image's colour: a green image is a confident cat, a red one is uncertain (the
cnn says cat 0.6, clip says dog, blip2 scores fox highest). `blip2` is down; `blip2b` is up.
"""

from __future__ import annotations

import base64
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from PIL import Image

from shared.imaging import decode_image_base64
from shared.kit.service import LifecycleDep, create_service_app
from shared.schemas.blip2 import ScoreOptionsRequest, ScoreOptionsResponse
from shared.schemas.clip import ZeroShotRequest, ZeroShotResponse
from shared.schemas.cnn import ClassifyRequest, CnnClassifyResponse
from tests.support.linear_service import LinearModel, LinearSettings
from tests.support.processes import ServiceProcess
from tests.support.stand_ins import gateway_over_stand_ins

stand_in = APIRouter()
CNN = {"green": {"cat": 0.95, "dog": 0.04, "fox": 0.01}, "red": {"cat": 0.6, "dog": 0.3, "fox": 0.1}}
CLIP = {"dog": 0.7, "cat": 0.2, "fox": 0.1}
BLIP2 = {"fox": 0.6, "dog": 0.3, "cat": 0.1}


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


@stand_in.post("/v1/score-options")
async def score_options(body: ScoreOptionsRequest, lifecycle: LifecycleDep) -> ScoreOptionsResponse:
    async with lifecycle.use():
        total = sum(BLIP2[o] for o in body.options)
        scores = sorted(({"label": o, "score": BLIP2[o] / total} for o in body.options), key=lambda s: -s["score"])
    return ScoreOptionsResponse.model_validate({"scores": scores, "answer": "I see a fox" if body.answer else None})


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
    # "blip2b" is a live service of kind blip2; the one named "blip2" is down
    with gateway_over_stand_ins("tests.integration.test_gateway_cascade:stand_in_app",
                                {"cnn": "cnn", "clip": "clip", "blip2b": "blip2"}, logs,
                                down={"blip2": "blip2"}) as proc:
        yield proc


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


ZONES = {"stages": [
    {"kind": "cnn", "service": "cnn", "weight": 0.4, "escalate": {"threshold": 0.9, "jump_below": 0.7}},
    {"kind": "clip", "service": "clip", "weight": 0.6, "escalate": {"threshold": 0.5}},
    {"kind": "blip2", "service": "blip2b", "weight": 1.0, "top_k": 3}], "labels": ["cat", "dog", "fox"]}


def test_below_low_jumps_to_the_last_stage_which_scores_the_candidates(gw: httpx.Client) -> None:
    assert gw.put("/v1/cascade/config", json={"variants": {"a": ZONES}}).status_code == 200
    answer = gw.post("/v1/classify", json={"image": RED}).json()
    stages = answer["trace"]["stages"]
    assert [(s["service"], s["decision"]) for s in stages] == [("cnn", "jump"), ("blip2b", "final")]
    assert "0.600 < jump_below 0.700" in stages[0]["reason"] and stages[1]["answer"] == "I see a fox"
    # fused (0.4 cnn + 1.0 blip2) / 1.4: fox (0.04 + 0.6) / 1.4 = 0.457, dog 0.3, cat 0.243
    assert answer["label"] == "fox" and answer["confidence"] == pytest.approx(0.64 / 1.4, abs=1e-6)
    assert answer["decision"] == "answer" and answer["trace"]["rule"] == "top-1"
    green = gw.post("/v1/classify", json={"image": GREEN}).json()  # 0.95 >= high: returns at once
    assert [s["decision"] for s in green["trace"]["stages"]] == ["stop"] and green["label"] == "cat"


def test_decision_policy_answers_review_with_the_candidates(gw: httpx.Client) -> None:
    review = {**ZONES, "decision": {"class_thresholds": {"fox": 0.5}, "review_thresholds": {"fox": 0.4}}}
    assert gw.put("/v1/cascade/config", json={"variants": {"a": review}}).status_code == 200
    answer = gw.post("/v1/classify", json={"image": RED}).json()
    assert answer["label"] is None and answer["decision"] == "review"
    assert "p('fox') 0.457 in review band [0.400, 0.500)" == answer["trace"]["rule"]
    assert [s["label"] for s in answer["top_k"]] == ["fox", "dog", "cat"]


@pytest.mark.parametrize(("change", "phrase"), [
    ({"stages": [{**ZONES["stages"][0], "escalate": {"threshold": 0.5, "jump_below": 0.7}}, *ZONES["stages"][1:]]},
     "thresholds out of order"),
    ({"decision": {"class_thresholds": {"pit": 0.2}}}, "unknown label(s) ['pit']"),
    ({"last_stage": "nowhere"}, "last_stage 'nowhere' is not a later stage"),
    ({"stages": [{**ZONES["stages"][0], "temperature": 0}, *ZONES["stages"][1:]]}, "greater than 0"),
])
def test_bad_routing_and_decision_configs_are_422_and_change_nothing(gw: httpx.Client, change: dict,
                                                                     phrase: str) -> None:
    before = gw.get("/v1/cascade/config").json()
    bad = gw.put("/v1/cascade/config", json={"variants": {"a": {**ZONES, **change}}})
    assert bad.status_code == 422 and phrase in json.dumps(bad.json())
    assert gw.get("/v1/cascade/config").json() == before


def test_calibrate_replays_the_cascade_tunes_confirms_and_applies(gw: httpx.Client, gateway: ServiceProcess,
                                                                  tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from mediamesh.cli.main import app

    assert gw.put("/v1/cascade/config", json={"variants": {"a": ZONES}}).status_code == 200
    for label, rgb in (("cat", (0, 200, 0)), ("dog", (200, 0, 0))):
        (tmp_path / "val" / label).mkdir(parents=True)
        for i in range(10):
            (tmp_path / "val" / label / f"{i}.png").write_bytes(png((rgb[0], rgb[1] + i, i)))
    args = ["calibrate", str(tmp_path / "val"), "--target", "recall:dog>=0.99", "--target", "escalation<=0.5",
            "--target", "review<=0.05", "--steps", "10", "--url", gateway.url, "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(app, [*args, "--apply", "--plot", str(tmp_path / "curves.png")])
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "curves.png").size == (720, 360)
    saved = json.loads((tmp_path / "out" / "calibration.json").read_text())
    assert saved["tuned_on"]["images"] == 14 and saved["held_out"]["images"] == 6
    assert saved["held_out"]["met"] and saved["held_out"]["recall"]["dog"] == 1.0
    # the red dogs must go on (the cnn calls them cat 0.6), the green cats may stop: half escalated
    assert saved["held_out"]["escalation"] == 0.5 and "held out: 6 images" in result.output
    applied = gw.get("/v1/cascade/config").json()["variants"]["a"]
    assert applied == saved["variant"] and applied["stages"][2]["service"] == "blip2b"
    assert gw.post("/v1/classify", json={"image": RED}).json()["label"] == "dog"
    assert gw.post("/v1/classify", json={"image": GREEN}).json()["label"] == "cat"
    assert gw.put("/v1/cascade/config", json={"variants": {"a": ZONES}}).status_code == 200  # no decision policy
    unmet = CliRunner().invoke(app, [*args[:2], "--target", "escalation<=0.1", "--target", "accuracy>=0.9",
                                     "--url", gateway.url, "--out", str(tmp_path / "out2")])
    assert unmet.exit_code == 1 and "no setting meets" in unmet.output


def test_keep_alive_reaches_every_model_the_cascade_calls(gw: httpx.Client) -> None:
    cnn_then_clip = {"stages": [{"kind": "cnn", "service": "cnn", "escalate": {"threshold": 1.0}},
                                {"kind": "clip", "service": "clip"}]}
    assert gw.put("/v1/cascade/config", json={"variants": {"a": cnn_then_clip}}).status_code == 200
    answer = gw.post("/v1/classify", json={"image": RED, "keep_alive": 0})
    assert answer.status_code == 200 and [s["stage"] for s in answer.json()["trace"]["stages"]] == ["cnn", "clip"]

    def unloaded() -> bool:
        states = {m["id"]: m["state"] for m in gw.get("/v1/models").json()["data"]}
        return states["cnn"] == states["clip"] == "unloaded"

    deadline = time.monotonic() + 2.0  # well before an idle time-to-live could have done it
    while not unloaded():
        assert time.monotonic() < deadline, "keep_alive 0 did not unload the cascade's models"
        time.sleep(0.05)
    refused = gw.post("/v1/classify", json={"image": RED, "keep_alive": "soon"})
    assert refused.status_code == 422
