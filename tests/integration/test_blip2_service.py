"""The blip2 service over HTTP with the tiny random-weight BLIP-2: contract, the three task
endpoints, answers computed from pixels (colours, orientation) and bad input."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from shared.schemas.blip2 import AnalyzeImageResponse, LabelClusterResponse
from tests.support.processes import ServiceProcess

APP = "services.blip2.app:create_app"
RED, BLUE = (200, 30, 30), (20, 40, 220)


def png_b64(size: tuple[int, int] = (64, 48), colour: tuple[int, int, int] = RED) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def two_colour_b64() -> str:
    """Three quarters red, one quarter blue, 40x80 (portrait)."""
    image = Image.new("RGB", (40, 80), RED)
    image.paste(Image.new("RGB", (40, 20), BLUE), (0, 60))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, tiny_model: Callable[[str], Path]) -> Iterator[ServiceProcess]:
    logs = tmp_path_factory.mktemp("blip2")
    env = {"BLIP2_MODEL_PATH": str(tiny_model("blip2")), "BLIP2_DEVICE": "cpu", "BLIP2_MAX_NEW_TOKENS": "12",
           "BLIP2_MAX_IMAGE_PIXELS": "1000000"}
    with ServiceProcess(APP, env, logs / "blip2.log") as proc:
        yield proc


@pytest.fixture
def client(service: ServiceProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.url, timeout=120) as c:
        c.post("/v1/model/load").raise_for_status()
        yield c


def test_load_analyze_unload_cycle(service: ServiceProcess) -> None:
    with httpx.Client(base_url=service.url, timeout=120) as c:
        c.post("/v1/model/unload")
        refused = c.post("/analyze-image", json={"image": png_b64()})
        assert refused.status_code == 503 and "not loaded" in refused.json()["detail"]
        loaded = c.post("/v1/model/load").json()
        assert loaded["state"] == "loaded" and loaded["memory_bytes"] > 100_000
        info = c.get("/v1/model").json()
        assert info["tiny"] is True and info["details"]["num_query_tokens"] == 4
        first = c.post("/analyze-image", json={"image": png_b64()})
        assert first.status_code == 200, first.text
        again = c.post("/analyze-image", json={"image": png_b64()}).json()
        assert again["caption"] == first.json()["caption"]  # greedy: same image, same caption
        freed = c.post("/v1/model/unload").json()
        assert freed["freed_bytes"] >= 0.95 * loaded["memory_bytes"]
        assert c.get("/v1/model").json()["memory_bytes"] == 0
        assert c.post("/v1/vqa", json={"image": png_b64(), "question": "what?"}).status_code == 503
        c.post("/v1/model/load")
        assert c.post("/v1/vqa", json={"image": png_b64(), "question": "what?"}).status_code == 200


def test_analyze_image_all_tasks(client: httpx.Client) -> None:
    answer = client.post("/analyze-image", json={"image": two_colour_b64()})
    assert answer.status_code == 200, answer.text
    result = AnalyzeImageResponse.model_validate(answer.json())
    assert isinstance(result.caption, str)
    assert result.scene_type in ("indoor", "outdoor") and 0.5 <= result.scene_confidence <= 1
    assert result.orientation == "portrait"
    assert result.dominant_colors == ["#c81e1e", "#1428dc"]  # from the pixels: red covers more than blue
    assert all(0 <= o.confidence <= 1 and o.name for o in result.objects)
    assert result.processing_time_ms > 0


def test_analyze_image_only_the_tasks_asked(client: httpx.Client) -> None:
    answer = client.post("/analyze-image", json={"image": png_b64((90, 40)), "tasks": ["colors", "scene"]}).json()
    assert answer["caption"] is None and answer["objects"] == []
    assert answer["dominant_colors"] == ["#c81e1e"] and answer["orientation"] == "landscape"


def test_vqa_answers_a_question(client: httpx.Client) -> None:
    answer = client.post("/v1/vqa", json={"image": png_b64(), "question": "What colour is it?"})
    assert answer.status_code == 200, answer.text
    assert isinstance(answer.json()["answer"], str) and answer.json()["processing_time_ms"] > 0


def test_label_cluster(client: httpx.Client) -> None:
    images = [png_b64(colour=(200, 30 + 20 * i, 30)) for i in range(5)]
    answer = client.post("/label-cluster", json={"images": images, "cluster_size": 45})
    assert answer.status_code == 200, answer.text
    label = LabelClusterResponse.model_validate(answer.json())
    assert label.cluster_name and label.primary_category in label.tags
    assert 0 < label.confidence <= 1 and "45 items" in label.description


@pytest.mark.parametrize(
    ("path", "payload", "status", "phrase"),
    [
        ("/analyze-image", {"image": base64.b64encode(b"not an image at all").decode()}, 415, "not an image"),
        ("/analyze-image", {"image": png_b64()[:80]}, 422, "truncated"),
        ("/analyze-image", {"image": png_b64((2000, 1000))}, 413, "above the limit"),
        ("/analyze-image", {"image": png_b64(), "tasks": ["caption", "poetry"]}, 422, "'caption', 'scene'"),
        ("/analyze-image", {"image": png_b64(), "tasks": []}, 422, "at least 1 item"),
        ("/label-cluster", {"images": [png_b64()] * 6, "cluster_size": 9}, 422, "at most 5 representative images"),
        ("/label-cluster", {"images": [png_b64(), "@@@"]}, 422, "images[1] is not valid base64"),
        ("/v1/vqa", {"image": png_b64(), "question": "   "}, 422, "question is blank"),
    ],
    ids=["not-an-image", "truncated", "bomb", "unknown-task", "no-tasks", "six-images", "bad-base64", "blank-q"],
)
def test_bad_input_gets_a_clear_4xx(client: httpx.Client, path: str, payload: dict, status: int, phrase: str) -> None:
    answer = client.post(path, json=payload)
    assert answer.status_code == status, answer.text
    assert phrase in json.dumps(answer.json()["detail"])
    assert client.post("/analyze-image", json={"image": png_b64(), "tasks": ["colors"]}).status_code == 200


def test_quantization_without_cuda_is_a_clear_error(tmp_path: Path, tiny_model: Callable[[str], Path]) -> None:
    env = {"BLIP2_MODEL_PATH": str(tiny_model("blip2")), "BLIP2_DEVICE": "cpu", "BLIP2_QUANTIZATION": "8bit"}
    with ServiceProcess(APP, env, tmp_path / "blip2-8bit.log") as proc, httpx.Client(base_url=proc.url) as c:
        answer = c.post("/v1/model/load", timeout=60)
        assert answer.status_code == 503
        assert "needs a CUDA GPU" in answer.json()["detail"] and "BLIP2_QUANTIZATION=none" in answer.json()["detail"]
        assert c.get("/health").json()["state"] == "error"


def test_score_options_is_a_distribution_over_the_options_with_the_free_text_answer(client: httpx.Client) -> None:
    body = {"image": png_b64(), "question": "What colour is it?", "options": ["red", "blue", "green"]}
    answer = client.post("/v1/score-options", json={**body, "answer": True}).json()
    assert sorted(s["label"] for s in answer["scores"]) == ["blue", "green", "red"]
    assert sum(s["score"] for s in answer["scores"]) == pytest.approx(1.0)
    assert [s["score"] for s in answer["scores"]] == sorted((s["score"] for s in answer["scores"]), reverse=True)
    assert isinstance(answer["answer"], str)
    # a softmax over a subset of the options is the renormalised restriction (what calibration replays)
    pair = client.post("/v1/score-options", json={**body, "options": ["red", "blue"]}).json()
    full = {s["label"]: s["score"] for s in answer["scores"]}
    assert {s["label"]: s["score"] for s in pair["scores"]} == pytest.approx(
        {k: full[k] / (full["red"] + full["blue"]) for k in ("red", "blue")}, abs=1e-4)
    assert pair["answer"] is None
    dup = client.post("/v1/score-options", json={**body, "options": ["red", "red"]})
    assert dup.status_code == 422 and "distinct" in json.dumps(dup.json())
