"""Pieces around `generate`: sampling parameters, stop strings, cancellation and text streaming."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from transformers import StoppingCriteria
from transformers.generation.streamers import BaseStreamer


@dataclass(frozen=True)
class SamplingParams:
    max_new_tokens: int
    temperature: float = 0.7
    top_p: float = 1.0
    stop: tuple[str, ...] = ()

    def generate_kwargs(self) -> dict[str, Any]:
        if self.temperature == 0:
            return {"do_sample": False, "max_new_tokens": self.max_new_tokens}
        return {"do_sample": True, "temperature": self.temperature, "top_p": self.top_p,
                "max_new_tokens": self.max_new_tokens}


def cut_at_stop(text: str, stop: tuple[str, ...]) -> tuple[str, bool]:
    """The text before the first stop sequence, and whether one was found."""
    positions = [i for i in (text.find(s) for s in stop) if i >= 0]
    return (text[: min(positions)], True) if positions else (text, False)


class StopConditions(StoppingCriteria):
    """Stops on a stop string in the newly generated text, or when the caller went away."""

    def __init__(self, tokenizer: Any, prompt_len: int, stop: tuple[str, ...], cancelled: threading.Event) -> None:
        self.tokenizer = tokenizer
        self.prompt_len = prompt_len
        self.stop = stop
        self.cancelled = cancelled
        # each token is at least one character, so this many tokens always hold a whole stop string
        self.tail_tokens = max((len(s) for s in stop), default=0) + 2

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        done = torch.full((input_ids.shape[0],), self.cancelled.is_set(), dtype=torch.bool, device=input_ids.device)
        if self.stop:
            start = max(self.prompt_len, input_ids.shape[1] - self.tail_tokens)
            for row in range(input_ids.shape[0]):
                tail = self.tokenizer.decode(input_ids[row, start:], skip_special_tokens=True)
                done[row] |= any(s in tail for s in self.stop)
        return cast(torch.BoolTensor, done)


@dataclass
class TextDeltas:
    """Turns a growing token list into text pieces that are safe to send: never past a stop string,
    never half a UTF-8 character."""

    tokenizer: Any
    stop: tuple[str, ...]
    ids: list[int] = field(default_factory=list)
    sent: int = 0

    def push(self, ids: list[int], final: bool = False) -> str:
        self.ids.extend(ids)
        text, stopped = cut_at_stop(self.tokenizer.decode(self.ids, skip_special_tokens=True), self.stop)
        if not (final or stopped):
            text = text.rstrip("\ufffd")
            hold = max((len(s) for s in self.stop), default=1) - 1  # a stop string may be starting
            text = text[: max(len(text) - hold, self.sent)]
        delta, self.sent = text[self.sent :], max(self.sent, len(text))
        return delta


class AsyncTextStreamer(BaseStreamer):
    """Called by `generate` on the inference thread; hands text pieces to an asyncio queue (None = end)."""

    def __init__(self, deltas: TextDeltas, loop: asyncio.AbstractEventLoop) -> None:
        self.deltas = deltas
        self.loop = loop
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:  # generate's first call carries the prompt
            self._prompt_seen = True
            return
        self._send(self.deltas.push(value.reshape(-1).tolist()))

    def end(self) -> None:
        self._send(self.deltas.push([], final=True))
        self.loop.call_soon_threadsafe(self.queue.put_nowait, None)

    def _send(self, text: str) -> None:
        if text:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, text)
