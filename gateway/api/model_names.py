"""OpenAI's `model` field → the service that answers it.

A request may name a service (`llm`, `whisper`, `clip`, or any configured name such as
`cnn_fast`), the model a service runs (its hub id, e.g. `microsoft/Phi-3.5-mini-instruct`, or
the `model_id` its `/v1/model` reports), or an alias that off-the-shelf OpenAI clients send by
default. When several services of one kind share a name, the first configured one answers it.
"""

from __future__ import annotations

from pathlib import PurePath

from gateway.scheduler.directory import ServiceRegistry
from shared.catalog import SERVICES
from shared.http.errors import BadInput, NotFound

KIND_ALIASES: dict[str, tuple[str, ...]] = {
    "whisper": ("whisper-1",),
    "clip": ("clip", "text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002"),
}


class ModelNotFound(NotFound):
    code = "model_not_found"


def _other_names(registry: ServiceRegistry, name: str) -> list[str]:
    record = registry.records[name]
    kind = record.endpoint.kind
    names = list(KIND_ALIASES.get(kind, ()))
    if kind in SERVICES:
        names.append(SERVICES[kind].hub_id)
    if record.info is not None:
        model_id = record.info.model_id
        # a local folder is named by its last part: the path itself says nothing to a client
        names.append(PurePath(model_id).name if model_id.startswith(("/", ".")) else model_id)
    return names


def alias_table(registry: ServiceRegistry) -> dict[str, str]:
    """Every name but the services' own → the service it reaches (the first configured one wins)."""
    table: dict[str, str] = {}
    for name in registry.records:
        for alias in _other_names(registry, name):
            if alias and alias not in registry.records:
                table.setdefault(alias, name)
    return table


def aliases_of(registry: ServiceRegistry, name: str) -> list[str]:
    return [alias for alias, service in alias_table(registry).items() if service == name]


def resolve(registry: ServiceRegistry, model: object, kind: str, what: str) -> str:
    """The service of `kind` that `model` names, or OpenAI's 404 (unknown) / 400 (wrong kind)."""
    if not isinstance(model, str) or not model:
        raise BadInput(f"`model` is required for {what}; GET /v1/models lists the names (e.g. "
                       f"{_examples(registry, kind)})")
    service = model if model in registry.records else alias_table(registry).get(model)
    if service is None:
        raise ModelNotFound(f"The model '{model}' does not exist; GET /v1/models lists the models, and "
                            f"{what} take {_examples(registry, kind)}")
    if registry.records[service].endpoint.kind != kind:
        raise BadInput(f"The model '{model}' ({registry.records[service].endpoint.kind}) cannot do {what}; "
                       f"use {_examples(registry, kind)}")
    return service


def _examples(registry: ServiceRegistry, kind: str) -> str:
    names = registry.of_kind(kind)
    if not names:
        return f"a {kind} service, and none is configured (GATEWAY_SERVICES)"
    return " or ".join(f"'{n}'" for n in dict.fromkeys([*names, *KIND_ALIASES.get(kind, ())[:1]]))
