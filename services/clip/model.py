"""The clip service's model: `CLIPModel` + its processor; L2-normalised image and text embeddings.

transformers is imported with the module (at process start), not in `load`, so that a load's
seconds are the weights' and not the library's.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from PIL import Image
from transformers import CLIPModel, CLIPProcessor

from services.clip.label_cache import LabelEmbeddingCache, LabelKey
from services.clip.settings import ClipSettings
from shared.heads import HeadStore
from shared.http.errors import ServiceError
from shared.imaging import decode_image_base64
from shared.kit.served_model import ServedModel
from shared.schemas.heads import EmbeddingSpace


class ImagePayload(NamedTuple):
    name: str  # how error messages call it, e.g. images[3]
    data: str  # base64


class ClipModel(ServedModel):
    """Loads a CLIP folder (the tiny one, or `openai/clip-vit-base-patch32`) with `from_pretrained`."""

    settings: ClipSettings

    def __init__(self, settings: ClipSettings) -> None:
        super().__init__(settings)
        self.model: Any = None
        self.processor: Any = None
        self.logit_scale = 100.0
        self.label_cache = LabelEmbeddingCache(settings.label_cache_size)
        self.weights_sha256: str | None = None
        self.heads = HeadStore(settings.resolved_heads_dir())

    def load(self) -> None:
        if self.device.type == "cpu":
            torch.set_flush_denormal(True)
        model: Any = CLIPModel.from_pretrained(self.path, dtype=self.dtype)
        model = model.to(self.device).eval()
        self.processor = CLIPProcessor.from_pretrained(self.path)
        self.logit_scale = float(model.logit_scale.detach().exp().clamp(max=100).item())
        self.model = model
        self.label_cache.clear()
        if self.weights_sha256 is None:  # the files do not change while the service runs: hashed once
            self.weights_sha256 = weights_digest(self.weight_files())

    def unload(self) -> None:
        self.model = self.processor = None
        self.label_cache.clear()

    def modules(self) -> list[torch.nn.Module]:
        return [self.model] if self.model is not None else []

    @property
    def dim(self) -> int:
        return int(self._loaded().config.projection_dim)

    def space(self) -> EmbeddingSpace:
        """What its vectors are: trained heads are only applied to vectors of the space they learnt."""
        return EmbeddingSpace(model=self.identity(), dim=self.dim, weights_sha256=self.weights_sha256)

    def describe(self) -> dict[str, Any]:
        model = self._loaded()
        return {"embedding_dim": self.dim, "weights_sha256": self.weights_sha256,
                "image_size": model.config.vision_config.image_size,
                "max_text_tokens": model.config.text_config.max_position_embeddings,
                "logit_scale": self.logit_scale, "label_cache": self.label_cache.stats(),
                "max_batch_size": self.settings.max_batch_size}

    def _loaded(self) -> Any:
        if self.model is None:
            raise RuntimeError("model is not loaded")
        return self.model

    def preprocess(self, images: list[Image.Image]) -> list[np.ndarray]:
        """Each image → its own CHW pixel array (resize, crop, normalise), ready to be batched."""
        pixels = self.processor.image_processor(images=images, return_tensors="np")["pixel_values"]
        return [np.asarray(p, dtype=np.float32) for p in pixels]

    def pixels(self, payload: ImagePayload) -> np.ndarray:
        """One image's base64 → its CHW pixel array (decode, resize, crop, normalise)."""
        image = decode_image_base64(payload.data, max_pixels=self.settings.max_image_pixels, name=payload.name)
        return self.preprocess([image])[0]

    def embed_payloads(self, payloads: list[ImagePayload]) -> list[np.ndarray | ServiceError]:
        """Decode, preprocess and embed one batch; a bad image fails only its own request.

        Decoding here, on the inference thread, rather than before the batcher, keeps the decoding
        off the cores torch's threads run on while a batch runs.
        """
        arrays: list[np.ndarray] = []
        results: list[np.ndarray | ServiceError | None] = []
        for payload in payloads:
            try:
                arrays.append(self.pixels(payload))
                results.append(None)
            except ServiceError as exc:
                results.append(exc)
        embedded = iter(self.embed_images(arrays) if arrays else [])
        return [next(embedded) if result is None else result for result in results]

    def embed_images(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        model = self._loaded()
        with torch.inference_mode():
            pixels = torch.from_numpy(np.stack(arrays)).to(self.device, self.dtype)
            return _normalised(model.get_image_features(pixel_values=pixels).pooler_output)

    def label_embeddings(self, key: LabelKey) -> np.ndarray:
        """Per label, the normalised mean of its prompts' text embeddings (a prompt ensemble, as in
        CLIP's ImageNet evaluation); from the LRU cache when these labels and templates were seen before."""
        cached = self.label_cache.get(key)
        if cached is not None:
            return cached
        labels, templates = key
        texts = [t.replace("{}", label) for label, ts in zip(labels, templates, strict=True) for t in ts]
        vectors = iter(self.embed_texts(texts))
        means = [np.mean([next(vectors) for _ in ts], axis=0) for ts in templates]
        embeddings = np.stack([m / max(float(np.linalg.norm(m)), 1e-12) for m in means])
        self.label_cache.put(key, embeddings)
        return embeddings

    def embed_texts(self, texts: list[str]) -> list[np.ndarray]:
        model = self._loaded()
        tokens = self.processor.tokenizer(
            texts, padding=True, truncation=True, max_length=model.config.text_config.max_position_embeddings,
            return_tensors="pt",
        ).to(self.device)
        with torch.inference_mode():
            output = model.get_text_features(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
            return _normalised(output.pooler_output)


def weights_digest(files: list[Path]) -> str:
    """SHA-256 over the weight files, in name order: vectors of different weights never share a space."""
    digest = hashlib.sha256()
    for path in sorted(files, key=lambda p: p.name):
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def _normalised(features: torch.Tensor) -> list[np.ndarray]:
    features = torch.nn.functional.normalize(features.float(), dim=-1)
    return list(features.cpu().numpy())
