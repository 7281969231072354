"""`services.llm.app:create_app`: the kit around a causal LM, plus its task and OpenAI routes."""

from __future__ import annotations

from fastapi import FastAPI

from services.llm.chat import router as chat_router
from services.llm.model import LlmModel, LlmSettings
from services.llm.routes import router
from shared.kit.service import create_service_app


def create_app() -> FastAPI:
    settings = LlmSettings()
    return create_service_app(settings, lambda _: LlmModel(settings), [router, chat_router], title="mediamesh llm")
