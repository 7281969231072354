"""Run a service process: `python -m services.<name> [--host H] [--port P]` calls `serve` with its settings."""

from __future__ import annotations

import argparse
import logging

import uvicorn

from shared.config import ServiceSettings


def serve(app_factory: str, settings: ServiceSettings, argv: list[str] | None = None) -> None:
    """`--host` / `--port` override `<P>HOST` / `<P>PORT` for the socket only (the container image binds
    0.0.0.0 this way, whatever the service's prefix)."""
    parser = argparse.ArgumentParser(prog=f"python -m services.{settings.name}")
    parser.add_argument("--host", default=settings.host, help=f"address to bind (default {settings.host})")
    parser.add_argument("--port", type=int, default=settings.port, help=f"port to bind (default {settings.port})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(app_factory, factory=True, host=args.host, port=args.port, log_level="info")
