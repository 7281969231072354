"""The budget against the card: what NVML says is used on each GPU, and what the budget accounts for there.

The services report their device's total and free memory with their own use (`/v1/model`'s
`device_use`); the freshest report of each device is compared with the budget's holdings of
the services on it. A gap wider than the margin means something the budget does not see: another
program on the card, a service outside the gateway, or a figure that is off.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from gateway.scheduler.slots import ModelSlot, mb
from shared.schemas.gateway import DeviceCheck
from shared.schemas.model import ModelInfo


@dataclass(frozen=True)
class Reading:
    """One service's last `/v1/model` and the budget's slot for it."""

    info: ModelInfo
    slot: ModelSlot
    checked_at: float  # a timestamp: the freshest reading of a device gives its free memory


def reconcile(readings: Iterable[Reading], margin_bytes: int) -> list[DeviceCheck]:
    by_device: dict[str, list[Reading]] = {}
    for reading in readings:
        if reading.info.device_use is not None:
            by_device.setdefault(reading.info.device_use.uuid, []).append(reading)
    return [_check(uuid, group, margin_bytes) for uuid, group in sorted(by_device.items())]


def _check(uuid: str, group: list[Reading], margin_bytes: int) -> DeviceCheck:
    freshest = max(group, key=lambda r: r.checked_at).info.device_use
    assert freshest is not None
    used = freshest.total_bytes - freshest.free_bytes
    accounted = sum(r.slot.held_bytes for r in group)
    gap = used - accounted
    agrees = abs(gap) <= margin_bytes
    message = None
    if not agrees and gap > 0:
        message = (f"{freshest.name} ({uuid}) has {mb(used)} in use but the budget accounts for {mb(accounted)}: "
                   f"{mb(gap)} held by something the gateway does not manage (another program on the card?); "
                   "loads may fail though the budget says they fit")
    elif not agrees:
        message = (f"{freshest.name} ({uuid}) has {mb(used)} in use but the budget accounts for {mb(accounted)}, "
                   f"{mb(-gap)} more than the card holds: the budget refuses loads that would fit")
    return DeviceCheck(uuid=uuid, name=freshest.name, total_bytes=freshest.total_bytes,
                       free_bytes=freshest.free_bytes, used_bytes=used, accounted_bytes=accounted,
                       unaccounted_bytes=gap, agrees=agrees, message=message)
