"""The GPU as NVML sees it: each device's total and free memory, and what each process holds on it.

The one place that imports `pynvml` (package `nvidia-ml-py`): the service kit reports a process's
real device use with it (CUDA context, torch's allocator and libraries torch cannot see, such as
CTranslate2 and ONNX Runtime), and the scheduler names devices by their UUID. Without a driver
(a CPU machine, CI) every query answers None, so callers fall back to the allocator's figures.

NVML lists processes by their PID in the host's namespace: a service in a container finds
itself only when it shares the host's PID namespace (compose: `pid: host`); otherwise
`process_bytes` answers None ("not attributable") rather than a wrong 0.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from types import ModuleType
from typing import Any

log = logging.getLogger("mediamesh.nvml")


@dataclass(frozen=True)
class DeviceMemory:
    """One device's memory as the driver counts it (every process, every library)."""

    index: int
    uuid: str
    name: str
    total_bytes: int
    free_bytes: int
    used_bytes: int


class Nvml:
    """A thin, thread-safe view of NVML; `library` is the `pynvml` module or a fake with its signatures."""

    def __init__(self, library: ModuleType | Any | None = None) -> None:
        self._library = library
        self._ready: bool | None = None
        self._lock = threading.Lock()
        self.error: str | None = None  # why NVML is not available, for /v1/model and logs

    def available(self) -> bool:
        with self._lock:
            if self._ready is None:
                self._ready = self._init()
            return self._ready

    def _init(self) -> bool:
        try:
            if self._library is None:
                import pynvml

                self._library = pynvml
            self._library.nvmlInit()
        except Exception as exc:  # ImportError, NVMLError_LibraryNotFound, NVMLError_DriverNotLoaded...
            self.error = f"{type(exc).__name__}: {exc}"
            log.debug("NVML is not available: %s", self.error)
            return False
        return True

    @property
    def lib(self) -> Any:
        return self._library

    def device_count(self) -> int:
        if not self.available():
            return 0
        return int(self.lib.nvmlDeviceGetCount())

    def _handle(self, device: int | str) -> Any:
        if isinstance(device, str):
            return self.lib.nvmlDeviceGetHandleByUUID(nvml_uuid(device))
        return self.lib.nvmlDeviceGetHandleByIndex(device)

    def device(self, device: int | str = 0) -> DeviceMemory | None:
        """The device by NVML index or UUID (as torch or NVML spells it); None without NVML."""
        if not self.available():
            return None
        try:
            handle = self._handle(device)
            memory = self.lib.nvmlDeviceGetMemoryInfo(handle)
            index = device if isinstance(device, int) else int(self.lib.nvmlDeviceGetIndex(handle))
            return DeviceMemory(
                index=index, uuid=_text(self.lib.nvmlDeviceGetUUID(handle)),
                name=_text(self.lib.nvmlDeviceGetName(handle)),
                total_bytes=int(memory.total), free_bytes=int(memory.free), used_bytes=int(memory.used),
            )
        except Exception as exc:  # NVMLError: a device that vanished, an index out of range
            log.warning("NVML could not read device %s: %s", device, exc)
            return None

    def devices(self) -> list[DeviceMemory]:
        found = (self.device(i) for i in range(self.device_count()))
        return [d for d in found if d is not None]

    def processes(self, device: int | str = 0) -> dict[int, int] | None:
        """PID → bytes each compute process holds on the device; None without NVML."""
        if not self.available():
            return None
        try:
            running = self.lib.nvmlDeviceGetComputeRunningProcesses(self._handle(device))
        except Exception as exc:
            log.warning("NVML could not list the processes on device %s: %s", device, exc)
            return None
        # usedGpuMemory is None where the driver cannot say (Windows WDDM): count it as 0
        return {int(p.pid): int(p.usedGpuMemory or 0) for p in running}

    def process_bytes(self, device: int | str = 0, pid: int | None = None) -> int | None:
        """What `pid` (default: this process) holds on the device: 0 when it has no context there.

        None when NVML is missing, or when this process is not listed while NVML lists others
        and this process cannot see the host's PIDs (a container without `pid: host`)."""
        listed = self.processes(device)
        if listed is None:
            return None
        pid = os.getpid() if pid is None else pid
        if pid in listed:
            return listed[pid]
        if pid == os.getpid() and listed and not _sees_host_pids(listed):
            return None
        return 0


def nvml_uuid(uuid: str) -> str:
    """NVML spells a UUID `GPU-…`; torch's `get_device_properties().uuid` leaves the prefix out."""
    return uuid if uuid.startswith(("GPU-", "MIG-")) else f"GPU-{uuid}"


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _sees_host_pids(listed: dict[int, int]) -> bool:
    """Some listed PID exists here: we share the PID namespace NVML reports in."""
    return any(os.path.exists(f"/proc/{pid}") for pid in listed)


_shared = Nvml()


def nvml() -> Nvml:
    """The process's NVML view (initialised on first use)."""
    return _shared


def use_library(library: ModuleType | Any | None) -> Nvml:
    """Replace the process's NVML view: tests pass a fake with pynvml's signatures; None: real pynvml."""
    global _shared
    _shared = Nvml(library)
    return _shared
