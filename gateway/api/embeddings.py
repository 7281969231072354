"""OpenAI's `POST /v1/embeddings` on CLIP: texts, and images given as data URLs or base64 in `input`.

Multimodal embedding servers take images this way: an item of `input` that is a `data:image/…`
URL, or a base64 string whose bytes start with an image signature, is embedded as an image; any
other string as text. Both land in CLIP's one space, so a text and an image compare directly.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from gateway.dispatch.dispatcher import ServiceDispatcher
from shared.http.errors import BadInput

MAX_INPUTS, MAX_IMAGES = 256, 64  # the clip service's own limits per call
IMAGE_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"II*\x00", b"MM\x00*")
BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")


class EmbeddingsRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # `user` and other options are accepted

    model: str
    input: str | list[str] | list[int] | list[list[int]] = Field(
        description="Text, or a list of texts and images (data:image/… URLs or base64 image files)."
    )
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingUsage(BaseModel):
    prompt_tokens: int = Field(default=0, description="0: CLIP's tokenizer runs in the service, which does not count.")
    total_tokens: int = 0


class EmbeddingsResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage = Field(default_factory=EmbeddingUsage)


def is_image(item: str) -> bool:
    if item.startswith("data:"):
        media_type = item[5:item.find(",")].split(";")[0] if "," in item[:200] else ""
        if not media_type.startswith("image/") or ";base64," not in item[:200]:
            raise BadInput(f"a data URL of type '{media_type or 'unknown'}' cannot be embedded; send images as "
                           "data:image/<type>;base64,<data>, and text as plain strings")
        return True
    if len(item) < 64 or not BASE64.fullmatch(item[:64]):
        return False
    try:
        head = base64.b64decode(item[:64], validate=True)
    except (binascii.Error, ValueError):
        return False
    return head.startswith(IMAGE_SIGNATURES) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def inputs_of(body: EmbeddingsRequest) -> list[str]:
    items = [body.input] if isinstance(body.input, str) else body.input
    if not items:
        raise BadInput("input is empty; send a string or a list of strings")
    if not all(isinstance(item, str) for item in items):
        raise BadInput("token arrays are not supported; send the text itself (CLIP tokenizes it)")
    if len(items) > MAX_INPUTS:
        raise BadInput(f"input has {len(items)} items; send at most {MAX_INPUTS} per request")
    if any(not item for item in items):
        raise BadInput("input contains an empty string; every item needs text or an image")
    return [str(item) for item in items]


async def embed(dispatcher: ServiceDispatcher, service: str, body: EmbeddingsRequest) -> EmbeddingsResponse:
    items = inputs_of(body)
    kinds = [is_image(item) for item in items]
    images = [i for i, image in enumerate(kinds) if image]
    texts = [i for i, image in enumerate(kinds) if not image]
    if len(images) > MAX_IMAGES:
        raise BadInput(f"input has {len(images)} images; send at most {MAX_IMAGES} per request")
    vectors: dict[int, list[float]] = {}
    for path, key, indices in (("v1/embed/text", "texts", texts), ("v1/embed/image", "images", images)):
        if indices:
            answer = await dispatcher.post_json(service, path, {key: [items[i] for i in indices]})
            vectors.update(zip(indices, answer["embeddings"], strict=True))  # type: ignore[call-overload]
    dim = len(vectors[0])
    if body.dimensions is not None and body.dimensions != dim:
        raise BadInput(f"this model's embeddings have {dim} dimensions and cannot be shortened; "
                       f"leave out `dimensions` or set it to {dim}")
    data = [Embedding(index=i, embedding=_encoded(vectors[i], body.encoding_format)) for i in range(len(items))]
    return EmbeddingsResponse(data=data, model=body.model)


def _encoded(vector: list[float], encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":  # what the openai client asks for by default: float32, little-endian
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
    return vector
