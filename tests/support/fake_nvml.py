"""A fake NVML with pynvml's call signatures, over a GPU card simulated in a JSON file.

CI has no GPU. `FakePynvml` answers the calls `shared/kit/nvml.py` makes exactly as pynvml
does (same names, arguments, return shapes, `NVMLError` subclasses); the card it describes is a
file that every process of a test shares, so that a service process and the test see one card.
The driver frees a process's memory when it exits: a dead PID drops out of the listing.

The figures are plausible for an RTX 3050 6 GB (6144 MiB) but were NOT measured on one.

`python -m tests.support.fake_nvml CARD -- uvicorn ARGS` runs a service whose kit sees this card
and "uses" it as a CUDA process would: its first load creates a context of `CONTEXT_BYTES`,
its weights and the libraries' own allocations add to it, an unload in release mode leaves the
context behind, and only the process's exit gives it back.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import runpy
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pynvml

MIB = 1024 * 1024
TOTAL_BYTES = 6144 * MIB  # an RTX 3050 6 GB as nvidia-smi shows it
DRIVER_BYTES = 90 * MIB  # counted as used with no process on the card (not measured)
CONTEXT_BYTES = 262 * MIB  # one process's CUDA context (not measured)
OTHER_LIBRARY_BYTES = 48 * MIB  # what a loaded model's libraries hold beside torch (not measured)
UUID = "GPU-3050fake-0000-4000-8000-000000000006"
NAME = "NVIDIA GeForce RTX 3050 6GB Laptop GPU (fake)"


@dataclass(frozen=True)
class FakeHandle:
    index: int


class FakeCard:
    """The card's state in a file: PID → bytes, plus bytes held by processes outside the mesh."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.exists():
            self._write({"processes": {}, "foreign_bytes": 0})

    def _read(self) -> dict[str, Any]:
        state: dict[str, Any] = json.loads(self.path.read_text())
        return state

    def _write(self, state: dict[str, Any]) -> None:
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(state))
        tmp.replace(self.path)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        with open(self.path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            state = self._read()
            yield state
            self._write(state)

    def set_process(self, pid: int, used_bytes: int) -> None:
        with self._locked() as state:
            state["processes"][str(pid)] = used_bytes

    def set_foreign(self, used_bytes: int) -> None:
        """Another program (a game, a notebook) using the card: only the device's free memory shows it."""
        with self._locked() as state:
            state["foreign_bytes"] = used_bytes

    def processes(self) -> dict[int, int]:
        listed = {int(pid): used for pid, used in self._read()["processes"].items()}
        return {pid: used for pid, used in listed.items() if _alive(pid)}

    def used_bytes(self) -> int:
        return DRIVER_BYTES + sum(self.processes().values()) + int(self._read()["foreign_bytes"])


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[-1][:1] != "Z"  # a zombie has exited: the driver freed its memory
    except OSError:
        return False


class FakePynvml:
    """The subset of pynvml that shared/kit/nvml.py calls, with pynvml's signatures and errors."""

    NVMLError = pynvml.NVMLError

    def __init__(self, card: FakeCard, device_count: int = 1) -> None:
        self.card = card
        self.count = device_count
        self.initialised = False

    def nvmlInit(self) -> None:
        self.initialised = True

    def nvmlShutdown(self) -> None:
        self.initialised = False

    def _check(self) -> None:
        if not self.initialised:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_UNINITIALIZED)

    def nvmlDeviceGetCount(self) -> int:
        self._check()
        return self.count

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeHandle:
        self._check()
        if not 0 <= index < self.count:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return FakeHandle(index)

    def nvmlDeviceGetHandleByUUID(self, uuid: str | bytes) -> FakeHandle:
        self._check()
        text = uuid.decode() if isinstance(uuid, bytes) else uuid
        for index in range(self.count):
            if self._uuid(index) == text:
                return FakeHandle(index)
        raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_FOUND)

    def _uuid(self, index: int) -> str:
        return UUID if index == 0 else f"{UUID[:-2]}{index:02d}"

    def nvmlDeviceGetIndex(self, handle: FakeHandle) -> int:
        return handle.index

    def nvmlDeviceGetUUID(self, handle: FakeHandle) -> str:
        return self._uuid(handle.index)

    def nvmlDeviceGetName(self, handle: FakeHandle) -> str:
        return NAME

    def nvmlDeviceGetMemoryInfo(self, handle: FakeHandle, version: int | None = None) -> pynvml.c_nvmlMemory_t:
        self._check()
        used = self.card.used_bytes() if handle.index == 0 else DRIVER_BYTES
        return pynvml.c_nvmlMemory_t(total=TOTAL_BYTES, free=TOTAL_BYTES - used, used=used)

    def nvmlDeviceGetComputeRunningProcesses(self, handle: FakeHandle) -> list[Any]:
        self._check()
        listed = self.card.processes() if handle.index == 0 else {}
        return [pynvml.nvmlFriendlyObject({"pid": pid, "usedGpuMemory": used, "gpuInstanceId": 0xFFFFFFFF,
                                           "computeInstanceId": 0xFFFFFFFF}) for pid, used in listed.items()]


def install(card_path: Path) -> FakeCard:
    """This process's kit sees the fake card, and its model loads "use" the card as CUDA would."""
    from shared.kit import device_use, lifecycle, nvml

    card = FakeCard(card_path)
    nvml.use_library(FakePynvml(card))
    pid = os.getpid()

    def init_cuda(device: object) -> None:  # the context appears on first touch, as CUDA's does
        card.set_process(pid, CONTEXT_BYTES)

    device_use.init_cuda = init_cuda
    load, drop = lifecycle.ModelLifecycle._read_and_load, lifecycle.ModelLifecycle._drop_weights

    def read_and_load(self: lifecycle.ModelLifecycle[Any]) -> None:
        load(self)
        card.set_process(pid, CONTEXT_BYTES + OTHER_LIBRARY_BYTES + self.model.measure_bytes()[0])

    def drop_weights(self: lifecycle.ModelLifecycle[Any]) -> None:
        drop(self)
        card.set_process(pid, CONTEXT_BYTES)  # the context stays until the process exits

    lifecycle.ModelLifecycle._read_and_load = read_and_load  # type: ignore[method-assign]
    lifecycle.ModelLifecycle._drop_weights = drop_weights  # type: ignore[method-assign]
    return card


def main() -> None:
    card_path, separator, module, *args = sys.argv[1:]
    if separator != "--":
        raise SystemExit("usage: python -m tests.support.fake_nvml CARD -- MODULE ARGS...")
    install(Path(card_path))
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
