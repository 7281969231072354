"""`services.whisper.app:create_app`: the kit around faster-whisper (default) or openai-whisper."""

from __future__ import annotations

from fastapi import FastAPI

from services.whisper.model import WhisperModel
from services.whisper.routes import router
from services.whisper.settings import WhisperSettings
from shared.kit.service import create_service_app


def create_app() -> FastAPI:
    return create_service_app(WhisperSettings(), WhisperModel, [router], title="mediamesh whisper")
