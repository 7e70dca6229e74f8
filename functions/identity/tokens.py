"""Verification of a signed request token. Every failure raises Unauthenticated with a reason code
(audited; the caller only ever sees a generic 401)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import jwt

from functions.core.errors import Unauthenticated
from functions.core.settings import Settings
from functions.identity.binding import TOKEN_TYPE
from functions.identity.directory import DirectoryRepository
from functions.identity.models import Caller
from functions.identity.nonces import NonceStore

ALLOWED_ALGORITHMS = ("ES256", "RS256")
REQUIRED_CLAIMS = ["iss", "sub", "aud", "iat", "exp", "jti", "htm", "htu", "bsh"]

_ERROR_REASONS: tuple[tuple[type[Exception], str], ...] = (
    (jwt.ExpiredSignatureError, "token_expired"),
    (jwt.ImmatureSignatureError, "token_not_yet_valid"),
    (jwt.InvalidAudienceError, "wrong_audience"),
    (jwt.InvalidIssuerError, "wrong_issuer"),
    (jwt.MissingRequiredClaimError, "missing_claim"),
    (jwt.InvalidAlgorithmError, "unsupported_algorithm"),
    (jwt.InvalidSignatureError, "invalid_signature"),
)


class TokenVerifier:
    def __init__(
        self,
        settings: Settings,
        directory: DirectoryRepository,
        nonces: NonceStore,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._directory = directory
        self._nonces = nonces
        self._clock = clock
        self._key_cache: dict[str, Any] = {}

    def verify(self, token: str, method: str, target: str) -> Caller:
        if len(token) > self._settings.max_token_bytes:
            raise Unauthenticated("token_too_large")
        header, unverified = _peek(token)
        if header.get("alg") not in ALLOWED_ALGORITHMS:
            raise Unauthenticated("unsupported_algorithm")
        if header.get("typ") != TOKEN_TYPE:
            raise Unauthenticated("wrong_token_type")
        kid, issuer, subject = header.get("kid"), unverified.get("iss"), unverified.get("sub")
        if not all(isinstance(v, str) and 0 < len(v) <= 128 for v in (kid, issuer, subject)):
            raise Unauthenticated("malformed_token")
        signer = self._directory.find_signer(str(issuer), str(subject), str(kid))
        if signer.department is None:
            raise Unauthenticated("unknown_department")
        if signer.key is None or signer.key.status != "active" or signer.key.principal_id != subject:
            raise Unauthenticated("unknown_key")
        if signer.key.alg != header["alg"]:
            raise Unauthenticated("unsupported_algorithm")
        if signer.principal is None or signer.principal.status != "active":
            raise Unauthenticated("unknown_principal")
        claims = self._decode(token, signer.key.alg, signer.key.jwk, str(issuer))
        if not isinstance(claims["aud"], str):
            raise Unauthenticated("wrong_audience")  # one deployment per token: a list of audiences is refused
        self._check_lifetime(claims)
        if claims["htm"] != method.upper() or claims["htu"] != target:
            raise Unauthenticated("request_mismatch")
        jti, body_sha256 = claims["jti"], claims["bsh"]
        if not (isinstance(jti, str) and 16 <= len(jti) <= 128) or not (isinstance(body_sha256, str) and len(body_sha256) == 43):
            raise Unauthenticated("malformed_token")
        # Last: only a token that is otherwise valid may consume its jti.
        if not self._nonces.use_once(f"{issuer}#{jti}", int(claims["exp"]), int(self._clock()), signer.principal.principal_id):
            raise Unauthenticated("replayed_token")
        return Caller(
            department_id=signer.department.department_id,
            principal_id=signer.principal.principal_id,
            roles=tuple(signer.principal.roles),
            # A suspended department still authenticates; the policies' explicit deny refuses it.
            department_status=signer.department.status,
            jti=jti,
            body_sha256=body_sha256,
            usage_key=signer.department.usage_key,
        )

    def _decode(self, token: str, alg: str, jwk: dict[str, Any], issuer: str) -> dict[str, Any]:
        cache_key = json.dumps(jwk, sort_keys=True)
        key = self._key_cache.get(cache_key)
        if key is None:
            key = self._key_cache[cache_key] = jwt.PyJWK(jwk, algorithm=alg).key
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=[alg],
                audience=self._settings.audience,
                issuer=issuer,
                # Time claims are checked below against the verifier's own clock.
                options={"require": REQUIRED_CLAIMS, "verify_exp": False, "verify_iat": False, "verify_nbf": False},
            )
        except jwt.PyJWTError as error:
            for error_type, reason in _ERROR_REASONS:
                if isinstance(error, error_type):
                    raise Unauthenticated(reason) from None
            raise Unauthenticated("invalid_token") from None
        return claims

    def _check_lifetime(self, claims: dict[str, Any]) -> None:
        issued, expires, not_before = claims["iat"], claims["exp"], claims.get("nbf", claims["iat"])
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (issued, expires, not_before)):
            raise Unauthenticated("malformed_token")
        now, skew = self._clock(), self._settings.clock_skew_seconds
        if expires <= now - skew:
            raise Unauthenticated("token_expired")
        if issued > now + skew or not_before > now + skew:
            raise Unauthenticated("token_not_yet_valid")
        if expires - issued > self._settings.max_token_lifetime_seconds:
            raise Unauthenticated("token_lifetime_too_long")


def _peek(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims before verification: only used to find the key to verify with."""
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise Unauthenticated("malformed_token") from None
    if not isinstance(claims, dict):
        raise Unauthenticated("malformed_token")
    return header, claims


def claimed_identity(token: str) -> tuple[str, str]:
    """The department and principal a refused token claims to be (unverified; for the audit only)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return "unknown", "unknown"
    department, principal = claims.get("iss"), claims.get("sub")
    return (
        department[:64] if isinstance(department, str) and department else "unknown",
        principal[:64] if isinstance(principal, str) and principal else "unknown",
    )
