"""Issue 11: a filtered semantic search returns a full page, in exact order, whenever that many items
match — also at 1 % selectivity, where the HNSW index alone (at most ef_search candidates, filtered
afterwards) used to hand back one row of the twenty asked for."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from storage import db as dbmod
from storage import search
from storage.spaces import Space
from tests.support.storage_env import fresh_database
from tests.support.vectors import clustered_unit_vectors, exact_order, load_library, media_ids

N = 10_000
VECTORS, QUERIES = np.split(clustered_unit_vectors(N + 5, seed=3), [N])  # queries from the same mixture
# 1 % cats, 10 % dogs; every 7th item is a video frame (its parent: item 0); three items labelled `rare`
LABELS = ["cat" if i % 100 == 1 else "dog" if i % 10 == 2 else "rare" if i in (5, 6, 7) else "other"
          for i in range(N)]
IDS = media_ids(N)
PARENTS = [IDS[0] if i % 7 == 3 else None for i in range(N)]


@pytest.fixture(scope="module")
def library() -> Iterator[tuple[dbmod.Database, Space]]:
    url = fresh_database()
    space = load_library(url, VECTORS, LABELS, parents=PARENTS)
    database = dbmod.Database(url)
    yield database, space
    database.dispose()


def _page(library: tuple[dbmod.Database, Space], query: np.ndarray, filters: search.Filters, *, limit: int = 20,
          offset: int = 0) -> list[int]:
    database, space = library
    with database.session() as session:
        hits = search.nearest_images(session, query.tolist(), filters, space=space, limit=limit, offset=offset,
                                     ef_search=40)
    return [int(hit.media.id[1:]) for hit in hits]


def _matching(predicate) -> list[int]:  # type: ignore[no-untyped-def]
    return [i for i in range(N) if predicate(i)]


# EXACT_SCAN_BELOW as shipped: the 1 % filter is an exact scan of its matches; 1: every query goes to the
# index first, which runs dry at ef_search = 40, and the search falls back to the exact scan
@pytest.mark.parametrize("exact_below", [search.EXACT_SCAN_BELOW, 1], ids=["exact-first", "index-then-exact"])
def test_one_percent_filter_returns_a_full_page_in_exact_order(
    library: tuple[dbmod.Database, Space], exact_below: int, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(search, "EXACT_SCAN_BELOW", exact_below)
    cats = _matching(lambda i: LABELS[i] == "cat")
    assert len(cats) == 100
    for query in QUERIES:
        truth = exact_order(VECTORS, query, cats, 40)
        assert _page(library, query, search.Filters(label="CAT")) == truth[:20]  # the label filter ignores case
        assert _page(library, query, search.Filters(label="cat"), offset=20) == truth[20:40]


def test_combined_filters_frames_of_a_label(library: tuple[dbmod.Database, Space]) -> None:
    dog_frames = _matching(lambda i: LABELS[i] == "dog" and PARENTS[i] is not None)
    dog_images = _matching(lambda i: LABELS[i] == "dog" and PARENTS[i] is None)
    for query in QUERIES[:2]:
        assert _page(library, query, search.Filters(kind="video", label="dog")) == exact_order(
            VECTORS, query, dog_frames, 20)
        assert _page(library, query, search.Filters(kind="image", label="dog")) == exact_order(
            VECTORS, query, dog_images, 20)


def test_fewer_matches_than_the_page_returns_them_all(library: tuple[dbmod.Database, Space]) -> None:
    assert _page(library, QUERIES[0], search.Filters(label="rare")) == exact_order(VECTORS, QUERIES[0], [5, 6, 7], 3)
    assert _page(library, QUERIES[0], search.Filters(label="unicorn")) == []
    assert _page(library, QUERIES[0], search.Filters(kind="audio")) == []


def test_unfiltered_search_goes_through_the_index_with_high_recall(library: tuple[dbmod.Database, Space]) -> None:
    recalls = []
    for query in QUERIES:
        page = _page(library, query, search.Filters(), limit=10)
        assert len(page) == 10
        recalls.append(len(set(page) & set(exact_order(VECTORS, query, range(N), 10))) / 10)
    assert np.mean(recalls) >= 0.9, recalls
