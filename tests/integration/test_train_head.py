"""`mediamesh train-head` through a real gateway and clip service (tiny random CLIP): the head beats
zero-shot on coloured shapes, is saved as a versioned artifact, served by the clip service
(`POST /v1/classify` with `head`), listed by the gateway (`GET /v1/heads`) and usable as a cascade
stage; bad folders and heads of another embedding space are refused with what is wrong."""

from __future__ import annotations

import io
import json
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from mediamesh.cli.main import app
from shared.imaging import encode_image_base64
from tests.support.processes import ServiceProcess
from tests.support.shapes import SHAPES, draw, shape_folder
from tests.support.storage_env import fresh_database, shared_redis_url

LABELS = sorted(SHAPES)


@pytest.fixture(scope="module")
def heads_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("heads")


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, tiny_model: Callable[[str], Path],
            heads_dir: Path) -> Iterator[ServiceProcess]:
    logs = tmp_path_factory.mktemp("train-head")
    clip_env = {"CLIP_MODEL_PATH": str(tiny_model("clip")), "CLIP_DEVICE": "cpu", "CLIP_HEADS_DIR": str(heads_dir)}
    with ServiceProcess("services.clip.app:create_app", clip_env, logs / "clip.log") as clip:
        # storage on, for training from stored media ids (no worker: the ingest jobs just wait in their queue)
        env = {"DATABASE_URL": fresh_database(), "REDIS_URL": shared_redis_url(),
               "MEDIAMESH_QUEUE": f"heads:{uuid.uuid4().hex[:10]}", "MEDIAMESH_HOME": str(logs / "home"),
               "GATEWAY_SERVICES": json.dumps({"clip": {"url": clip.url, "kind": "clip"},
                                               "cnn": {"url": "http://127.0.0.1:9", "kind": "cnn"}})}  # down
        with ServiceProcess("gateway.app:create_app", env, logs / "gateway.log") as proc:
            yield proc


@pytest.fixture(scope="module")
def trained(gateway: ServiceProcess, heads_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One `train-head` run on 3 labels × 12 shapes; its console output and saved head.json."""
    folder = shape_folder(tmp_path_factory.mktemp("data") / "shapes", dict.fromkeys(LABELS, 12))
    result = train(gateway, heads_dir, folder)
    assert result.exit_code == 0, result.output
    return {"output": " ".join(result.output.split()),
            "info": json.loads((heads_dir / "shapes" / "1" / "head.json").read_text())}


def train(gateway: ServiceProcess, heads_dir: Path, folder: Path, *args: str):  # noqa: ANN201 (click's Result)
    return CliRunner().invoke(app, ["train-head", str(folder), "--url", gateway.url, "--heads-dir", str(heads_dir),
                                    *args], terminal_width=200)


def fresh_images() -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(99)
    truth = [label for label in LABELS for _ in range(2)]
    return [encode_image_base64(draw(*SHAPES[label], rng)) for label in truth], truth


def test_the_head_beats_zero_shot_on_the_held_out_split(trained: dict, heads_dir: Path) -> None:
    metrics = trained["info"]["metrics"]
    head, zero_shot = metrics["head"], metrics["zero_shot"]
    assert head["macro_f1"] > zero_shot["macro_f1"] and head["accuracy"] > zero_shot["accuracy"]
    assert metrics["test_images"] == dict.fromkeys(LABELS, 3) and metrics["train_images"] == dict.fromkeys(LABELS, 9)
    assert sum(map(sum, head["confusion"])) == sum(map(sum, zero_shot["confusion"])) == 9
    assert trained["info"]["space"]["model"] == "tiny-random/clip" and trained["info"]["space"]["dim"] == 512
    assert f"head: accuracy {head['accuracy']:.3f}" in trained["output"]
    assert f"zero-shot CLIP: accuracy {zero_shot['accuracy']:.3f}" in trained["output"]
    assert "saved shapes@1 (tiny-random/clip (512-d" in trained["output"]
    folder = heads_dir / "shapes" / "1"
    assert sorted(p.name for p in folder.iterdir()) == [
        "confusion.png", "head.json", "report.json", "report.md", "weights.npz"]
    assert Image.open(folder / "confusion.png").format == "PNG"
    report = (folder / "report.md").read_text()
    assert "| red_circle | 9 | 3 |" in report and f"| {head['macro_f1']:.3f} |" in report


def test_the_clip_service_serves_the_head_it_saved(gateway: ServiceProcess, trained: dict, heads_dir: Path) -> None:
    images, _ = fresh_images()
    with httpx.Client(base_url=gateway.url, timeout=120) as gw:
        answer = gw.post("/v1/services/clip/v1/classify", json={"images": images, "head": "shapes"})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        vectors = np.array(gw.post("/v1/services/clip/v1/embed/image", json={"images": images}).json()["embeddings"])
    assert body["head"] == "shapes@1" and body["labels"] == LABELS and body["model"] == "tiny-random/clip"
    with np.load(heads_dir / "shapes" / "1" / "weights.npz") as weights:
        logits = vectors @ weights["W"].T.astype(np.float64) + weights["b"]
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    for row, result in zip(expected, body["results"], strict=True):
        scores = {s["label"]: s["score"] for s in result["scores"]}
        assert scores == pytest.approx(dict(zip(LABELS, row, strict=True)), abs=1e-5)
        assert [s["score"] for s in result["scores"]] == sorted((s["score"] for s in result["scores"]), reverse=True)


def test_heads_are_versioned_and_listed_by_the_gateway(gateway: ServiceProcess, trained: dict,
                                                       heads_dir: Path, tmp_path: Path) -> None:
    folder = shape_folder(tmp_path / "shapes", {"red_circle": 6, "blue_square": 6}, seed=5)
    second = train(gateway, heads_dir, folder, "--name", "shapes", "--holdout", "0.34")
    assert second.exit_code == 0, second.output
    images, _ = fresh_images()
    with httpx.Client(base_url=gateway.url, timeout=120) as gw:
        newest = gw.post("/v1/services/clip/v1/classify", json={"images": images[:1], "head": "shapes"}).json()
        pinned = gw.post("/v1/services/clip/v1/classify", json={"images": images[:1], "head": "shapes@1"}).json()
        listed = gw.get("/v1/heads")
        not_clip, unknown = gw.get("/v1/heads", params={"service": "cnn"}), gw.get("/v1/heads?service=nope")
    assert not_clip.status_code == 422 and "heads live on a clip service: clip" in not_clip.json()["detail"]
    assert unknown.status_code == 404 and "unknown service 'nope'" in unknown.json()["detail"]
    assert (newest["head"], newest["labels"]) == ("shapes@2", ["blue_square", "red_circle"])
    assert (pinned["head"], pinned["labels"]) == ("shapes@1", LABELS)
    assert listed.status_code == 200, listed.text
    heads = {f"{h['name']}@{h['version']}": h for h in listed.json()["heads"]}
    assert list(heads)[:2] == ["shapes@2", "shapes@1"] and listed.json()["service_model"] == "tiny-random/clip"
    assert heads["shapes@1"]["metrics"] == trained["info"]["metrics"]
    assert heads["shapes@2"]["metrics"]["test_images"] == {"blue_square": 2, "red_circle": 2}


def test_unknown_heads_and_heads_of_another_space_are_refused(gateway: ServiceProcess, trained: dict,
                                                              heads_dir: Path) -> None:
    foreign = heads_dir / "foreign" / "1"
    shutil.copytree(heads_dir / "shapes" / "1", foreign)
    info = json.loads((foreign / "head.json").read_text())
    info.update(name="foreign", space={"model": "openai/clip-vit-large-patch14", "dim": 768})
    (foreign / "head.json").write_text(json.dumps(info))
    images, _ = fresh_images()
    with httpx.Client(base_url=gateway.url, timeout=120) as gw:
        unknown = gw.post("/v1/services/clip/v1/classify", json={"images": images[:1], "head": "nope"})
        no_version = gw.post("/v1/services/clip/v1/classify", json={"images": images[:1], "head": "shapes@9"})
        other_space = gw.post("/v1/services/clip/v1/classify", json={"images": images[:1], "head": "foreign"})
    assert unknown.status_code == 404 and "no head named 'nope'" in unknown.json()["detail"]
    assert "foreign" in unknown.json()["detail"] and "shapes" in unknown.json()["detail"]
    assert no_version.status_code == 404 and "has no version '9'" in no_version.json()["detail"]
    assert other_space.status_code == 409
    assert "trained on openai/clip-vit-large-patch14 (768-d)" in other_space.json()["detail"]
    assert "embeds with tiny-random/clip (512-d" in other_space.json()["detail"]


def test_a_clip_head_cascade_stage_through_the_gateway(gateway: ServiceProcess, trained: dict) -> None:
    images, truth = fresh_images()
    with httpx.Client(base_url=gateway.url, timeout=120) as gw:
        config = {"variants": {"a": {"stages": [{"kind": "clip_head", "service": "clip", "head": "shapes@1",
                                                 "escalate": {"threshold": 0.5}}]}}}
        assert gw.put("/v1/cascade/config", json=config).status_code == 200
        no_head = {"variants": {"a": {"stages": [{"kind": "clip_head", "service": "clip"}]}}}
        refused = gw.put("/v1/cascade/config", json=no_head)
        direct = gw.post("/v1/services/clip/v1/classify", json={"images": images, "head": "shapes@1"}).json()
        answers = [gw.post("/v1/classify", json={"image": image}) for image in images]
        config["variants"]["a"]["stages"][0]["head"] = "gone"
        assert gw.put("/v1/cascade/config", json=config).status_code == 200
        gone = gw.post("/v1/classify", json={"image": images[0]})
    assert refused.status_code == 422 and "needs `head`" in refused.text
    assert gone.status_code == 404 and "no head named 'gone'" in gone.json()["detail"]
    for answer, result in zip(answers, direct["results"], strict=True):
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert [(s["stage"], s["status"]) for s in body["trace"]["stages"]] == [("clip_head", "ok")]
        assert body["label"] == result["scores"][0]["label"] and body["label"] in LABELS
        assert body["confidence"] == pytest.approx(result["scores"][0]["score"], abs=1e-5)


def test_bad_training_folders_leave_no_head(gateway: ServiceProcess, heads_dir: Path, tmp_path: Path) -> None:
    one_label = shape_folder(tmp_path / "one", {"red_circle": 6})
    few = shape_folder(tmp_path / "few", {"red_circle": 6, "blue_square": 3})
    broken = shape_folder(tmp_path / "broken", {"red_circle": 5, "blue_square": 5})
    (broken / "blue_square" / "cut.png").write_bytes((broken / "blue_square" / "000.png").read_bytes()[:60])
    cases = {one_label: ["at least 2 labels", "['red_circle']"], few: ["fewer than 5 images", "{'blue_square': 3}"],
             broken: ["1 image(s) cannot be read", "blue_square/cut.png"]}
    for folder, messages in cases.items():
        result = train(gateway, heads_dir, folder, "--name", "bad")
        output = " ".join(result.output.split())  # the error box wraps at 80 columns
        assert result.exit_code == 2 and all(m in output for m in messages), output
    assert train(gateway, heads_dir, few, "--name", "bad", "--min-images", "3").exit_code == 0
    assert sorted(p.name for p in (heads_dir / "bad").iterdir()) == ["1"]  # the one good run, nothing half-written
    unknown_service = train(gateway, heads_dir, few, "--name", "bad", "--min-images", "3", "--service", "nope")
    output = " ".join(unknown_service.output.split())
    assert unknown_service.exit_code == 2 and "unknown service 'nope'" in output and "nothing was saved" in output
    assert sorted(p.name for p in (heads_dir / "bad").iterdir()) == ["1"]


def test_stored_media_ids_train_beside_a_folder(gateway: ServiceProcess, heads_dir: Path, tmp_path: Path) -> None:
    folder = shape_folder(tmp_path / "folder", {"red_circle": 6})
    rng = np.random.default_rng(7)
    ids = []
    for n in range(6):
        png = io.BytesIO()
        draw(*SHAPES["blue_square"], rng).save(png, "PNG")
        stored = httpx.post(f"{gateway.url}/v1/media", files={"file": (f"b{n}.png", png.getvalue())}, timeout=60)
        assert stored.status_code == 202, stored.text
        ids.append(stored.json()["media_id"])
    listing = tmp_path / "labels.csv"
    listing.write_text("media_id,label\n" + "".join(f"{i},blue_square\n" for i in ids[1:]))
    result = train(gateway, heads_dir, folder, "--name", "mixed", "--media-csv", str(listing),
                   "--media-label", f"{ids[0]}=blue_square")
    assert result.exit_code == 0, result.output
    info = json.loads((heads_dir / "mixed" / "1" / "head.json").read_text())
    assert info["labels"] == ["blue_square", "red_circle"]
    assert info["metrics"]["train_images"] == {"blue_square": 4, "red_circle": 4}
    missing = train(gateway, heads_dir, folder, "--name", "mixed", "--media-label", "0123abcd=blue_square")
    assert missing.exit_code == 2 and "media 0123abcd (label 'blue_square')" in " ".join(missing.output.split())
    malformed = train(gateway, heads_dir, folder, "--name", "mixed", "--media-label", "blue_square")
    assert malformed.exit_code == 2 and "is not `MEDIA_ID=LABEL`" in " ".join(malformed.output.split())
    assert sorted(p.name for p in (heads_dir / "mixed").iterdir()) == ["1"]
