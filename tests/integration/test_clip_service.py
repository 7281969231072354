"""The clip service over HTTP against a real uvicorn process, with the tiny CLIP (512-d projection)."""

from __future__ import annotations

import base64
import io
import json
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.support.processes import ServiceProcess

APP = "services.clip.app:create_app"


def image_b64(seed: int, size: tuple[int, int] = (90, 70), fmt: str = "PNG") -> str:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, fmt)
    return base64.b64encode(buffer.getvalue()).decode()


IMAGES = [image_b64(seed, (64 + 11 * seed, 80), "JPEG" if seed % 2 else "PNG") for seed in range(8)]
TEXTS = ["a photo of a cat", "a black cat on a table", "quarterly report", "a", "", "the sea and the sky " * 30]
LABELS = ["cat", "dog", "cherry pit"]


@pytest.fixture(scope="module")
def service(tiny_model, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    logs = tmp_path_factory.mktemp("clip")
    env = {"CLIP_MODEL_PATH": str(tiny_model("clip")), "CLIP_MAX_IMAGE_PIXELS": "1000000",
           "CLIP_BATCH_TIMEOUT_MS": "20", "CLIP_LABEL_CACHE_SIZE": "2"}
    with ServiceProcess(APP, env, logs / "clip.log") as proc:
        yield proc


@pytest.fixture
def client(service: ServiceProcess) -> Iterator[httpx.Client]:
    with service.loaded_client() as c:
        yield c


def embed(client: httpx.Client, kind: str, items: list[str]) -> np.ndarray:
    answer = client.post(f"/v1/embed/{kind}", json={"images" if kind == "image" else "texts": items})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["dim"] == 512 and len(body["embeddings"]) == len(items)
    return np.array(body["embeddings"])


def zero_shot(client: httpx.Client, images: list[str], labels: list[str], template: str = "a photo of a {}.") -> dict:
    answer = client.post("/v1/zero-shot", json={"images": images, "labels": labels, "template": template})
    assert answer.status_code == 200, answer.text
    return answer.json()


def cache_stats(client: httpx.Client) -> dict[str, int]:
    return client.get("/v1/model").json()["details"]["label_cache"]


def test_load_embed_unload_cycle(client: httpx.Client) -> None:
    assert client.post("/v1/model/unload").status_code == 200
    refused = client.post("/v1/embed/text", json={"texts": ["a cat"]})
    assert refused.status_code == 503 and "not loaded" in refused.json()["detail"]

    loaded = client.post("/v1/model/load").json()
    assert loaded["memory_bytes"] > 0
    info = client.get("/v1/model").json()
    assert info["tiny"] is True and info["details"]["embedding_dim"] == 512
    images, texts = embed(client, "image", IMAGES[:3]), embed(client, "text", TEXTS)
    assert np.linalg.norm(images, axis=1) == pytest.approx(1, abs=1e-5)
    assert np.linalg.norm(texts, axis=1) == pytest.approx(1, abs=1e-5)
    assert not np.allclose(images[0], images[1])

    unloaded = client.post("/v1/model/unload").json()
    assert unloaded["freed_bytes"] >= 0.95 * loaded["memory_bytes"]
    assert client.get("/v1/model").json()["memory_bytes"] == 0
    again = client.post("/v1/embed/image", json={"images": IMAGES[:1]})
    assert again.status_code == 503 and "POST /v1/model/load" in again.json()["detail"]
    client.post("/v1/model/load")
    assert np.abs(embed(client, "image", IMAGES[:3]) - images).max() < 1e-6


@pytest.mark.parametrize("kind", ["image", "text"])
def test_batched_answers_equal_unbatched(client: httpx.Client, kind: str) -> None:
    items = IMAGES if kind == "image" else TEXTS
    together = embed(client, kind, items)
    with ThreadPoolExecutor(len(items)) as pool:
        alone = np.concatenate(list(pool.map(lambda item: embed(client, kind, [item]), items)))
    assert np.abs(alone - together).max() < 1e-5
    metrics = client.get("/metrics").text
    batches = float(re.search(r"^mediamesh_batch_size_count (\S+)", metrics, re.M).group(1))
    assert float(re.search(r"^mediamesh_batch_size_sum (\S+)", metrics, re.M).group(1)) > batches


def test_a_bad_image_fails_only_its_own_request_in_a_shared_batch(client: httpx.Client) -> None:
    expected = embed(client, "image", IMAGES[:4])
    bodies = [[image] for image in IMAGES[:2]] + [[base64.b64encode(b"junk").decode()]] + [[i] for i in IMAGES[2:4]]
    with ThreadPoolExecutor(len(bodies)) as pool:
        answers = list(pool.map(lambda images: client.post("/v1/embed/image", json={"images": images}), bodies))
    assert [a.status_code for a in answers] == [200, 200, 415, 200, 200]
    got = np.array([a.json()["embeddings"][0] for a in answers if a.status_code == 200])
    assert np.abs(got - expected).max() < 1e-5


def test_zero_shot_matches_embeddings_and_caches_label_prompts(client: httpx.Client) -> None:
    before = cache_stats(client)
    answer = zero_shot(client, IMAGES[:2], LABELS)
    assert cache_stats(client)["misses"] == before["misses"] + 1
    for result in answer["results"]:
        assert sorted(s["label"] for s in result["scores"]) == sorted(LABELS)
        assert sum(s["score"] for s in result["scores"]) == pytest.approx(1.0)

    scale = client.get("/v1/model").json()["details"]["logit_scale"]
    images = embed(client, "image", IMAGES[:2])
    prompts = embed(client, "text", [f"a photo of a {label}." for label in LABELS])
    logits = scale * images @ prompts.T
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    got = np.array([[{s["label"]: s["score"] for s in r["scores"]}[lb] for lb in LABELS] for r in answer["results"]])
    assert np.abs(got - expected).max() < 1e-5

    assert zero_shot(client, IMAGES[:2], LABELS)["results"] == answer["results"]
    stats = cache_stats(client)
    assert stats["hits"] == before["hits"] + 1 and stats["misses"] == before["misses"] + 1
    assert 'mediamesh_clip_label_cache_lookups_total{result="hit"}' in client.get("/metrics").text


def test_prompt_ensembles_average_each_labels_prompt_embeddings(client: httpx.Client) -> None:
    templates = ["a photo of a {}.", "a drawing of a {}."]
    body = {"images": IMAGES[:1], "labels": LABELS, "templates": templates,
            "label_templates": {LABELS[0]: ["a close-up of a {}."]}}
    answer = client.post("/v1/zero-shot", json=body).json()["results"][0]["scores"]
    scale = client.get("/v1/model").json()["details"]["logit_scale"]
    image = embed(client, "image", IMAGES[:1])[0]
    prompts = []
    for label in LABELS:
        own = body["label_templates"].get(label, templates)
        mean = embed(client, "text", [t.replace("{}", label) for t in own]).mean(axis=0)
        prompts.append(mean / np.linalg.norm(mean))
    logits = scale * np.array(prompts) @ image
    expected = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    got = np.array([{s["label"]: s["score"] for s in answer}[label] for label in LABELS])
    assert np.abs(got - expected).max() < 1e-5
    bad = client.post("/v1/zero-shot", json={**body, "label_templates": {"nope": ["a {}"]}})
    assert bad.status_code == 422 and "not in labels" in bad.json()["detail"]


def test_label_cache_is_keyed_by_template_and_bounded(client: httpx.Client) -> None:
    client.post("/v1/model/unload")  # unload empties the cache: embeddings belong to the loaded weights
    client.post("/v1/model/load")
    start = cache_stats(client)
    assert start["size"] == 0

    def counted() -> tuple[int, int, int]:
        now = cache_stats(client)
        return now["hits"] - start["hits"], now["misses"] - start["misses"], now["size"]

    zero_shot(client, IMAGES[:1], LABELS)
    zero_shot(client, IMAGES[:1], LABELS, template="a drawing of a {}")
    assert counted() == (0, 2, 2)
    zero_shot(client, IMAGES[:1], ["x", "y"])  # capacity 2: the least recently used entry goes
    zero_shot(client, IMAGES[:1], LABELS, template="a drawing of a {}")
    assert counted() == (1, 3, 2)
    zero_shot(client, IMAGES[:1], LABELS)
    assert counted() == (1, 4, 2)


def ppm_b64() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "PPM")
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.mark.parametrize(
    ("path", "body", "status", "phrase"),
    [
        ("/v1/embed/image", {"images": [base64.b64encode(b"not an image").decode()]}, 415, "not an image"),
        ("/v1/embed/image", {"images": [IMAGES[0][:80]]}, 422, "truncated"),
        ("/v1/embed/image", {"images": [image_b64(0, (2000, 1000))]}, 413, "above the limit"),
        ("/v1/embed/image", {"images": [ppm_b64()]}, 415, "PPM"),
        ("/v1/embed/image", {"images": ["%%not base64%%"]}, 422, "not valid base64"),
        ("/v1/embed/image", {"images": IMAGES[:1] * 65}, 422, "at most 64"),
        ("/v1/embed/text", {"texts": []}, 422, "at least 1"),
        ("/v1/zero-shot", {"images": IMAGES[:1]}, 422, "Field required"),
        ("/v1/zero-shot", {"images": IMAGES[:1], "labels": ["cat"]}, 422, "at least 2"),
        ("/v1/zero-shot", {"images": IMAGES[:1], "labels": ["cat", " "]}, 422, "empty"),
        ("/v1/zero-shot", {"images": IMAGES[:1], "labels": ["cat", "cat"]}, 422, "duplicates"),
        ("/v1/zero-shot", {"images": IMAGES[:1], "labels": ["cat", "dog"], "template": "a photo"}, 422, "{}"),
        ("/v1/zero-shot", {"images": ["%%"], "labels": ["cat", "dog"]}, 422, "not valid base64"),
    ],
    ids=["not-an-image", "truncated", "decompression-bomb", "unsupported-format", "bad-base64", "too-many-images",
         "no-texts", "no-labels", "one-label", "empty-label", "duplicate-labels", "template-without-slot",
         "zero-shot-bad-image"],
)
def test_bad_input_gets_a_clear_4xx(client: httpx.Client, path: str, body: dict, status: int, phrase: str) -> None:
    answer = client.post(path, json=body)
    assert answer.status_code == status, answer.text
    assert phrase in json.dumps(answer.json()["detail"])
    assert embed(client, "image", IMAGES[:1]).shape == (1, 512)  # and the service keeps serving


def test_same_loading_code_reads_a_real_style_folder(tiny_model, tmp_path: Path) -> None:
    """openai/clip-vit-base-patch32 ships preprocessor_config.json and tokenizer files, not processor_config.json."""
    import shutil

    from services.clip.model import ClipModel
    from services.clip.settings import ClipSettings

    source = tiny_model("clip")
    folder = tmp_path / "hub-layout"
    shutil.copytree(source, folder)
    processor = json.loads((folder / "processor_config.json").read_text())["image_processor"]
    processor["image_processor_type"] = "CLIPImageProcessor"
    (folder / "preprocessor_config.json").write_text(json.dumps(processor))
    (folder / "processor_config.json").unlink()
    model = ClipModel(ClipSettings(model_path=folder))
    model.load()
    reference = ClipModel(ClipSettings(model_path=source))
    reference.load()
    image = Image.new("RGB", (70, 50), (30, 120, 200))
    assert np.abs(model.embed_images(model.preprocess([image]))[0]
                  - reference.embed_images(reference.preprocess([image]))[0]).max() < 1e-6


@pytest.mark.gpu
def test_cuda_embeddings_match_cpu(tiny_model) -> None:
    from services.clip.model import ClipModel
    from services.clip.settings import ClipSettings

    image = Image.new("RGB", (70, 50), (30, 120, 200))
    vectors = []
    for device in ("cpu", "cuda"):
        model = ClipModel(ClipSettings(model_path=tiny_model("clip"), device=device, dtype="float32"))
        model.load()
        vectors.append((model.embed_images(model.preprocess([image]))[0], model.embed_texts(["a cat"])[0]))
        model.unload()
    for cpu, cuda in zip(*vectors, strict=True):
        assert np.abs(cpu - cuda).max() < 1e-3
