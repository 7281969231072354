"""Which device a service's model sits on (`/v1/model`'s `placement`): node, CUDA index and GPU UUID.

Each GPU is named by the UUID NVML also uses, so two containers that both see "cuda:0" on
different GPUs are told apart, and two services on one GPU are grouped under one budget.
The answer must not initialise CUDA: the gateway polls `/v1/model` before the first load, and a
service that has not loaded a model must hold no CUDA context. So the UUID comes from NVML,
through CUDA_VISIBLE_DEVICES' numbering, until torch has initialised CUDA for a load.
"""

from __future__ import annotations

import functools
import logging
import os

import torch

from shared.kit.nvml import nvml, nvml_uuid
from shared.schemas.model import Placement

log = logging.getLogger("mediamesh.placement")


def placement(device: torch.device, node: str) -> Placement:
    if device.type != "cuda":
        return Placement(node=node, device=device.type, uuid=None)
    if device.index is not None:
        index = device.index
    else:  # "cuda" alone: torch's current device, which is 0 unless CUDA is up and was told otherwise
        index = torch.cuda.current_device() if torch.cuda.is_initialized() else 0
    return Placement(node=node, device=f"cuda:{index}", uuid=gpu_uuid(index))


def gpu_uuid(index: int) -> str | None:
    if torch.cuda.is_initialized():
        return _torch_uuid(index)
    return _visible_uuid(index, os.environ.get("CUDA_VISIBLE_DEVICES"))


@functools.cache
def _torch_uuid(index: int) -> str | None:
    try:
        return nvml_uuid(str(torch.cuda.get_device_properties(index).uuid))
    except (RuntimeError, AttributeError, AssertionError) as exc:  # no driver, an index out of range
        log.warning("could not read the UUID of cuda:%d: %s", index, exc)
        return None


def _visible_uuid(index: int, visible: str | None) -> str | None:
    """The UUID of CUDA's device `index` as NVML names it, without touching CUDA."""
    if visible is not None:
        entries = [entry.strip() for entry in visible.split(",") if entry.strip()]
        if index >= len(entries):
            return None
        entry = entries[index]
        if entry.startswith(("GPU-", "MIG-")):
            return entry
        if not entry.isdigit():
            return None
        index = int(entry)
    found = nvml().device(index)
    return found.uuid if found else None
