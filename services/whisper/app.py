"""The whisper service (port 8002): speech to text with faster-whisper (default) or openai-whisper."""

from __future__ import annotations

from fastapi import FastAPI

from services.whisper.model import WhisperModel, WhisperSettings
from services.whisper.routes import router
from shared.kit.service import create_service_app


def create_app() -> FastAPI:
    settings = WhisperSettings()
    return create_service_app(settings, lambda _: WhisperModel(settings), [router], title="mediamesh whisper")
