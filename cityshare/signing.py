"""Signing requests: an ES256/RS256 JWT bound to the request's method, target and body.

Any HTTP client can do the same with plain PyJWT; see README.md ("Signing without the SDK").
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

TOKEN_TYPE = "cityshare-request+jwt"
TOKEN_LIFETIME_SECONDS = 60


def request_target(url_path_and_query: str) -> str:
    """The `htu` claim: the path relative to the API root, with the query sorted and RFC 3986 encoded."""
    parts = urlsplit(url_path_and_query)
    query = urlencode(sorted(parse_qsl(parts.query, keep_blank_values=True)), quote_via=quote, safe="")
    return quote(unquote(parts.path), safe="/") + (f"?{query}" if query else "")


def body_sha256(body: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(body).digest()).rstrip(b"=").decode()


class RequestSigner:
    def __init__(self, department: str, principal: str, private_key: Any, kid: str, audience: str) -> None:
        self.department = department
        self.principal = principal
        self._key = private_key
        self._kid = kid
        self._audience = audience
        self._algorithm = "RS256" if isinstance(private_key, rsa.RSAPrivateKey) else "ES256"

    @property
    def kid(self) -> str:
        return self._kid

    def token(self, method: str, target: str, body: bytes) -> str:
        now = int(time.time())
        claims = {
            "iss": self.department,
            "sub": self.principal,
            "aud": self._audience,
            "iat": now,
            "exp": now + TOKEN_LIFETIME_SECONDS,
            "jti": secrets.token_urlsafe(24),
            "htm": method.upper(),
            "htu": target,
            "bsh": body_sha256(body),
        }
        return jwt.encode(claims, self._key, algorithm=self._algorithm, headers={"kid": self._kid, "typ": TOKEN_TYPE})


class SignedRequestAuth(requests.auth.AuthBase):
    """Signs any `requests` call as CityShare expects, after the request is prepared (so the body
    hash is over the exact bytes sent): `requests.get(url, auth=SignedRequestAuth(signer, endpoint))`.
    `endpoint` is the API root; the signed target is the path relative to it."""

    def __init__(self, signer: RequestSigner, endpoint: str) -> None:
        self._signer = signer
        self._root = urlsplit(endpoint).path.rstrip("/")

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        parts = urlsplit(request.url or "")
        path = parts.path[len(self._root) :] if self._root and parts.path.startswith(self._root) else parts.path
        body = request.body or b""
        data = body.encode() if isinstance(body, str) else bytes(body)
        target = request_target(path + (f"?{parts.query}" if parts.query else ""))
        request.headers["Authorization"] = f"Bearer {self._signer.token(request.method or 'GET', target, data)}"
        return request
