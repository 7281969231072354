"""A service process's GPU use as the driver counts it: CUDA context + torch's allocator + the rest.

torch's allocator sees only its own tensors. The driver (NVML) also counts the CUDA context each
process creates on first touch (kept until the process exits, whatever `empty_cache` does) and
what CTranslate2 or ONNX Runtime allocate. The context is measured once, right after CUDA is
initialised and before any weights exist; the rest is what remains of NVML's figure.
"""

from __future__ import annotations

import torch

from shared.kit.nvml import nvml
from shared.schemas.model import DeviceUse


def init_cuda(device: torch.device) -> None:
    """Create this process's CUDA context on `device` (what the first CUDA tensor would do); CPU: nothing."""
    if device.type != "cuda":
        return
    torch.cuda.init()
    if device.index is not None:
        torch.cuda.set_device(device)
    torch.empty(1, device=device)  # cuBLAS and kernels load lazily; this makes the context itself exist


class DeviceMeter:
    """Measures one service process on its GPU; every figure is None where NVML is not available."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.context_bytes: int | None = None

    def before_first_load(self) -> None:
        """On the inference thread, before `load`: create the context and measure it (once per process)."""
        if self.context_bytes is not None:
            return
        init_cuda(self.device)
        use = self.measure()
        self.context_bytes = use.process_bytes if use is not None else None

    def _device_key(self) -> int | str | None:
        """The NVML device this process uses: its CUDA device by UUID, else any device that lists it."""
        meter = nvml()
        if self.device.type == "cuda":
            # before CUDA is initialised the process holds nothing on the card; asking torch would initialise it
            if not torch.cuda.is_initialized():
                return None
            return str(torch.cuda.get_device_properties(self.device).uuid)
        for index in range(meter.device_count()):
            if meter.process_bytes(index):
                return index
        return None

    def measure(self) -> DeviceUse | None:
        meter = nvml()
        if not meter.available():
            return None
        key = self._device_key()
        device = meter.device(key) if key is not None else None
        if device is None:
            return None  # a CPU service that never touched a GPU
        process = meter.process_bytes(key if key is not None else device.index)
        allocator = torch.cuda.memory_reserved(self.device) if self.device.type == "cuda" else 0
        other = None if process is None else max(process - (self.context_bytes or 0) - allocator, 0)
        return DeviceUse(
            index=device.index, uuid=device.uuid, name=device.name, total_bytes=device.total_bytes,
            free_bytes=device.free_bytes, process_bytes=process, context_bytes=self.context_bytes,
            allocator_bytes=allocator, other_bytes=other,
        )
