"""The web app: plain HTML, CSS and ES modules served by the gateway itself (no build step, no CDN).

`/` is the page; its assets live under `/ui/`. Every view is drawn in the browser from the public API,
so the app can do nothing a client of the API cannot. The pages and assets hold no data and no secret:
they stay reachable without the API key, which the app asks for and then sends on its API calls.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"
ASSETS_PREFIX = "/ui"
# Only the gateway itself: a script, style, picture or connection to any other host is refused by the browser.
CONTENT_SECURITY_POLICY = ("default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; "
                           "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")


def install_web(app: FastAPI) -> frozenset[str]:
    """Serve the app at `/` and its assets under `/ui/`; return the paths that need no API key."""

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html", headers={
            "Content-Security-Policy": CONTENT_SECURITY_POLICY, "Cache-Control": "no-cache"})

    app.mount(ASSETS_PREFIX, StaticFiles(directory=STATIC), name="ui")
    assets = (f"{ASSETS_PREFIX}/{p.relative_to(STATIC).as_posix()}" for p in STATIC.rglob("*") if p.is_file())
    return frozenset({"/", *assets})
