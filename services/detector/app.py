"""`services.detector.app:create_app`: the kit around the object detector and its task route."""

from __future__ import annotations

from fastapi import FastAPI

from services.detector.model import DetectorModel
from services.detector.routes import router
from services.detector.settings import DetectorSettings
from shared.kit.service import create_service_app


def create_app() -> FastAPI:
    return create_service_app(DetectorSettings(), DetectorModel, [router], title="mediamesh detector")
