"""A service on the kit whose answers are known exactly: y = 2x + 1 (nn.Linear, weight 2, bias 1).

Used by the kit's own tests and by the gateway's scheduler tests (with a settable load delay
and memory size, so budgets can be exercised without real models).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import torch
from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel
from pydantic_settings import SettingsConfigDict

from shared.config import ServiceSettings
from shared.imaging import decode_image_base64
from shared.kit.served_model import ServedModel
from shared.kit.service import LifecycleDep, create_service_app


class LinearSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="LINEAR_", extra="ignore")
    name: str = "linear"
    load_delay_s: float = 0.0
    fail_load: bool = False
    ballast_floats: int = 1_000_000  # memory the loaded model holds, in float32s


class LinearModel(ServedModel):
    settings: LinearSettings

    def __init__(self, settings: LinearSettings) -> None:
        super().__init__(settings)
        self.linear: torch.nn.Linear | None = None
        self.ballast: torch.nn.Module | None = None
        self.load_calls = 0

    def load(self) -> None:
        self.load_calls += 1
        time.sleep(self.settings.load_delay_s)
        if self.settings.fail_load:
            raise RuntimeError("weights are corrupt (LINEAR_FAIL_LOAD is set)")
        linear = torch.nn.Linear(1, 1)
        with torch.no_grad():
            linear.weight.fill_(2.0)
            linear.bias.fill_(1.0)
        ballast = torch.nn.Module()
        ballast.register_buffer("weights", torch.zeros(self.settings.ballast_floats))
        self.linear, self.ballast = linear, ballast

    def unload(self) -> None:
        self.linear = self.ballast = None

    def modules(self) -> list[torch.nn.Module]:
        return [m for m in (self.linear, self.ballast) if m is not None]

    def estimate_bytes(self) -> int:
        return self.settings.ballast_floats * 4

    def describe(self) -> dict[str, Any]:
        return {"load_calls": self.load_calls}

    def predict(self, xs: list[float]) -> list[float]:
        assert self.linear is not None
        with torch.no_grad():
            return self.linear(torch.tensor(xs).unsqueeze(1)).squeeze(1).tolist()


class PredictRequest(BaseModel):
    x: float
    hold_s: float = 0.0


class ImageRequest(BaseModel):
    image: str


router = APIRouter()


@router.post("/v1/predict")
async def predict(body: PredictRequest, lifecycle: LifecycleDep, request: Request) -> dict[str, float]:
    async with lifecycle.use():
        await asyncio.sleep(body.hold_s)
        y = await request.app.state.batcher.submit(body.x)
    return {"y": y}


@router.post("/v1/image-size")
async def image_size(body: ImageRequest, lifecycle: LifecycleDep) -> dict[str, int]:
    image = decode_image_base64(body.image, max_pixels=lifecycle.model.settings.max_image_pixels)
    return {"width": image.width, "height": image.height}


def create_app() -> FastAPI:
    settings = LinearSettings()
    app = create_service_app(settings, LinearModel, [router], title="linear test service")

    lifecycle = app.state.lifecycle
    app.state.batcher = lifecycle.batched(
        lambda xs: lifecycle.model.predict(xs),
        max_batch_size=settings.max_batch_size, max_wait_s=settings.batch_timeout_ms / 1000,
    )
    return app
