"""BLIP-2 behind the service kit: load/unload, prompted generation and scoring of answer options."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from services.blip2.settings import Blip2Settings
from shared.kit.quantization import estimated_loaded_bytes, place, pretrained_kwargs
from shared.kit.served_model import ServedModel


@dataclass(frozen=True)
class Generated:
    text: str
    tokens: list[str]
    token_probs: list[float]


class Blip2Model(ServedModel):
    settings: Blip2Settings

    def __init__(self, settings: Blip2Settings) -> None:
        super().__init__(settings)
        self.model: Any = None
        self.processor: Any = None

    def load(self) -> None:
        from transformers import AutoProcessor, Blip2ForConditionalGeneration

        kwargs = pretrained_kwargs(self.settings, self.device, self.dtype)
        self.processor = AutoProcessor.from_pretrained(self.path)
        model = Blip2ForConditionalGeneration.from_pretrained(self.path, **kwargs)
        if self.processor.num_query_tokens is None:  # folders saved before transformers 4.47 lack it
            self.processor.num_query_tokens = model.config.num_query_tokens
        self.model = place(model, self.settings, self.device)

    def unload(self) -> None:
        self.model = self.processor = None

    def modules(self) -> list[torch.nn.Module]:
        return [self.model] if self.model is not None else []

    def estimate_bytes(self) -> int:
        return estimated_loaded_bytes(self.path, self.settings.quantization, self.dtype)

    def describe(self) -> dict[str, Any]:
        return {"num_query_tokens": self.processor.num_query_tokens, "max_new_tokens": self.settings.max_new_tokens,
                "max_batch_size": self.settings.max_batch_size}

    def _inputs(self, images: list[Image.Image], prompts: list[str] | None) -> Any:
        inputs = self.processor(images=images, text=prompts, return_tensors="pt", padding=prompts is not None)
        inputs = inputs.to(self.model.device)
        inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        return inputs

    def _chunks(self, images: list[Image.Image]) -> list[list[Image.Image]]:
        size = self.settings.max_batch_size
        return [images[i:i + size] for i in range(0, len(images), size)]

    def generate(self, images: list[Image.Image], prompt: str | None = None) -> list[Generated]:
        """Greedy answers, one per image; with `prompt` (e.g. "Question: ... Answer:") the same for each.
        At most BLIP2_MAX_BATCH_SIZE images go through the model at once."""
        return [answer for chunk in self._chunks(images) for answer in self._generate(chunk, prompt)]

    def score_options(self, images: list[Image.Image], prompt: str, options: list[str]) -> list[list[float]]:
        """For each image, a probability over `options` as answers to `prompt` (mean token log-likelihood)."""
        return [row for chunk in self._chunks(images) for row in self._score_options(chunk, prompt, options)]

    @torch.inference_mode()
    def _generate(self, images: list[Image.Image], prompt: str | None) -> list[Generated]:
        self.processor.tokenizer.padding_side = "left"
        inputs = self._inputs(images, [prompt] * len(images) if prompt else None)
        out = self.model.generate(
            **inputs, max_new_tokens=self.settings.max_new_tokens, do_sample=False,
            output_scores=True, return_dict_in_generate=True,
        )
        # one score per generated token; the sequences may or may not start with the prompt and image tokens
        new_tokens = out.sequences[:, -len(out.scores):]
        # scores are the (greedy, so unwarped) logits of each step: softmax gives each chosen token's probability
        probs = torch.stack([s.float().softmax(-1) for s in out.scores], dim=1)
        chosen = probs.gather(-1, new_tokens[:, :, None]).squeeze(-1)
        return [self._generated(row, p) for row, p in zip(new_tokens.tolist(), chosen.tolist(), strict=True)]

    def _generated(self, ids: list[int], probs: list[float]) -> Generated:
        tokenizer = self.processor.tokenizer
        special = set(tokenizer.all_special_ids)
        kept = [(i, p) for i, p in zip(ids, probs, strict=False) if i not in special]
        return Generated(
            text=tokenizer.decode([i for i, _ in kept], skip_special_tokens=True).strip(),
            tokens=[tokenizer.decode([i]) for i, _ in kept],
            token_probs=[p for _, p in kept],
        )

    @torch.inference_mode()
    def _score_options(self, images: list[Image.Image], prompt: str, options: list[str]) -> list[list[float]]:
        tokenizer = self.processor.tokenizer
        tokenizer.padding_side = "right"
        texts = [f"{prompt} {option}" for option in options]
        pairs = [image for image in images for _ in options]
        inputs = self._inputs(pairs, texts * len(images))
        logits = self.model(**inputs).logits.float()
        log_probs = logits[:, :-1].log_softmax(-1).gather(-1, inputs["input_ids"][:, 1:, None]).squeeze(-1)
        prompt_len = self.processor.num_query_tokens + len(tokenizer(prompt)["input_ids"])
        mask = inputs["attention_mask"][:, 1:].clone()
        mask[:, : prompt_len - 1] = 0
        mean = (log_probs * mask).sum(-1) / mask.sum(-1).clamp(min=1)
        return mean.view(len(images), len(options)).softmax(-1).tolist()


def geometric_mean(probs: list[float]) -> float:
    if not probs:
        return 0.0
    return math.exp(sum(math.log(max(p, 1e-12)) for p in probs) / len(probs))
