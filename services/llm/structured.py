"""JSON-schema constrained decoding with lm-format-enforcer, adapted to transformers 5.

lm-format-enforcer 0.11.3's own transformers integration imports
`transformers.tokenization_utils.PreTrainedTokenizerBase`, which transformers 5 removed, so
this module builds its `TokenEnforcerTokenizerData` itself (the same steps as
`lmformatenforcer.integrations.transformers`) and applies the `TokenEnforcer` through a
`LogitsProcessor`: at every step only tokens that keep the output a valid prefix of a
document matching the schema can be chosen, so the result parses and validates.
"""

from __future__ import annotations

import json
from typing import Any, cast

import torch
from lmformatenforcer import CharacterLevelParserConfig, JsonSchemaParser, TokenEnforcer, TokenEnforcerTokenizerData
from transformers import LogitsProcessor

WHITESPACE_RUN = 1  # whitespace the model may put between JSON tokens: keeps output short and bounded
ESCAPE_CHARS = 6  # a string character can take up to 6 characters to write (\uXXXX)


def tokenizer_data(tokenizer: Any, eos_token_ids: list[int]) -> TokenEnforcerTokenizerData:
    """Each regular token's text, and whether it starts a word (what the enforcer's prefix tree needs)."""
    special = set(tokenizer.all_special_ids)
    zero = tokenizer.encode("0", add_special_tokens=False)[-1]
    regular = []
    for token_id in range(len(tokenizer)):
        if token_id in special:
            continue
        # decoding after "0" and dropping it keeps a leading space that decoding alone may strip
        after_zero = tokenizer.decode([zero, token_id])[1:]
        alone = tokenizer.decode([token_id])
        if not _printable(after_zero):
            continue  # partial UTF-8 bytes and control characters never belong in our JSON
        regular.append((token_id, after_zero, len(after_zero) > len(alone)))

    def decode(ids: list[int]) -> str:
        return tokenizer.decode(ids).rstrip("\ufffd")

    return TokenEnforcerTokenizerData(regular, decode, eos_token_ids, False, len(tokenizer))


def _printable(text: str) -> bool:
    return bool(text) and "\ufffd" not in text and all(c >= " " or c in "\n\t" for c in text)


class JsonSchemaLogitsProcessor(LogitsProcessor):
    """Masks every token that would take the output off the schema."""

    def __init__(self, data: TokenEnforcerTokenizerData, schema: dict[str, Any], prompt_len: int) -> None:
        self.enforcer = TokenEnforcer(data, JsonSchemaParser(schema))
        config: CharacterLevelParserConfig = self.enforcer.root_parser.config
        config.max_consecutive_whitespaces = WHITESPACE_RUN
        self.prompt_len = prompt_len

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        mask = torch.full_like(scores, float("-inf"))
        for row, ids in enumerate(input_ids.tolist()):
            allowed = self.enforcer.get_allowed_tokens(ids).allowed_tokens
            mask[row, allowed] = 0
        return cast(torch.FloatTensor, scores + mask)


def max_json_chars(schema: dict[str, Any]) -> int:
    """Upper bound on the length of any document the enforcer lets through for `schema` (our subset:
    objects with properties, arrays with maxItems, strings with maxLength or enum, numbers, booleans).

    Every token writes at least one character, so this many new tokens always complete the JSON.
    """
    gap = 2 * WHITESPACE_RUN
    if "enum" in schema:
        return max(len(json.dumps(v)) for v in schema["enum"]) + gap
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties", {})
        inner = sum(len(json.dumps(k)) + 2 + max_json_chars(v) + gap for k, v in props.items())
        return 2 + inner + gap
    if kind == "array":
        if "maxItems" not in schema:
            raise ValueError("arrays in a decoding schema need maxItems, or the output has no length bound")
        return 2 + schema["maxItems"] * (max_json_chars(schema["items"]) + 1 + gap) + gap
    if kind == "string":
        if "maxLength" not in schema:
            raise ValueError("strings in a decoding schema need maxLength or enum, or the output has no length bound")
        return 2 + ESCAPE_CHARS * schema["maxLength"] + gap
    if kind in ("integer", "number"):
        return 24 + gap
    if kind == "boolean":
        return 5 + gap
    raise ValueError(f"unsupported schema node for bounded decoding: {schema}")


def parse_document(text: str) -> dict[str, Any]:
    """The first JSON document in `text` (the enforcer may allow trailing whitespace after it)."""
    value, _ = json.JSONDecoder().raw_decode(text.lstrip())
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {type(value).__name__}")
    return value
