"""Pure pieces of the llm service: stop strings, streamed text pieces, output bounds, task shaping."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from services.llm import tasks
from services.llm.decoding import TextDeltas, cut_at_stop
from services.llm.settings import LlmSettings
from services.llm.structured import max_json_chars, parse_document
from services.llm.tiny import build_tokenizer


@pytest.fixture(scope="module")
def tokenizer() -> AutoTokenizer:
    return build_tokenizer()


def test_cut_at_stop_takes_the_earliest_stop() -> None:
    assert cut_at_stop("a cat. a dog\n\nend", ("\n\n", "dog")) == ("a cat. a ", True)
    assert cut_at_stop("no stop here", ("###",)) == ("no stop here", False)


def test_streamed_pieces_add_up_and_never_pass_a_stop(tokenizer: AutoTokenizer) -> None:
    text = "The quick brown fox jumps over the lazy dog. STOP and more text"
    ids = tokenizer(text)["input_ids"]
    deltas = TextDeltas(tokenizer, ("STOP",))
    pieces = [deltas.push([i]) for i in ids] + [deltas.push([], final=True)]
    assert "".join(pieces) == "The quick brown fox jumps over the lazy dog. "
    plain = TextDeltas(tokenizer, ())
    assert "".join([plain.push([i]) for i in ids] + [plain.push([], final=True)]) == text


def test_half_a_utf8_character_is_held_back(tokenizer: AutoTokenizer) -> None:
    ids = tokenizer("é!")["input_ids"]  # é is two bytes, so two byte-level tokens
    deltas = TextDeltas(tokenizer, ())
    assert deltas.push(ids[:1]) == ""
    assert deltas.push(ids[1:]) + deltas.push([], final=True) == "é!"


def test_bound_covers_the_longest_document() -> None:
    schema = tasks.enrich_draft(LlmSettings(structured_short_chars=4, structured_long_chars=8,
                                            structured_max_items=2))
    longest = {"hierarchy": ["\\u00e9" * 4] * 2, "extended_tags": ["x" * 4] * 2, "similar_to": ["y" * 4] * 2,
               "parent": "z" * 4, "search_description": "w" * 8}
    import json

    assert len(json.dumps(longest, indent=1)) <= max_json_chars(schema)
    with pytest.raises(ValueError, match="maxLength"):
        max_json_chars({"type": "string"})
    with pytest.raises(ValueError, match="maxItems"):
        max_json_chars({"type": "array", "items": {"type": "boolean"}})


def test_parse_document_ignores_trailing_whitespace() -> None:
    assert parse_document('\n {"a": "b\\tc"}\n  \n') == {"a": "b\tc"}
    with pytest.raises(ValueError):
        parse_document('["not", "an", "object"]')


def test_slug_and_draft_names() -> None:
    assert tasks.slug(" Customer Orders! ", "x") == "customer_orders"
    assert tasks.slug("2024 sales", "x") == "_2024_sales"
    assert tasks.slug("日本", "records") == "records"
    names = tasks.draft_names(["id", "ünïcode", "field_1", 'quo"te'])
    assert names == {"id": "id", "field_1_": "ünïcode", "field_1": "field_1", "field_3": 'quo"te'}


def test_enrich_answer_builds_the_folder_path_from_the_hierarchy() -> None:
    draft = {"hierarchy": ["Personal", "Pets", " Black Cats "], "extended_tags": ["Feline", "feline", "!!"],
             "similar_to": ["Gray cats"], "parent": "", "search_description": " Cats. "}
    answer = tasks.enrich_answer(draft, "Black Cats")
    assert answer["folder_path"] == "/personal/pets/black_cats/"
    assert answer["extended_tags"] == ["feline"]
    assert answer["relationships"] == {"similar_to": ["gray_cats"], "parent": "pets"}
