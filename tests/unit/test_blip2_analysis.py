"""Pure pieces of the blip2 service: colours and orientation from pixels, objects from an answer."""

from __future__ import annotations

from PIL import Image

from services.blip2 import analysis
from services.blip2.model import Generated


def test_dominant_colours_most_frequent_first() -> None:
    image = Image.new("RGB", (100, 100), (0, 0, 255))
    image.paste(Image.new("RGB", (100, 70), (255, 255, 0)), (0, 0))
    assert analysis.dominant_colors(image, 3) == ["#ffff00", "#0000ff"]


def test_orientation() -> None:
    assert analysis.orientation(Image.new("RGB", (300, 200))) == "landscape"
    assert analysis.orientation(Image.new("RGB", (200, 300))) == "portrait"
    assert analysis.orientation(Image.new("RGB", (200, 205))) == "square"


def test_objects_split_on_commas_and_and_with_token_probabilities() -> None:
    answer = Generated(
        text="a cat, a wooden table and a lamp",
        tokens=["a", " cat", ",", " a", " wooden", " table", " and", " a", " lamp"],
        token_probs=[0.5, 0.5, 1.0, 0.9, 0.9, 0.9, 0.9, 0.1, 0.1],
    )
    objects = analysis.objects_from_answer(answer, limit=5)
    assert [o.name for o in objects] == ["cat", "wooden table", "lamp"]
    assert objects[0].confidence == round((0.5 * 0.5 * 1.0) ** (1 / 3), 4)
    assert objects[2].confidence < objects[1].confidence
    assert len(analysis.objects_from_answer(answer, limit=2)) == 2


def test_cluster_label_prefers_the_common_subject() -> None:
    name, description, tags = analysis.cluster_label(
        ["a black cat on a table", "a black cat sleeping", "a dog on a sofa"], ["black cat", "black cat", "dog"],
        "animals",
    )
    assert name == "Black Cat"
    assert description == "a black cat on a table"
    assert tags[:2] == ["black", "cat"] and "animals" in tags
