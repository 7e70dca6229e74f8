"""Key pairs for departments' principals: the private key stays with the caller, the public JWK is
what the platform admin registers."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm


def generate_key(private_key_file: Path, algorithm: str = "ES256") -> dict[str, Any]:
    """Write a new private key (PEM, mode 0600) and return its public JWK."""
    if algorithm == "ES256":
        private_key: Any = ec.generate_private_key(ec.SECP256R1())
    elif algorithm == "RS256":
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    else:
        raise ValueError("algorithm must be ES256 or RS256")
    pem = private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    private_key_file.parent.mkdir(parents=True, exist_ok=True)
    write_secret(private_key_file, pem)
    return public_jwk(private_key)


def write_secret(path: Path, data: bytes) -> None:
    """Write `data` readable by its owner only, from the first byte: a file that already exists with a
    wider mode is narrowed before anything secret goes into it."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)


def load_private_key(private_key_file: Path) -> Any:
    return serialization.load_pem_private_key(private_key_file.read_bytes(), password=None)


def public_jwk(private_key: Any) -> dict[str, Any]:
    public = private_key.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        jwk = json.loads(ECAlgorithm.to_jwk(public))
        jwk["alg"] = "ES256"
    else:
        jwk = json.loads(RSAAlgorithm.to_jwk(public))
        jwk["alg"] = "RS256"
    return dict(jwk)


# RFC 7638's members per key type: the thumbprint is what the platform names a key by when the JWK
# carries no "kid", so a principal can work out its key id from its own private key.
_THUMBPRINT_MEMBERS = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n")}


def key_id(private_key_file: Path) -> str:
    """The key id the platform gives this key's public half (its RFC 7638 thumbprint)."""
    jwk = public_jwk(load_private_key(private_key_file))
    canonical = json.dumps({m: jwk[m] for m in _THUMBPRINT_MEMBERS[jwk["kty"]]}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()
