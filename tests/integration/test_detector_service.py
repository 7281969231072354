"""The detector service over HTTP against a real uvicorn process, with the tiny random RT-DETR (COCO labels)."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.support.processes import ServiceProcess

APP = "services.detector.app:create_app"
SIZE = (160, 100)  # width, height


def image_b64(seed: int, size: tuple[int, int] = SIZE) -> str:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture(scope="module")
def service(tiny_model, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    logs = tmp_path_factory.mktemp("detector")
    env = {"DETECTOR_MODEL_PATH": str(tiny_model("detector")), "DETECTOR_MAX_IMAGE_PIXELS": "100000"}
    with ServiceProcess(APP, env, logs / "detector.log") as proc:
        yield proc


@pytest.fixture
def client(service: ServiceProcess) -> Iterator[httpx.Client]:
    with service.loaded_client() as c:
        yield c


def detect(client: httpx.Client, **body: object) -> dict:
    answer = client.post("/v1/detect", json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_boxes_are_inside_the_image_in_pixels_and_normalised(client: httpx.Client) -> None:
    info = client.get("/v1/model").json()
    assert info["tiny"] is True and info["details"]["architecture"] == "rt_detr"
    assert info["details"]["open_vocabulary"] is False and info["details"]["labels"] == 80
    answer = detect(client, images=[image_b64(1), image_b64(2, (64, 120))], score_threshold=0.0, max_boxes=300)
    assert answer["model"].startswith("tiny-random/") and answer["open_vocabulary"] is False
    sizes = [(r["width"], r["height"]) for r in answer["results"]]
    assert sizes == [SIZE, (64, 120)]
    for (width, height), result in zip(sizes, answer["results"], strict=True):
        objects = result["objects"]
        assert objects, "threshold 0 keeps the model's boxes"
        assert [o["score"] for o in objects] == sorted((o["score"] for o in objects), reverse=True)
        for o in objects:
            box, norm = o["box"], o["box_normalized"]
            assert 0 <= box["x0"] < box["x1"] <= width and 0 <= box["y0"] < box["y1"] <= height
            assert norm["x0"] == pytest.approx(box["x0"] / width, abs=1e-4)
            assert norm["y1"] == pytest.approx(box["y1"] / height, abs=1e-4)
            assert 0 <= o["score"] <= 1 and o["label"]


def test_threshold_and_max_boxes_cut_the_list(client: httpx.Client) -> None:
    image = image_b64(3)
    everything = detect(client, images=[image], score_threshold=0.0, max_boxes=300)["results"][0]["objects"]
    scores = [o["score"] for o in everything]
    middle = scores[len(scores) // 2]
    above = detect(client, images=[image], score_threshold=middle, max_boxes=300)["results"][0]["objects"]
    assert above and all(o["score"] >= middle for o in above) and len(above) < len(everything)
    assert above == [o for o in everything if o["score"] >= middle]
    three = detect(client, images=[image], score_threshold=0.0, max_boxes=3)["results"][0]["objects"]
    assert three == everything[:3]


def test_nothing_found_is_an_empty_list(client: httpx.Client) -> None:
    answer = detect(client, images=[image_b64(4)], score_threshold=1.0)
    assert answer["results"] == [{"width": SIZE[0], "height": SIZE[1], "objects": []}]


def test_queries_on_a_closed_vocabulary_model_filter_its_labels(client: httpx.Client) -> None:
    image = image_b64(5)
    everything = detect(client, images=[image], score_threshold=0.0, max_boxes=300)["results"][0]["objects"]
    label = everything[0]["label"]
    only = detect(client, images=[image], score_threshold=0.0, max_boxes=300, queries=[label.upper()])
    kept = only["results"][0]["objects"]
    assert kept and {o["label"] for o in kept} == {label}
    assert kept == [o for o in everything if o["label"] == label]


@pytest.mark.parametrize(("body", "status", "phrase"), [
    ({"images": [image_b64(6)], "queries": ["dog", "damaged drain"]}, 422,
     "closed-vocabulary detector (80 labels"),
    ({"images": [image_b64(6)], "queries": ["  "]}, 422, "queries must be non-empty phrases"),
    ({"images": [image_b64(6)], "score_threshold": 1.5}, 422, "less than or equal to 1"),
    ({"images": [image_b64(6)], "max_boxes": 0}, 422, "greater than or equal to 1"),
    ({"images": []}, 422, "at least 1 item"),
    ({"images": [base64.b64encode(b"not an image at all").decode()]}, 415, "images[0] is not an image"),
    ({"images": ["%%%"]}, 422, "images[0]"),
    ({"images": [image_b64(7, (400, 300))]}, 413, "above the limit of 100,000"),
])
def test_bad_input_is_4xx_with_a_message(client: httpx.Client, body: dict, status: int, phrase: str) -> None:
    answer = client.post("/v1/detect", json=body)
    assert answer.status_code == status, answer.text
    assert phrase in answer.text
    if "damaged drain" in str(body):
        assert "'damaged drain'" in answer.json()["detail"] and "OWLv2" in answer.json()["detail"]


def test_unloaded_model_answers_503_until_loaded(client: httpx.Client) -> None:
    assert client.post("/v1/model/unload").status_code == 200
    refused = client.post("/v1/detect", json={"images": [image_b64(8)]})
    assert refused.status_code == 503 and "not loaded" in refused.json()["detail"]
    assert client.post("/v1/model/load").status_code == 200
    assert detect(client, images=[image_b64(8)], score_threshold=0.0)["results"][0]["objects"]


def build_tiny_owlv2(dest: Path) -> Path:
    """A tiny random OWLv2 (the open-vocabulary architecture) with the tiny CLIP's tokenizer."""
    import torch
    from transformers import Owlv2Config, Owlv2ForObjectDetection, Owlv2ImageProcessorPil, Owlv2Processor

    from services.clip.tiny import tiny_tokenizer

    tokenizer = tiny_tokenizer()
    tokenizer.model_max_length = 16
    vocab = len(tokenizer)
    text = {"vocab_size": vocab, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 2, "max_position_embeddings": 16, "bos_token_id": vocab - 2,
            "eos_token_id": vocab - 1, "pad_token_id": vocab - 1}
    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
              "image_size": 64, "patch_size": 16}
    torch.manual_seed(0)
    config = Owlv2Config(text_config=text, vision_config=vision, projection_dim=32)
    Owlv2ForObjectDetection(config).save_pretrained(dest)
    Owlv2Processor(image_processor=Owlv2ImageProcessorPil(size={"height": 64, "width": 64}),
                   tokenizer=tokenizer).save_pretrained(dest)
    return dest


@pytest.fixture(scope="module")
def owlv2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    folder = tmp_path_factory.mktemp("owlv2")
    env = {"DETECTOR_MODEL_PATH": str(build_tiny_owlv2(folder / "detector")), "DETECTOR_AUTOLOAD": "true",
           "DETECTOR_DEFAULT_QUERIES": '["cat", "dog"]'}
    with ServiceProcess(APP, env, folder / "detector.log") as proc, \
            httpx.Client(base_url=proc.url, timeout=60) as client:
        yield client


def test_an_owlv2_folder_detects_the_phrases_it_is_given(owlv2: httpx.Client) -> None:
    assert owlv2.get("/v1/model").json()["details"]["architecture"] == "owlv2"
    phrases = ["a damaged drain", "a blocked toe drain"]
    answer = detect(owlv2, images=[image_b64(9)], queries=phrases, score_threshold=0.0, max_boxes=10)
    assert answer["open_vocabulary"] is True
    objects = answer["results"][0]["objects"]
    assert len(objects) == 10 and {o["label"] for o in objects} <= set(phrases)
    for o in objects:
        box = o["box"]
        assert 0 <= box["x0"] < box["x1"] <= SIZE[0] and 0 <= box["y0"] < box["y1"] <= SIZE[1]
    default = detect(owlv2, images=[image_b64(9)], score_threshold=0.0)["results"][0]["objects"]
    assert default and {o["label"] for o in default} <= {"cat", "dog"}  # DETECTOR_DEFAULT_QUERIES
