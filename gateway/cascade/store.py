"""The live cascade configuration: read at start (a JSON file, if set), replaced by PUT, and the
stable A/B assignment of a request to a variant."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from gateway.settings import GatewaySettings
from shared.cascade.config import CascadeConfig, CascadeVariant
from shared.http.errors import BadInput

log = logging.getLogger("mediamesh.cascade")


def share_point(request_id: str) -> float:
    """A number in [0, 1) fixed by the request id: the same request always lands on the same variant."""
    digest = hashlib.sha256(request_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class CascadeStore:
    def __init__(self, config: CascadeConfig, path: Path | None = None) -> None:
        self.config = config
        self.path = path

    @classmethod
    def from_settings(cls, settings: GatewaySettings) -> CascadeStore:
        path = settings.cascade_config
        if path is not None and path.expanduser().exists():
            return cls(CascadeConfig.model_validate_json(path.expanduser().read_text()), path.expanduser())
        return cls(CascadeConfig(), path.expanduser() if path else None)

    def replace(self, config: CascadeConfig) -> None:
        self.config = config
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(config.model_dump_json(indent=2))
            tmp.replace(self.path)
            log.info("cascade configuration saved to %s", self.path)

    def pick(self, request_id: str, forced: str | None = None) -> tuple[str, CascadeVariant]:
        variants = self.config.variants
        if forced is not None:
            if forced not in variants:
                raise BadInput(f"unknown cascade variant '{forced}'; variants: {', '.join(sorted(variants))}")
            return forced, variants[forced]
        if not self.config.split:
            name = next(iter(variants))
            return name, variants[name]
        point, cumulative = share_point(request_id), 0.0
        shares = sorted(self.config.split.items())
        for name, share in shares:
            cumulative += share
            if point < cumulative:
                return name, variants[name]
        name = shares[-1][0]  # rounding at the very top of [0, 1)
        return name, variants[name]
