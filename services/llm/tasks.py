"""The structured tasks: their prompts, the schema the model writes under, and the final answer.

The model writes a *draft* whose JSON schema is bounded (every string a maxLength, every list a
maxItems) so constrained decoding always finishes; the draft is then shaped into the public
response (identifiers slugged, folder path built from the hierarchy) and validated by pydantic.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

from services.llm.settings import LlmSettings

_NOT_IDENT = re.compile(r"[^a-z0-9_]+")
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_.:@$ -]{1,64}")


def slug(text: str, fallback: str) -> str:
    """A lower-case identifier (`[a-z_][a-z0-9_]*`) made from free text."""
    value = _NOT_IDENT.sub("_", text.strip().lower()).strip("_")[:60]
    if not value:
        return fallback
    return f"_{value}" if value[0].isdigit() else value


def _string(chars: int, min_chars: int = 0) -> dict[str, Any]:
    return {"type": "string", "minLength": min_chars, "maxLength": chars}


def _array(items: dict[str, Any], max_items: int, min_items: int = 0) -> dict[str, Any]:
    return {"type": "array", "items": items, "minItems": min_items, "maxItems": max_items}


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(properties)}


def field_names(samples: list[dict[str, Any]], limit: int = 40) -> list[str]:
    """Keys across the samples, most common first (then first seen)."""
    counts = Counter(key for sample in samples for key in sample)
    return [key for key, _ in counts.most_common(limit)]


def draft_names(keys: list[str]) -> dict[str, str]:
    """Name in the draft → real key. Keys the decoder may not be able to spell (non-ASCII, quotes,
    control characters) are written as `field_<n>` and mapped back afterwards."""
    names: dict[str, str] = {}
    for i, key in enumerate(keys):
        name = key if _PLAIN_KEY.fullmatch(key) else f"field_{i}"
        while name in names or (name != key and name in keys):
            name += "_"
        names[name] = key
    return names


def schema_analysis_draft(settings: LlmSettings, names: list[str]) -> dict[str, Any]:
    short, long = settings.structured_short_chars, settings.structured_long_chars
    key_enum = {"type": "string", "enum": names}
    return _object({
        "table_name": _string(short, 1),
        "storage_type": {"type": "string", "enum": ["sql", "jsonb"]},
        "reasoning": _string(long, 1),
        "fields": _object({name: _string(short) for name in names}),
        "indexes": _array(key_enum, min(settings.structured_max_items, 5, len(names))),
    })


def schema_analysis_messages(
    samples: list[dict[str, Any]], comment: str, names: dict[str, str]
) -> list[dict[str, str]]:
    keys = [name if name == key else f"{name} (the key {key!r})" for name, key in names.items()]
    shown = json.dumps(samples[:5], default=str, ensure_ascii=False)[:6000]
    return [
        {"role": "system", "content": "You are a database architect. Answer with one JSON object only."},
        {"role": "user", "content": (
            f"Sample documents: {shown}\nUser comment: {comment or '(none)'}\nFields: {', '.join(keys)}\n"
            "Choose a snake_case table_name; storage_type 'sql' when the documents share a stable flat "
            "structure, 'jsonb' when they are nested or vary; give your reasoning, one short description "
            "per field, and the fields worth indexing."
        )},
    ]


def schema_analysis_answer(draft: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    indexes = list(dict.fromkeys(names[i] for i in draft["indexes"] if i in names))
    return {
        "table_name": slug(draft["table_name"], "records"),
        "storage_type": draft["storage_type"],
        "reasoning": draft["reasoning"].strip(),
        "fields": {key: str(draft["fields"].get(name, "")).strip() for name, key in names.items()},
        "indexes": indexes,
    }


def enrich_draft(settings: LlmSettings) -> dict[str, Any]:
    short, long, items = settings.structured_short_chars, settings.structured_long_chars, settings.structured_max_items
    return _object({
        "hierarchy": _array(_string(short, 1), min(items, 6), 1),
        "extended_tags": _array(_string(short, 1), items),
        "similar_to": _array(_string(short, 1), min(items, 5)),
        "parent": _string(short),
        "search_description": _string(long, 1),
    })


def enrich_messages(name: str, description: str, captions: list[str]) -> list[dict[str, str]]:
    shown = "\n".join(f"- {c}" for c in captions[:20]) or "(none)"
    return [
        {"role": "system", "content": "You organise photo collections. Answer with one JSON object only."},
        {"role": "user", "content": (
            f"Cluster: {name}\nDescription: {description or '(none)'}\nSample captions:\n{shown}\n"
            "Give a category hierarchy from general to specific ending with this cluster, extended search "
            "tags, similar clusters, the parent category and a one-paragraph search description."
        )},
    ]


def enrich_answer(draft: dict[str, Any], cluster_name: str) -> dict[str, Any]:
    hierarchy = [h.strip() for h in draft["hierarchy"] if h.strip()] or [cluster_name.strip()]
    parts = [slug(level, f"level_{i}") for i, level in enumerate(hierarchy)]
    tags = [t for t in dict.fromkeys(slug(t, "") for t in draft["extended_tags"]) if t]
    similar = [s for s in dict.fromkeys(slug(s, "") for s in draft["similar_to"]) if s]
    parent = slug(draft["parent"], "") or (parts[-2] if len(parts) > 1 else None)
    return {
        "hierarchy": hierarchy,
        "folder_path": "/" + "/".join(parts) + "/",
        "extended_tags": tags,
        "relationships": {"similar_to": similar, "parent": parent},
        "search_description": draft["search_description"].strip(),
    }
