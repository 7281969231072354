"""What the blip2 routes compute around the model: colours, orientation, objects, cluster names."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
from PIL import Image

from services.blip2.model import Generated, geometric_mean
from shared.schemas.blip2 import DetectedObject

CAPTION_PROMPT = None  # BLIP-2 OPT captions best from the image alone
SCENE_PROMPT = "Question: Was this photo taken indoors or outdoors? Answer:"
SCENE_OPTIONS = ["indoors", "outdoors"]
OBJECTS_PROMPT = "Question: Which objects are in this picture? Answer:"
CATEGORY_PROMPT = "Question: Which category does this picture belong to? Answer:"
CATEGORIES = ["animals", "people", "food", "nature", "city", "vehicles", "buildings", "objects", "documents", "art"]
STOPWORDS = frozenset(
    "a an the of on in at to and or with is are was were it its this that there their his her for from by as be "
    "some two three picture photo image close up view".split()
)
_SEPARATORS = re.compile(r",|;|\band\b|\n")
_WORD = re.compile(r"[a-z][a-z'-]+")


def dominant_colors(image: Image.Image, count: int) -> list[str]:
    """The `count` most frequent colours after median-cut quantisation, as #rrggbb."""
    small = image.convert("RGB")
    small.thumbnail((128, 128))
    quantized = small.quantize(colors=count, method=Image.Quantize.MEDIANCUT)
    palette = np.array((quantized.getpalette() or [])[: 3 * count], dtype=np.uint8).reshape(-1, 3)
    counts: list[tuple[int, int]] = sorted(quantized.getcolors() or [], reverse=True)  # type: ignore[arg-type]
    return ["#{:02x}{:02x}{:02x}".format(*palette[index]) for _, index in counts]


def orientation(image: Image.Image, tolerance: float = 0.05) -> str:
    ratio = image.width / image.height
    if abs(ratio - 1) <= tolerance:
        return "square"
    return "landscape" if ratio > 1 else "portrait"


def objects_from_answer(answer: Generated, limit: int) -> list[DetectedObject]:
    """Split a listed answer ("a cat, a table and a lamp") into objects; confidence = its tokens' probability."""
    found: dict[str, list[float]] = {}
    text, probs = "", list[float]()
    for token, prob in [*zip(answer.tokens, answer.token_probs, strict=True), (",", 1.0)]:
        parts = _SEPARATORS.split(token)
        text, probs = text + parts[0], probs + [prob]
        for part in parts[1:]:  # each separator closes the object being read
            name = _object_name(text)
            if name and name not in found:
                found[name] = probs
            text, probs = part, [prob] if part.strip() else []
    objects = [DetectedObject(name=n, confidence=round(geometric_mean(p), 4)) for n, p in found.items()]
    return objects[:limit]


def _object_name(text: str) -> str:
    words = [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS]
    return " ".join(words[:3])


def content_words(texts: list[str]) -> Counter[str]:
    """Words that say something (no stopwords), each counted once per text; ties keep first-seen order."""
    counter: Counter[str] = Counter()
    for text in texts:
        counter.update(list(dict.fromkeys(w for w in _WORD.findall(text.lower()) if w not in STOPWORDS)))
    return counter


def cluster_label(captions: list[str], subjects: list[str], category: str) -> tuple[str, str, list[str]]:
    """(name, description, tags) from the images' captions and main-subject answers."""
    words = content_words(captions + subjects)
    tags = [w for w, _ in words.most_common(8)]
    subject_counts = Counter(s.strip().lower() for s in subjects if _object_name(s))
    if subject_counts:
        name = _object_name(subject_counts.most_common(1)[0][0]).title()
    elif tags:
        name = " ".join(tags[:2]).title()
    else:
        name = category.title()
    representative = max(captions, key=lambda c: sum(words[w] for w in content_words([c])), default="")
    description = representative or f"Images of {category}"
    if category not in tags:
        tags.append(category)
    return name, description, tags
