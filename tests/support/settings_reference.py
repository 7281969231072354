"""Every environment variable the mesh reads, collected from its pydantic-settings classes.

`python -m tests.support.settings_reference` rewrites the tables of docs/configuration.md;
tests/unit/test_configuration_doc.py fails when a variable is missing from that page.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import AliasChoices
from pydantic_settings import BaseSettings

# (section, "module:Class", env prefix override for the kit's per-service classes)
SETTINGS = [
    ("Everyone", "shared.config:HomeSettings"),
    ("Every process of one mesh: servers, queue, media", "shared.config:ConnectionSettings"),
    ("Gateway access: the worker, the command, and the gateway's own key", "shared.config:GatewayAccess"),
    ("Where a model service runs (its node, for the per-device budgets)", "shared.config:NodeSettings"),
    ("cnn service", "services.cnn.settings:CnnSettings"),
    ("clip service", "services.clip.settings:ClipSettings"),
    ("blip2 service", "services.blip2.settings:Blip2Settings"),
    ("whisper service", "services.whisper.settings:WhisperSettings"),
    ("llm service", "services.llm.settings:LlmSettings"),
    ("detector service", "services.detector.settings:DetectorSettings"),
    ("gateway", "gateway.settings:GatewaySettings"),
    ("worker", "worker.settings:WorkerSettings"),
    ("launcher (`mediamesh up`)", "mediamesh.settings:LauncherSettings"),
    ("models pull", "mediamesh.settings:HubSettings"),
]
# Classes only ever used as a base: their variables are documented through their subclasses.
BASE_CLASSES = {"ImageInputSettings", "BatchSettings", "QuantizationSettings"}
DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
BEGIN, END = "<!-- generated:settings -->", "<!-- /generated:settings -->"


def load(path: str) -> type[BaseSettings]:
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


def env_names(cls: type[BaseSettings], field: str, info: Any) -> list[str]:
    alias = info.validation_alias
    if isinstance(alias, AliasChoices):
        names = [c for c in alias.choices if isinstance(c, str) and c.isupper()]
        if names:
            return names
    elif isinstance(alias, str):
        return [alias]
    return [f"{cls.model_config.get('env_prefix', '')}{field}".upper()]


def nested(info: Any) -> bool:
    """A field holding a shared settings model (`connections`, `access`): its variables have their own section."""
    return isinstance(info.annotation, type) and issubclass(info.annotation, BaseSettings)


def rows(cls: type[BaseSettings]) -> Iterator[tuple[str, str, str]]:
    for field, info in cls.model_fields.items():
        if nested(info):
            continue
        default = "" if info.is_required() else _default(info)
        for name in env_names(cls, field, info):
            yield name, default, (info.description or "").replace("|", "\\|")


def all_env_names() -> set[str]:
    return {name for _, path in SETTINGS for name, _, _ in rows(load(path))}


def markdown() -> str:
    out = []
    for section, path in SETTINGS:
        out += [f"### {section} — `{path.replace(':', '.')}`", "", "| variable | default | meaning |", "|---|---|---|"]
        out += [f"| `{name}` | {default} | {text} |" for name, default, text in rows(load(path))]
        out.append("")
    return "\n".join(out)


def _default(info: Any) -> str:
    value = info.get_default(call_default_factory=False) if info.default_factory is None else None
    if info.default_factory is not None:
        return "(computed)"
    if value is None:
        return "unset"
    text = str(value.value if hasattr(value, "value") else value)
    return f"`{text}`" if text else '`""`'


def write_doc() -> None:
    """Replace the generated part of docs/configuration.md (between its markers) with fresh tables."""
    text = DOC.read_text()
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    DOC.write_text(f"{head}{BEGIN}\n{markdown().replace('### ', '## ')}{END}{tail}")


if __name__ == "__main__":
    write_doc()
