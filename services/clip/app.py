"""`services.clip.app:create_app`: the kit around CLIP, its task routes (trained heads too) and a label-cache
counter."""

from __future__ import annotations

from fastapi import FastAPI
from prometheus_client import Counter

from services.clip.head_routes import head_router
from services.clip.model import ClipModel
from services.clip.routes import router
from services.clip.settings import ClipSettings
from shared.kit.service import create_service_app


def create_app() -> FastAPI:
    app = create_service_app(ClipSettings(), ClipModel, [router, head_router], title="mediamesh clip")
    lookups = Counter("mediamesh_clip_label_cache_lookups_total", "Zero-shot label-prompt cache lookups", ["result"],
                      registry=app.state.metrics.registry)
    app.state.lifecycle.model.label_cache.on_lookup = lambda hit: lookups.labels("hit" if hit else "miss").inc()
    return app
