"""`services.blip2.app:create_app`: the kit around BLIP-2 and its task routes."""

from __future__ import annotations

from fastapi import FastAPI

from services.blip2.model import Blip2Model
from services.blip2.routes import router
from services.blip2.settings import Blip2Settings
from shared.kit.service import create_service_app


def create_app() -> FastAPI:
    return create_service_app(Blip2Settings(), Blip2Model, [router], title="mediamesh blip2")
