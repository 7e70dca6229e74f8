"""Public keys as the directory accepts them: EC P-256 for ES256, RSA of 2048 bits or more for RS256."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from functions.core.errors import InvalidRequest
from functions.identity.models import KeyAlgorithm

_PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}
_THUMBPRINT_MEMBERS = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n")}


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 JWK thumbprint: the default key id."""
    members = _THUMBPRINT_MEMBERS[jwk["kty"]]
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def key_fingerprint(jwk: dict[str, Any]) -> str:
    """SHA-256 of the public key itself (its DER SubjectPublicKeyInfo): the same key whatever `kid`
    or number encoding a caller sends, unlike the key id, which a caller may choose."""
    import jwt
    from cryptography.hazmat.primitives import serialization

    try:
        key = jwt.PyJWK(dict(jwk)).key
    except (
        jwt.exceptions.PyJWKError,
        jwt.exceptions.InvalidKeyError,
        ValueError,
    ):  # not a key cryptography reads (validated keys always are): its members
        return thumbprint(jwk)
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def validate_public_jwk(jwk: dict[str, Any]) -> tuple[str, KeyAlgorithm, dict[str, Any]]:
    """Check a submitted JWK and return (kid, alg, the JWK as stored). Raises InvalidRequest."""
    if _PRIVATE_MEMBERS & set(jwk):
        raise InvalidRequest("The key contains private key material; register the public key only")
    kty = jwk.get("kty")
    alg: KeyAlgorithm
    if kty == "EC":
        if jwk.get("crv") != "P-256":
            raise InvalidRequest("EC keys must use the P-256 curve (ES256)")
        alg = "ES256"
    elif kty == "RSA":
        alg = "RS256"
    else:
        raise InvalidRequest("Keys must be EC P-256 (ES256) or RSA (RS256)")
    if jwk.get("alg") not in (None, alg):
        raise InvalidRequest(f"A {kty} key is used with {alg}, not {jwk.get('alg')}")
    try:
        import jwt  # only the admin path pays for the cryptography import

        key = jwt.PyJWK(dict(jwk, alg=alg)).key
    except Exception as error:
        raise InvalidRequest(f"The key could not be read: {type(error).__name__}") from None
    if kty == "RSA" and key.key_size < 2048:
        raise InvalidRequest("RSA keys must be at least 2048 bits")
    members = _THUMBPRINT_MEMBERS[kty]
    stored = {m: jwk[m] for m in members}
    kid = str(jwk.get("kid") or thumbprint(stored))
    stored.update(kid=kid, alg=alg, use="sig")
    return kid, alg, stored
