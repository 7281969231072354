"""The lifecycle contract every model service speaks (`/health`, `/v1/model`, load/unload)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field


class ModelState(StrEnum):
    unloaded = "unloaded"
    loading = "loading"
    loaded = "loaded"
    error = "error"


class Health(BaseModel):
    status: str = "ok"
    service: str
    state: ModelState


class ModelInfo(BaseModel):
    name: str
    model_id: str = Field(description="Folder, file or hub id the model loads from.")
    state: ModelState
    error: str | None = None
    tiny: bool = Field(False, description="True for a random-weight test model built offline.")
    device: str
    dtype: str | None = None
    quantization: str = "none"
    memory_bytes: int = Field(0, description="Measured now: CUDA allocated bytes, or CPU parameter+buffer bytes.")
    memory_reserved_bytes: int = Field(0, description="CUDA bytes reserved by torch's caching allocator.")
    footprint_bytes: int | None = Field(None, description="Measured after the last load; kept after unload.")
    estimated_bytes: int = Field(0, description="Estimate from the weight files, before the first load.")
    load_seconds: float | None = None
    loaded_at: datetime | None = None
    last_used: datetime | None = None
    in_flight: int = 0
    loads: int = 0
    details: dict[str, object] = Field(default_factory=dict)


class LoadResult(BaseModel):
    name: str
    state: ModelState
    memory_bytes: int
    load_seconds: float | None = None
    already_loaded: bool = False


class UnloadResult(BaseModel):
    name: str
    state: ModelState
    freed_bytes: int
    memory_bytes: int
    already_unloaded: bool = False
