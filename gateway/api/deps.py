"""FastAPI dependencies of the storage routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from gateway.settings import GatewaySettings
from shared.http.errors import Unavailable
from storage.runtime import Storage


# async: FastAPI runs a plain `def` dependency in its thread pool, a thread hop on every request
async def get_storage(request: Request) -> Storage:
    storage = getattr(request.app.state, "storage", None)
    if storage is None:
        raise Unavailable("storage is not started (Postgres/Redis); check the gateway log")
    return storage


StorageDep = Annotated[Storage, Depends(get_storage)]


async def get_settings(request: Request) -> GatewaySettings:
    return request.app.state.settings


SettingsDep = Annotated[GatewaySettings, Depends(get_settings)]

