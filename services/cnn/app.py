"""`services.cnn.app:create_app`: the kit around the cnn classifier and its task route."""

from __future__ import annotations

from fastapi import FastAPI

from services.cnn.model import CnnModel
from services.cnn.routes import router
from services.cnn.settings import CnnSettings
from shared.kit.service import create_service_app


def create_app() -> FastAPI:
    return create_service_app(CnnSettings(), CnnModel, [router], title="mediamesh cnn")
