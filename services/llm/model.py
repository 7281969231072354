"""A causal LM (Phi-3.5-mini style) behind the service kit: load/unload, chat prompts, generation."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Literal

import torch
from transformers import LogitsProcessorList, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from services.llm.decoding import SamplingParams, StopConditions, cut_at_stop
from services.llm.settings import LlmSettings
from services.llm.structured import tokenizer_data
from shared.kit.quantization import estimated_loaded_bytes, place, pretrained_kwargs
from shared.kit.served_model import ServedModel

log = logging.getLogger("mediamesh.llm")


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: Literal["stop", "length"]


class LlmModel(ServedModel):
    settings: LlmSettings

    def __init__(self, settings: LlmSettings) -> None:
        super().__init__(settings)
        self.model: Any = None
        self.tokenizer: Any = None
        self._enforcer_data: Any = None
        self._enforcer_lock = threading.Lock()
        self._import_architecture()

    def _import_architecture(self) -> None:
        """Import the model's code at start-up (seconds), so an on-demand load only reads weights."""
        from transformers import AutoConfig
        from transformers.conversion_mapping import get_checkpoint_conversion_mapping
        from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

        try:
            config = AutoConfig.from_pretrained(self.path)
            MODEL_FOR_CAUSAL_LM_MAPPING[type(config)]
        except (OSError, ValueError, KeyError) as exc:  # no usable model there yet; load() will say why
            log.info("not pre-importing the model code from %s: %s", self.path, exc)
            return
        # transformers compiles its checkpoint-renaming rules (~900 regexes) on the first load of a
        # process: 0.3 s of a 0.8 s first load of a 680 MB model. Build them now, once.
        get_checkpoint_conversion_mapping(config.model_type)

    def load(self) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        kwargs = pretrained_kwargs(self.settings, self.device, self.dtype)
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        if self.tokenizer.chat_template is None:
            raise ValueError(f"the tokenizer in {self.path} has no chat template; an instruct model needs one")
        model = AutoModelForCausalLM.from_pretrained(self.path, **kwargs)
        self.model = place(model, self.settings, self.device)

    def unload(self) -> None:
        self.model = self.tokenizer = self._enforcer_data = None

    def modules(self) -> list[torch.nn.Module]:
        return [self.model] if self.model is not None else []

    def estimate_bytes(self) -> int:
        return estimated_loaded_bytes(self.path, self.settings.quantization, self.dtype)

    def describe(self) -> dict[str, Any]:
        return {"architecture": type(self.model).__name__, "vocab_size": len(self.tokenizer),
                "max_new_tokens": self.settings.max_new_tokens}

    def eos_token_ids(self) -> list[int]:
        eos = self.model.generation_config.eos_token_id
        ids = eos if isinstance(eos, list) else [eos] if eos is not None else []
        return ids or [self.tokenizer.eos_token_id]

    def enforcer_data(self) -> Any:
        """The constrained decoder's view of the vocabulary: built on first use, kept while loaded."""
        with self._enforcer_lock:
            if self._enforcer_data is None:
                self._enforcer_data = tokenizer_data(self.tokenizer, self.eos_token_ids())
            return self._enforcer_data

    def chat_ids(self, messages: list[dict[str, str]]) -> list[int]:
        encoded = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                     return_dict=True)
        return list(encoded["input_ids"])

    def text_ids(self, prompt: str) -> list[int]:
        return list(self.tokenizer(prompt)["input_ids"])

    @torch.inference_mode()
    def complete(
        self,
        prompt_ids: list[int],
        params: SamplingParams,
        *,
        logits_processor: Any = None,
        streamer: BaseStreamer | None = None,
        cancelled: threading.Event | None = None,
    ) -> Completion:
        """Blocking generation from token ids; runs on the inference thread."""
        input_ids = torch.tensor([prompt_ids], device=self.model.device)
        stop = StopConditions(self.tokenizer, len(prompt_ids), params.stop, cancelled or threading.Event())
        out = self.model.generate(
            input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
            logits_processor=LogitsProcessorList([logits_processor] if logits_processor else []),
            stopping_criteria=StoppingCriteriaList([stop]), streamer=streamer,
            pad_token_id=self.tokenizer.pad_token_id, **params.generate_kwargs(),
        )
        new_ids = out[0, len(prompt_ids):].tolist()
        eos = set(self.eos_token_ids())
        ended = bool(new_ids) and new_ids[-1] in eos
        text, stopped = cut_at_stop(self.tokenizer.decode(new_ids, skip_special_tokens=True), params.stop)
        length = not (ended or stopped) and len(new_ids) >= params.max_new_tokens
        return Completion(text, len(prompt_ids), len(new_ids), "length" if length else "stop")
