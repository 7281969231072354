"""Which device a service's model sits on (`/v1/model`'s `placement`): node, CUDA index and GPU UUID.

The UUID comes from torch, which numbers GPUs as CUDA_VISIBLE_DEVICES shows them but names
each by the UUID NVML also uses, so two containers that both see "cuda:0" on different GPUs are
told apart, and two services on one GPU are grouped under one budget.
"""

from __future__ import annotations

import functools
import logging

import torch

from shared.kit.nvml import nvml_uuid
from shared.schemas.model import Placement

log = logging.getLogger("mediamesh.placement")


def placement(device: torch.device, node: str) -> Placement:
    if device.type != "cuda":
        return Placement(node=node, device=device.type, uuid=None)
    index = device.index if device.index is not None else torch.cuda.current_device()
    return Placement(node=node, device=f"cuda:{index}", uuid=_gpu_uuid(index))


@functools.cache
def _gpu_uuid(index: int) -> str | None:
    try:
        return nvml_uuid(str(torch.cuda.get_device_properties(index).uuid))
    except (RuntimeError, AttributeError, AssertionError) as exc:  # no driver, an index out of range
        log.warning("could not read the UUID of cuda:%d: %s", index, exc)
        return None
