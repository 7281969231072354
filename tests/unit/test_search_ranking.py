"""Reciprocal-rank fusion of the search lists, and the error answers every OpenAPI operation declares."""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from shared.http.errors import BadInput, declare_error_responses
from storage.models import Media
from storage.ranking import FusionWeights, fuse
from storage.search import Hit


def hit(media_id: str, match: str, score: float = 0.5, **extra: object) -> Hit:
    return Hit(Media(id=media_id, kind="image"), match, score, None, **extra)  # type: ignore[arg-type]


def test_rrf_scores_are_weight_over_k_plus_rank_summed_over_lists() -> None:
    lists = {"embedding": [hit("a", "embedding", similarity=0.9), hit("b", "embedding", similarity=0.3)],
             "caption": [hit("b", "caption", snippet="a <b>b</b>")]}
    fused = fuse(lists, FusionWeights(embedding=1.0, caption=2.0, k=10))  # type: ignore[arg-type]
    assert [h.media.id for h in fused] == ["b", "a"]
    b, a = fused
    assert b.score == pytest.approx(1 / 12 + 2 / 11) and a.score == pytest.approx(1 / 11)
    # b's caption contributed most: it is a caption match that keeps its similarity and snippet
    assert (b.match, b.similarity, b.snippet) == ("caption", 0.3, "a <b>b</b>")
    assert (a.match, a.similarity) == ("embedding", 0.9)


def test_a_transcript_match_outranks_the_nearest_image_by_default() -> None:
    lists = {"embedding": [hit(f"img{i}", "embedding") for i in range(12)],
             "transcript": [hit("memo", "transcript", start_s=4.0)]}
    fused = fuse(lists, FusionWeights())  # type: ignore[arg-type]
    assert fused[0].media.id == "memo" and fused[0].start_s == 4.0 and len(fused) == 13


def test_equal_contributions_prefer_words_found() -> None:
    lists = {"embedding": [hit("img", "embedding")], "transcript": [hit("memo", "transcript")]}
    fused = fuse(lists, FusionWeights(embedding=1.0, transcript=1.0))  # type: ignore[arg-type]
    assert [h.media.id for h in fused] == ["memo", "img"]


def test_every_operation_declares_the_error_answers() -> None:
    app = FastAPI()
    declare_error_responses(app)

    @app.get("/things/{name}")
    async def thing(name: str) -> dict[str, str]:
        raise BadInput("no")

    @app.get("/own", responses={503: {"description": "mine"}})
    async def own() -> dict[str, str]:
        return {}

    document = app.openapi()
    responses = document["paths"]["/things/{name}"]["get"]["responses"]
    error = {"$ref": "#/components/schemas/ErrorDetail"}
    assert responses["4XX"]["content"]["application/json"]["schema"] == error
    assert responses["5XX"]["content"]["application/json"]["schema"] == error
    assert "Retry-After" in responses["503"]["headers"]
    assert responses["422"]["content"]["application/json"]["schema"]["anyOf"] == [
        {"$ref": "#/components/schemas/HTTPValidationError"}, error]
    assert document["paths"]["/own"]["get"]["responses"]["503"] == {"description": "mine"}
    assert document["components"]["schemas"]["ErrorDetail"]["required"] == ["detail"]
