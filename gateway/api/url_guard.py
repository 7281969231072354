"""NUL bytes are refused in the URL, before any route runs: Postgres cannot store them in text, and no
path segment or query value of the mesh has a use for one (issue 11: a `%00` in a search query was a 500)."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Receive, Scope, Send


class RejectNulInUrl:
    """422 for a request whose path or query string holds a NUL byte (raw or as `%00`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _has_nul(scope):
            body = json.dumps({"detail": "the URL holds a NUL byte (%00) in its path or query; remove it"}).encode()
            await send({"type": "http.response.start", "status": 422,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


def _has_nul(scope: Scope) -> bool:
    query: bytes = scope.get("query_string", b"")
    return "\x00" in scope.get("path", "") or b"\x00" in query or b"%00" in query
