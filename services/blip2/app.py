"""`services.blip2.app:create_app`: the kit around BLIP-2, plus its task routes."""

from __future__ import annotations

from fastapi import FastAPI

from services.blip2.model import Blip2Model, Blip2Settings
from services.blip2.routes import router
from shared.kit.service import create_service_app


def create_app() -> FastAPI:
    settings = Blip2Settings()
    return create_service_app(settings, lambda _: Blip2Model(settings), [router], title="mediamesh blip2")
