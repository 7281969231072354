"""LRU cache of label-prompt text embeddings, keyed by (labels, template)."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

LabelKey = tuple[tuple[str, ...], str]


class LabelEmbeddingCache:
    """Zero-shot calls repeat the same label sets; their prompt embeddings are computed once."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[LabelKey, np.ndarray] = OrderedDict()

    def get(self, key: LabelKey) -> np.ndarray | None:
        found = self._entries.get(key)
        if found is None:
            self.misses += 1
            return None
        self.hits += 1
        self._entries.move_to_end(key)
        return found

    def put(self, key: LabelKey, embeddings: np.ndarray) -> None:
        if self.capacity == 0:
            return
        self._entries[key] = embeddings
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()

    def stats(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses, "size": len(self._entries), "capacity": self.capacity}
