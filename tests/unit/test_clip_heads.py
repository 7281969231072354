"""The linear probe of `mediamesh train-head`, the heads folder (versions, atomic writes) and the
embedding-space checks, without processes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from mediamesh.cli.train_head import TrainingRefused, check_folder, media_pairs, name_refused_image, one_space
from mediamesh.head_report import REPORT_FILES, write_report
from mediamesh.probe import evaluate, fit_probe, predict, stratified_split
from shared.cascade.config import CascadeVariant, StageConfig
from shared.client import GatewayError
from shared.heads import HeadStore
from shared.http.errors import BadInput, Conflict, NotFound
from shared.schemas.heads import EmbeddingSpace, HeadInfo, HeadMetrics
from tests.support.shapes import shape_folder

SPACE = EmbeddingSpace(model="tiny-random/clip", dim=4, weights_sha256="ab" * 32)


def info(name: str = "shapes", labels: tuple[str, ...] = ("a", "b")) -> HeadInfo:
    truth = np.array([0, 1, 1])
    evaluation = evaluate(list(labels), truth, np.array([0, 1, 0]))
    metrics = HeadMetrics(head=evaluation, zero_shot=evaluation, zero_shot_template="a photo of a {}.",
                          train_images={label: 5 for label in labels}, test_images={"a": 1, "b": 2})
    return HeadInfo(name=name, version=1, labels=list(labels), space=SPACE, created_at=datetime.now(UTC),
                    metrics=metrics, training={"seed": 0, "holdout": 0.25})


def test_split_keeps_every_label_on_both_sides_and_follows_the_seed() -> None:
    targets = np.array([0] * 5 + [1] * 20 + [2] * 2)
    split = stratified_split(targets, 0.25, seed=3)
    assert sorted([*split.train, *split.test]) == list(range(len(targets)))
    assert {int(targets[i]) for i in split.test} == {0, 1, 2} == {int(targets[i]) for i in split.train}
    assert np.bincount(targets[split.test]).tolist() == [1, 5, 1]
    assert stratified_split(targets, 0.25, seed=3).test.tolist() == split.test.tolist()
    assert stratified_split(targets, 0.25, seed=4).test.tolist() != split.test.tolist()


@pytest.mark.parametrize("labels", [2, 3])
def test_probe_is_one_linear_layer_with_sklearns_probabilities(labels: int) -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(labels, 8))
    targets = np.repeat(np.arange(labels), [30, 6, 12][:labels])  # imbalanced
    x = centres[targets] + rng.normal(scale=0.8, size=(len(targets), 8))
    weights, bias = fit_probe(x, targets, labels, c=1.0, seed=0)
    assert weights.shape == (labels, 8) and bias.shape == (labels,)
    logits = x @ weights.T + bias
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    mean, std = x.mean(axis=0), x.std(axis=0)
    reference = LogisticRegression(C=1.0, class_weight="balanced", max_iter=5000, random_state=0)
    reference.fit((x - mean) / std, targets)
    assert probs == pytest.approx(reference.predict_proba((x - mean) / std), abs=1e-6)
    assert (predict(weights, bias, x) == targets).mean() > 0.8


def test_evaluation_counts_per_class_and_the_confusion_matrix() -> None:
    result = evaluate(["cat", "dog", "cow"], np.array([0, 0, 1, 1, 2]), np.array([0, 1, 1, 1, 1]))
    assert result.accuracy == pytest.approx(0.6)
    assert result.confusion == [[1, 1, 0], [0, 2, 0], [0, 1, 0]]
    assert result.per_class["dog"].precision == pytest.approx(0.5) and result.per_class["dog"].recall == 1
    assert result.per_class["cow"].f1 == 0 and result.per_class["cow"].support == 1


def test_folder_checks_name_what_is_wrong(tmp_path: Path) -> None:
    shape_folder(tmp_path, {"red_circle": 6, "blue_square": 3})
    images = [(d.name, f) for d in sorted(tmp_path.iterdir()) for f in sorted(d.iterdir())]
    with pytest.raises(TrainingRefused, match=r"fewer than 5 images.*'blue_square': 3"):
        check_folder(images, 5)
    assert check_folder(images, 3) == ["blue_square", "red_circle"]
    with pytest.raises(TrainingRefused, match=r"at least 2 labels.*\['red_circle'\]"):
        check_folder([i for i in images if i[0] == "red_circle"], 3)
    (tmp_path / "red_circle" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(TrainingRefused, match=r"(?s)1 image\(s\) cannot be read.*red_circle/broken.png is not an"):
        check_folder([*images, ("red_circle", tmp_path / "red_circle" / "broken.png")], 3)


def test_answers_from_two_embedding_spaces_are_refused() -> None:
    other = EmbeddingSpace(model="openai/clip-vit-large-patch14", dim=768)
    assert one_space([(SPACE, "images 1-16"), (SPACE, "images 17-20")]) == SPACE
    with pytest.raises(TrainingRefused, match=r"more than one embedding space.*clip-vit-large-patch14 \(768-d\) "
                                              r"for images 17-20"):
        one_space([(SPACE, "images 1-16"), (other, "images 17-20")])
    unhashed = EmbeddingSpace(model=SPACE.model, dim=SPACE.dim)  # zero-shot answers carry no weights hash
    assert SPACE.same(unhashed) and not SPACE.same(SPACE.model_copy(update={"weights_sha256": "cd" * 32}))


def test_store_versions_heads_and_serves_name_or_name_at_version(tmp_path: Path) -> None:
    store = HeadStore(tmp_path / "heads")
    with pytest.raises(NotFound, match="no head named 'shapes'.*heads: none yet.*mediamesh train-head"):
        store.load("shapes")
    first = store.write(info(), np.ones((2, 4)), np.zeros(2), extras=write_report)
    second = store.write(info(), 2 * np.ones((2, 4)), np.zeros(2))
    assert (first.ref, second.ref) == ("shapes@1", "shapes@2")
    assert store.load("shapes").weights[0, 0] == 2 and store.load("shapes@1").weights[0, 0] == 1
    assert all((tmp_path / "heads" / "shapes" / "1" / name).is_file() for name in REPORT_FILES)
    assert [h.ref for h in store.list()] == ["shapes@2", "shapes@1"]
    with pytest.raises(NotFound, match=r"no version '7'; versions: \[1, 2\]"):
        store.load("shapes@7")
    with pytest.raises(BadInput, match="head name '../etc'"):
        store.load("../etc")


def test_a_failed_write_leaves_no_half_written_head(tmp_path: Path) -> None:
    store = HeadStore(tmp_path)

    def broken_report(folder: Path, head: HeadInfo) -> None:
        (folder / "report.md").write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        store.write(info(), np.ones((2, 4)), np.zeros(2), extras=broken_report)
    assert store.versions("shapes") == [] and list((tmp_path / "shapes").iterdir()) == []
    with pytest.raises(ValueError, match="do not fit 2 labels of 4-d"):
        store.write(info(), np.ones((3, 4)), np.zeros(3))


def test_a_head_refuses_vectors_of_another_space(tmp_path: Path) -> None:
    store = HeadStore(tmp_path)
    store.write(info(), np.eye(2, 4), np.zeros(2))
    head = store.load("shapes")
    head.check_space(SPACE)
    with pytest.raises(Conflict, match=r"trained on tiny-random/clip \(4-d.*embeds with openai/x \(4-d\)"):
        head.check_space(EmbeddingSpace(model="openai/x", dim=4))
    probs = head.probabilities(np.array([[1.0, 0, 0, 0]]))
    assert probs[0] == pytest.approx([np.e / (np.e + 1), 1 / (np.e + 1)])


def test_clip_head_stage_config() -> None:
    with pytest.raises(ValueError, match="clip_head stage needs `head`"):
        StageConfig(kind="clip_head", service="clip")
    variant = CascadeVariant(stages=[StageConfig(kind="clip_head", service="clip", head="shapes@2")])
    assert variant.stages[0].head == "shapes@2"
    with pytest.raises(ValueError, match="first stage must be a cnn or a clip_head"):
        CascadeVariant(stages=[StageConfig(kind="clip", service="clip")])


def test_media_labels_from_options_and_a_csv(tmp_path: Path) -> None:
    listing = tmp_path / "labels.csv"
    listing.write_text("media_id,label\n# a comment\nm2, pit\nm3,clean\n")
    assert media_pairs(["m1=clean", "m2=pit"], listing) == [("m1", "clean"), ("m2", "pit"), ("m3", "clean")]
    with pytest.raises(TrainingRefused, match="media m1 is labelled both 'clean' and 'pit'"):
        media_pairs(["m1=clean", "m1=pit"], None)
    for bad in ("m1", "m1=", "../x=pit", "m1=a/b"):
        with pytest.raises(TrainingRefused, match="is not `MEDIA_ID=LABEL`"):
            media_pairs([bad], None)
    listing.write_text("m1,pit,extra\n")
    with pytest.raises(TrainingRefused, match="'m1,pit,extra' is not"):
        media_pairs([], listing)


def test_a_damaged_head_is_refused_with_what_to_do_and_left_out_of_the_list(tmp_path: Path) -> None:
    store = HeadStore(tmp_path)
    store.write(info(), np.eye(2, 4), np.zeros(2))
    store.write(info(), np.eye(2, 4), np.zeros(2))
    (tmp_path / "shapes" / "2" / "weights.npz").write_bytes(b"not an npz")
    with pytest.raises(Conflict, match=r"head shapes@2's weights are damaged .*train it again"):
        store.load("shapes")
    (tmp_path / "shapes" / "2" / "head.json").write_text("{}")
    with pytest.raises(Conflict, match=r"head shapes@2 is damaged \(ValidationError\); delete its folder"):
        store.load("shapes@2")
    assert [h.ref for h in store.list()] == ["shapes@1"]


def test_an_image_the_clip_service_refuses_is_named_by_its_file() -> None:
    chunk = [Path("/data/pit/a.jpg"), Path("/data/clean/b.jpg")]
    too_big = GatewayError(413, "clip: images[1] is 9000x9000 = 81,000,000 pixels, above the limit")
    refused = name_refused_image(too_big, chunk)
    assert isinstance(refused, TrainingRefused)
    assert str(refused) == "the clip service refused an image: clip: clean/b.jpg is 9000x9000 = 81,000,000 pixels, " \
                           "above the limit"
    busy = GatewayError(503, "clip is loading")
    assert name_refused_image(busy, chunk) is busy
