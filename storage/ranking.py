"""Reciprocal-rank fusion: several ranked hit lists (embedding, transcript, caption) → one ranked list.

An item's fused score is Σ weight / (k + rank) over the lists it appears in (rank from 1), as in
Cormack, Clarke & Büttcher (SIGIR 2009). Ranks, not raw scores, are fused: a cosine similarity and a
`ts_rank` are on scales that cannot be added."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # storage.search calls `fuse`
    from storage.search import Hit, MatchList

# A list's order breaks ties between equal contributions: words found beat a nearest neighbour.
LIST_ORDER: tuple[MatchList, ...] = ("transcript", "caption", "embedding")


@dataclass(frozen=True)
class FusionWeights:
    """A text match holds the query's words, while a nearest neighbour exists for any query: text
    lists weigh more by default."""

    embedding: float = 1.0
    transcript: float = 1.5
    caption: float = 1.5
    k: float = 60.0

    def of(self, match: MatchList) -> float:
        return float(getattr(self, match))


def fuse(lists: Mapping[MatchList, Sequence[Hit]], weights: FusionWeights) -> list[Hit]:
    """One hit per item, best first. Each keeps the list that contributed most as its `match`, the
    fused score as `score`, the cosine `similarity` when it was an embedding hit, and the snippet and
    segment start of its text match."""
    scores: dict[str, float] = {}
    best: dict[str, tuple[float, int, Hit]] = {}
    extras: dict[str, Hit] = {}
    for order, match in enumerate(m for m in LIST_ORDER if m in lists):
        for rank, hit in enumerate(lists[match], start=1):
            key = hit.media.id
            contribution = weights.of(match) / (weights.k + rank)
            scores[key] = scores.get(key, 0.0) + contribution
            if key not in best or contribution > best[key][0]:
                best[key] = (contribution, order, hit)
            extras[key] = _merge(extras.get(key), hit)
    ordered = sorted(scores, key=lambda key: (-scores[key], best[key][1], key))
    return [replace(best[key][2], score=scores[key], similarity=extras[key].similarity,
                    snippet=extras[key].snippet, start_s=extras[key].start_s) for key in ordered]


def _merge(known: Hit | None, hit: Hit) -> Hit:
    """What the lists tell of one item, together: the first snippet and segment start, the similarity."""
    if known is None:
        return hit
    return replace(known, snippet=known.snippet or hit.snippet,
                   start_s=known.start_s if known.start_s is not None else hit.start_s,
                   similarity=known.similarity if known.similarity is not None else hit.similarity)
