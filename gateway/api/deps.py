"""FastAPI dependencies of the storage routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from gateway.settings import GatewaySettings
from shared.http.errors import Unavailable
from storage.runtime import Storage


def get_storage(request: Request) -> Storage:
    storage = getattr(request.app.state, "storage", None)
    if storage is None:
        raise Unavailable("storage is not started (Postgres/Redis); check the gateway log")
    return storage


StorageDep = Annotated[Storage, Depends(get_storage)]


def get_settings(request: Request) -> GatewaySettings:
    return request.app.state.settings


SettingsDep = Annotated[GatewaySettings, Depends(get_settings)]

