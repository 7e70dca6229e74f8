"""How a signed request is bound to its HTTP request (the wire protocol; the SDK implements the same).

Claims: `htm` the method, `htu` the canonical target (path + sorted query), `bsh` the base64url
SHA-256 of the body bytes (of the empty string when there is no body).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from urllib.parse import quote, unquote, urlencode

TOKEN_TYPE = "cityshare-request+jwt"
BINDING_CLAIMS = ("htm", "htu", "bsh")


def canonical_target(path: str, query: Mapping[str, Sequence[str]] | None = None) -> str:
    """Path (percent-encoding normalised) plus the query's pairs sorted and RFC 3986 encoded."""
    pairs = sorted((name, value) for name, values in (query or {}).items() for value in values)
    canonical_path = quote(unquote(path), safe="/")
    return canonical_path + ("?" + urlencode(pairs, quote_via=quote, safe="") if pairs else "")


def body_digest(body: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(body).digest()).rstrip(b"=").decode()
