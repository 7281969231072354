"""LRU cache of label-prompt text embeddings, keyed by (labels, each label's templates)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

import numpy as np

LabelKey = tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]


class LabelEmbeddingCache:
    """Zero-shot calls repeat the same label sets; their prompt embeddings are computed once."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.hits = 0
        self.misses = 0
        self.on_lookup: Callable[[bool], None] = lambda hit: None  # the app counts hits and misses here
        self._entries: OrderedDict[LabelKey, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()  # used from the inference threads (CLIP_INFERENCE_THREADS may be > 1)

    def get(self, key: LabelKey) -> np.ndarray | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                self.misses += 1
            else:
                self.hits += 1
                self._entries.move_to_end(key)
        self.on_lookup(found is not None)
        return found

    def put(self, key: LabelKey, embeddings: np.ndarray) -> None:
        if self.capacity == 0:
            return
        with self._lock:
            self._entries[key] = embeddings
            self._entries.move_to_end(key)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def stats(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses, "size": len(self._entries), "capacity": self.capacity}
