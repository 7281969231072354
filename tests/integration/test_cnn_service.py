"""The cnn service over HTTP against real uvicorn processes, with the tiny ResNet in all three formats."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.support.processes import ServiceProcess

APP = "services.cnn.app:create_app"


def image_b64(seed: int, size: tuple[int, int] = (80, 60), fmt: str = "PNG") -> str:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, fmt)
    return base64.b64encode(buffer.getvalue()).decode()


IMAGES = [image_b64(seed, (60 + 9 * seed, 70), "PNG" if seed % 2 else "JPEG") for seed in range(8)]


def start_all(*services: ServiceProcess) -> None:
    """Start several processes at once: on 2 cores, importing torch is most of each start."""
    with ThreadPoolExecutor(len(services)) as pool:
        list(pool.map(lambda s: s.start(120), services))


@pytest.fixture(scope="module")
def model_dir(tiny_model) -> Path:
    return tiny_model("cnn")


@pytest.fixture(scope="module")
def service(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    logs = tmp_path_factory.mktemp("cnn")
    env = {"CNN_MODEL_PATH": str(model_dir), "CNN_MAX_IMAGE_PIXELS": "1000000", "CNN_BATCH_TIMEOUT_MS": "20"}
    proc = ServiceProcess(APP, env, logs / "hf.log")
    try:
        start_all(proc)
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def client(service: ServiceProcess) -> Iterator[httpx.Client]:
    with service.loaded_client() as c:
        yield c


def classify(client: httpx.Client, images: list[str], top_k: int = 5) -> list[dict]:
    answer = client.post("/v1/classify", json={"images": images, "top_k": top_k})
    assert answer.status_code == 200, answer.text
    return answer.json()["results"]


def probability_matrix(results: list[dict], labels: list[str]) -> np.ndarray:
    return np.array([[{s["label"]: s["score"] for s in r["top_k"]}[label] for label in labels] for r in results])


def test_load_classify_unload_cycle(client: httpx.Client) -> None:
    assert client.post("/v1/model/unload").status_code == 200
    assert client.get("/ready").status_code == 503
    refused = client.post("/v1/classify", json={"images": IMAGES[:1]})
    assert refused.status_code == 503 and "not loaded" in refused.json()["detail"]
    assert "Retry-After" in refused.headers

    loaded = client.post("/v1/model/load").json()
    assert loaded["state"] == "loaded" and loaded["memory_bytes"] > 0
    info = client.get("/v1/model").json()
    assert info["tiny"] is True and info["details"]["format"] == "hf"
    assert info["details"]["labels"] == ["abyssinian", "bengal", "maine_coon", "persian", "siamese"]
    assert 0 < info["estimated_bytes"] < 2 * info["memory_bytes"]  # only the HF weights, not all three formats

    first = classify(client, IMAGES[:2], top_k=3)
    for result in first:
        scores = [s["score"] for s in result["top_k"]]
        assert len(scores) == 3 and scores == sorted(scores, reverse=True)
        assert result["margin"] == pytest.approx(scores[0] - scores[1])
        assert 0 <= result["entropy"] <= np.log(5) + 1e-9
    full = classify(client, IMAGES[:1], top_k=100)[0]  # top_k above the label count gives every label
    assert sum(s["score"] for s in full["top_k"]) == pytest.approx(1.0)

    unloaded = client.post("/v1/model/unload").json()
    assert unloaded["freed_bytes"] >= 0.95 * loaded["memory_bytes"]
    assert client.get("/v1/model").json()["memory_bytes"] == 0
    again = client.post("/v1/classify", json={"images": IMAGES[:2], "top_k": 3})
    assert again.status_code == 503 and "POST /v1/model/load" in again.json()["detail"]
    client.post("/v1/model/load")
    assert classify(client, IMAGES[:2], top_k=3) == first


def test_batched_answers_equal_unbatched(client: httpx.Client) -> None:
    labels = client.get("/v1/model").json()["details"]["labels"]
    together = probability_matrix(classify(client, IMAGES), labels)
    with ThreadPoolExecutor(8) as pool:
        alone = list(pool.map(lambda image: classify(client, [image])[0], IMAGES))
    assert np.abs(probability_matrix(alone, labels) - together).max() < 1e-5
    metrics = client.get("/metrics").text
    batches = float(re.search(r"^mediamesh_batch_size_count (\S+)", metrics, re.M).group(1))
    items = float(re.search(r"^mediamesh_batch_size_sum (\S+)", metrics, re.M).group(1))
    assert items > batches  # at least one batch held several images


def test_three_formats_give_the_same_answer(
    client: httpx.Client, model_dir: Path, tmp_path: Path
) -> None:
    torchscript = ServiceProcess(APP, {"CNN_MODEL_PATH": str(model_dir), "CNN_FORMAT": "torchscript",
                                       "CNN_AUTOLOAD": "true", "CNN_MAX_BATCH_SIZE": "1"}, tmp_path / "ts.log")
    onnx = ServiceProcess(APP, {"CNN_MODEL_PATH": str(model_dir / "model.onnx"), "CNN_AUTOLOAD": "true"},
                          tmp_path / "onnx.log")
    try:
        start_all(torchscript, onnx)
        labels = client.get("/v1/model").json()["details"]["labels"]
        reference = probability_matrix(classify(client, IMAGES), labels)
        for proc, fmt in ((torchscript, "torchscript"), (onnx, "onnx")):
            with httpx.Client(base_url=proc.url, timeout=60) as other:
                info = other.get("/v1/model").json()
                assert info["details"]["format"] == fmt and info["memory_bytes"] > 0
                probs = probability_matrix(classify(other, IMAGES), labels)
                assert (probs.argmax(1) == reference.argmax(1)).all()
                assert np.abs(probs - reference).max() < 1e-4, fmt
        with httpx.Client(base_url=torchscript.url) as other:  # batching off: every batch held one image
            metrics = other.get("/metrics").text
        count = re.search(r"^mediamesh_batch_size_count (\S+)", metrics, re.M).group(1)
        assert re.search(r"^mediamesh_batch_size_sum (\S+)", metrics, re.M).group(1) == count
    finally:
        torchscript.stop()
        onnx.stop()


def ppm_b64() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "PPM")
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.mark.parametrize(
    ("body", "status", "phrase"),
    [
        ({"images": [base64.b64encode(b"hello, not an image").decode()]}, 415, "not an image"),
        ({"images": [IMAGES[1][:80]]}, 422, "truncated"),
        ({"images": [image_b64(0, (2000, 1000))]}, 413, "above the limit"),
        ({"images": [ppm_b64()]}, 415, "PPM"),
        ({"images": ["%%%not base64%%%"]}, 422, "not valid base64"),
        ({"images": [""]}, 422, "empty"),
        ({"images": IMAGES[:1] * 65}, 422, "at most 64"),
        ({"images": []}, 422, "at least 1"),
        ({"images": IMAGES[:1], "top_k": 0}, 422, "greater than or equal to 1"),
    ],
    ids=["not-an-image", "truncated", "decompression-bomb", "unsupported-format", "bad-base64", "empty",
         "too-many-images", "no-images", "bad-top-k"],
)
def test_bad_input_gets_a_clear_4xx(client: httpx.Client, body: dict, status: int, phrase: str) -> None:
    answer = client.post("/v1/classify", json=body)
    assert answer.status_code == status, answer.text
    assert phrase in json.dumps(answer.json()["detail"])
    assert len(classify(client, IMAGES[:1])) == 1  # and the service keeps serving


def test_second_image_named_in_the_error(client: httpx.Client) -> None:
    answer = client.post("/v1/classify", json={"images": [IMAGES[0], "bm90IGFuIGltYWdl"]})
    assert answer.status_code == 415 and "images[1]" in answer.json()["detail"]


def test_hf_folder_without_own_config_uses_id2label(model_dir: Path, tmp_path: Path) -> None:
    from services.cnn.model import CnnModel
    from services.cnn.settings import CnnSettings

    folder = tmp_path / "hf-only"
    folder.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(model_dir / name, folder / name)
    (folder / "preprocessor_config.json").write_text(json.dumps({"size": {"shortest_edge": 64}, "crop_pct": 0.875}))
    model = CnnModel(CnnSettings(model_path=folder))
    model.load()
    assert model.labels[:2] == ["abyssinian", "bengal"]
    assert model.config is not None and model.config.preprocessing.resize_shortest == 73
    with pytest.raises(FileNotFoundError, match="no onnx weights"):
        CnnModel(CnnSettings(model_path=folder, format="onnx")).load()


def test_raw_0_255_preprocessing_keeps_pixel_values() -> None:
    from services.cnn.preprocessing import from_mediamesh

    config = from_mediamesh({"labels": ["a", "b"], "image_size": 4, "resize_shortest": None,
                             "normalization": "raw_0_255"})
    pixels = config.preprocessing(Image.new("RGB", (4, 4), (10, 200, 255)))
    assert pixels.shape == (3, 4, 4) and pixels[:, 0, 0].tolist() == [10.0, 200.0, 255.0]
    imagenet = from_mediamesh({"labels": ["a"], "image_size": 4, "resize_shortest": None})
    assert imagenet.preprocessing(Image.new("RGB", (4, 4), (124, 116, 104)))[:, 0, 0] == pytest.approx(0, abs=0.01)


@pytest.mark.gpu
@pytest.mark.parametrize("fmt", ["hf", "torchscript"])
def test_cuda_answers_match_cpu_and_unload_frees_gpu_memory(model_dir: Path, fmt: str) -> None:
    import torch

    from services.cnn.model import CnnModel
    from services.cnn.settings import CnnSettings

    images = [Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB") for data in IMAGES]
    answers = []
    for device in ("cpu", "cuda"):
        model = CnnModel(CnnSettings(model_path=model_dir, format=fmt, device=device, dtype="float32"))
        model.load()
        answers.append(np.stack(model.probabilities(model.preprocess(images))))
        if device == "cuda":
            assert model.measure_bytes()[0] > 0
            model.unload()
            torch.cuda.empty_cache()
            assert torch.cuda.memory_allocated() == 0
    assert np.abs(answers[0] - answers[1]).max() < 1e-3
