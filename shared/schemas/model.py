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
    status: str = Field(default="ok", description="ok, or degraded while an inference runs past the service's limit.")
    service: str
    state: ModelState
    overdue: int = Field(default=0, description="Inferences running longer than the service's INFERENCE_LIMIT_S now.")


class DeviceUse(BaseModel):
    """What this process holds on its GPU as the driver (NVML) counts it, split by who holds it."""

    index: int = Field(description="NVML index of the device.")
    uuid: str = Field(description="The device's UUID (`GPU-…`), stable across reboots and CUDA_VISIBLE_DEVICES.")
    name: str
    total_bytes: int = Field(description="The device's memory.")
    free_bytes: int = Field(description="Free on the device now, all processes counted.")
    process_bytes: int | None = Field(
        description="This process's use (context + allocator + other libraries); None when NVML cannot attribute "
        "it (a container without the host's PID namespace).")
    context_bytes: int | None = Field(
        default=None, description="The CUDA context (and its kernels), measured when this process first touched "
        "the GPU; held until the process exits.")
    allocator_bytes: int = Field(default=0, description="Reserved by torch's caching allocator.")
    other_bytes: int | None = Field(
        default=None,
        description="The rest: libraries torch cannot see (CTranslate2, ONNX Runtime), cuBLAS workspaces.")


class Placement(BaseModel):
    """Which device a service's model sits on: the gateways keep one memory budget per device."""

    node: str = Field(description="The machine: MEDIAMESH_NODE, default the host name (the chart sets the node's).")
    device: str = Field(description="cpu, or cuda:<index> as this process numbers its GPUs.")
    uuid: str | None = Field(None, description="The GPU's UUID (`GPU-…`): the same whatever CUDA_VISIBLE_DEVICES says.")

    @property
    def key(self) -> str:
        """The device's name in the budget ledger and `/v1/models`: `<node>/<GPU UUID>`, or `<node>/cpu`."""
        return f"{self.node}/{self.uuid or self.device}"


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
    pid: int = Field(default=0, description="The service's process id: a new one after a restart.")
    unload_mode: str = Field(default="release", description="release: unload keeps the process (and its CUDA context); "
                             "restart: unload ends the process, which comes back with nothing on the GPU.")
    device_use: DeviceUse | None = Field(
        default=None, description="NVML's figures, where a GPU is present and this process uses it (or has).")
    overdue: int = Field(default=0, description="Inferences running longer than the service's INFERENCE_LIMIT_S now.")
    longest_inference_s: float | None = Field(
        default=None, description="How long the oldest running inference has run.")
    placement: Placement | None = Field(None, description="The device the model sits on (node, GPU).")


class LoadResult(BaseModel):
    name: str
    state: ModelState
    memory_bytes: int
    load_seconds: float | None = None
    already_loaded: bool = False
    device_bytes: int | None = Field(
        default=None, description="The process's whole use of the GPU (NVML), once loaded.")


class UnloadResult(BaseModel):
    name: str
    state: ModelState
    freed_bytes: int
    memory_bytes: int
    already_unloaded: bool = False
    device_bytes: int | None = Field(
        default=None, description="What the process still holds on the GPU (NVML): its context.")
    device_freed_bytes: int | None = Field(
        default=None, description="What the unload gave back to the GPU (NVML); for a restart, what the process "
        "held, given back when it exits.")
    restarting: bool = Field(
        default=False, description="unload mode restart: the process exits now and comes back empty.")
