"""`services.llm.app:create_app`: the kit around a causal LM, its task routes and OpenAI's chat and completions."""

from __future__ import annotations

from fastapi import FastAPI

from services.llm.chat import router as chat_router
from services.llm.completions import router as completions_router
from services.llm.model import LlmModel
from services.llm.routes import router
from services.llm.settings import LlmSettings
from shared.kit.service import create_service_app


def create_app() -> FastAPI:
    return create_service_app(LlmSettings(), LlmModel, [router, chat_router, completions_router], title="mediamesh llm")
