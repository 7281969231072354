"""What a call may send to a service: the path and query string, checked before either becomes a URL.

The proxy's path arrives percent-decoded, so `/v1/services/clip/%16…` or `%0d%0a` would otherwise
reach the upstream request line raw — a 500 or a dropped connection at best, a forged header at
worst (issue 11). Control characters and `..` segments are refused with a 400; anything else
printable (spaces, non-ASCII) is percent-encoded again.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from shared.http.errors import ServiceError

# RFC 3986 `pchar` plus "/", without "%": the decoded path is encoded again as a whole
PATH_SAFE = "/-._~!$&'()*+,;=:@"
QUERY = re.compile(r"[!-~]*")  # printable ASCII without space: a query string as a client percent-encodes it
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class BadTarget(ServiceError):
    status_code = 400


def upstream_path(path: str) -> str:
    """`path` made safe for a request line, or a 400 that says what is wrong with it."""
    if CONTROL.search(path):
        raise BadTarget(f"the service path {path!r} contains control characters; "
                        "send a plain path such as v1/embed/text")
    if ".." in path.split("/"):
        raise BadTarget(f"the service path {path!r} contains a '..' segment; name the endpoint directly")
    return quote(path.lstrip("/"), safe=PATH_SAFE)


def upstream_query(query: str) -> str:
    """A raw query string passed on only if it is printable ASCII (control characters, spaces: 400)."""
    if not QUERY.fullmatch(query):
        raise BadTarget("the query string contains spaces, control or non-ASCII characters; percent-encode them")
    return query
