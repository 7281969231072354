"""A service on the kit whose answers are known exactly: y = 2x + 1 (nn.Linear, weight 2, bias 1).

Used by the kit's own tests and by the gateway's scheduler tests (with a settable load delay
and memory size, so budgets can be exercised without real models).
"""

from __future__ import annotations

import time
from typing import Any

import torch
from fastapi import FastAPI
from pydantic import BaseModel
from pydantic_settings import SettingsConfigDict
from starlette.concurrency import run_in_threadpool

from shared.config import BatchSettings, ImageInputSettings
from shared.imaging import decode_image_base64
from shared.kit.batching import Batch
from shared.kit.served_model import ServedModel
from shared.kit.service import LifecycleDep, create_service_app
from shared.kit.tasks import TaskRouter


class LinearSettings(ImageInputSettings, BatchSettings):
    model_config = SettingsConfigDict(env_prefix="LINEAR_", extra="ignore")
    name: str = "linear"
    load_delay_s: float = 0.0
    predict_delay_s: float = 0.0  # per batch, on the inference thread: lets a batcher's queue fill
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
        time.sleep(self.settings.predict_delay_s)
        with torch.no_grad():
            return self.linear(torch.tensor(xs).unsqueeze(1)).squeeze(1).tolist()


class PredictRequest(BaseModel):
    x: float
    hold_s: float = 0.0


class ImageRequest(BaseModel):
    image: str


router = TaskRouter()
PREDICT = Batch(LinearModel.predict, name="linear")


def hold(model: LinearModel, body: PredictRequest) -> list[float]:
    """The decode hook: waits `hold_s` while holding the model (what a slow decode does)."""
    time.sleep(body.hold_s)
    return [body.x]


@router.task("/v1/predict", decode=hold, batch=PREDICT)
def predict(model: LinearModel, body: PredictRequest, ys: list[float]) -> dict[str, float]:
    return {"y": ys[0]}


@router.post("/v1/image-size")
async def image_size(body: ImageRequest, lifecycle: LifecycleDep) -> dict[str, int]:
    """Decodes without the model (works while unloaded), off the event loop."""
    limit = lifecycle.model.settings.max_image_pixels
    image = await run_in_threadpool(decode_image_base64, body.image, max_pixels=limit)
    return {"width": image.width, "height": image.height}


def create_app() -> FastAPI:
    return create_service_app(LinearSettings(), LinearModel, [router], title="linear test service")
