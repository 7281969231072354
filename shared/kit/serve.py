"""Run a service process: `python -m services.<name>` calls `serve` with its settings."""

from __future__ import annotations

import logging

import uvicorn

from shared.config import ServiceSettings


def serve(app_factory: str, settings: ServiceSettings) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(app_factory, factory=True, host=settings.host, port=settings.port, log_level="info")
