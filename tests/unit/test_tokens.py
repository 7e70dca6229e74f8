"""TokenVerifier: every way a token can be wrong has its own reason; the right one passes."""

from __future__ import annotations

import secrets
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from functions.core.errors import Unauthenticated
from functions.identity.binding import TOKEN_TYPE, body_digest
from functions.identity.models import Department, Principal, PublicKey
from functions.identity.tokens import TokenVerifier
from tests.unit.fakes import MemoryDirectory, MemoryNonces, settings

SETTINGS = settings()
NOW = 1_800_000_000


@pytest.fixture
def directory() -> MemoryDirectory:
    return MemoryDirectory()


@pytest.fixture
def ec_key(directory: MemoryDirectory) -> Any:
    key = ec.generate_private_key(ec.SECP256R1())
    directory.departments["transport"] = Department(department_id="transport", name="Transport", created_at="t")
    directory.principals[("transport", "alice")] = Principal(department_id="transport", principal_id="alice", roles=["member"])
    jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    directory.keys[("transport", "k1")] = PublicKey(
        department_id="transport", principal_id="alice", kid="k1", alg="ES256", jwk=jwk, created_at="t"
    )
    return key


def make_verifier(directory: MemoryDirectory, now: float = NOW) -> TokenVerifier:
    return TokenVerifier(SETTINGS, directory, MemoryNonces(), clock=lambda: now)  # type: ignore[arg-type]


def token(key: Any, alg: str = "ES256", kid: str = "k1", **overrides: Any) -> str:
    claims: dict[str, Any] = {
        "iss": "transport",
        "sub": "alice",
        "aud": "cityshare-test",
        "iat": NOW,
        "exp": NOW + 60,
        "jti": secrets.token_urlsafe(24),
        "htm": "GET",
        "htu": "/datasets?limit=5",
        "bsh": body_digest(b""),
    }
    claims.update(overrides)
    return jwt.encode(
        {k: v for k, v in claims.items() if v is not None}, key, algorithm=alg, headers={"kid": kid, "typ": TOKEN_TYPE}
    )


def reason(verifier: TokenVerifier, value: str, method: str = "GET", target: str = "/datasets?limit=5") -> str:
    with pytest.raises(Unauthenticated) as refused:
        verifier.verify(value, method, target)
    return refused.value.reason


def test_a_valid_token_gives_the_directory_roles(directory: MemoryDirectory, ec_key: Any) -> None:
    caller = make_verifier(directory).verify(token(ec_key, roles=["admin"]), "GET", "/datasets?limit=5")
    assert (caller.department_id, caller.principal_id, caller.roles) == ("transport", "alice", ("member",))


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"aud": "elsewhere"}, "wrong_audience"),
        ({"iat": NOW - 400, "exp": NOW - 100}, "token_expired"),
        ({"iat": NOW + 300, "exp": NOW + 360}, "token_not_yet_valid"),
        ({"nbf": NOW + 300, "exp": NOW + 360}, "token_not_yet_valid"),
        ({"exp": NOW + 301}, "token_lifetime_too_long"),
        ({"htm": "POST"}, "request_mismatch"),
        ({"htu": "/datasets?limit=6"}, "request_mismatch"),
        ({"jti": None}, "missing_claim"),
        ({"jti": "short"}, "malformed_token"),
        ({"bsh": "not-a-digest"}, "malformed_token"),
        ({"sub": "mallory"}, "unknown_key"),
        ({"iss": "health"}, "unknown_department"),
    ],
)
def test_each_defect_has_its_reason(directory: MemoryDirectory, ec_key: Any, overrides: dict[str, Any], expected: str) -> None:
    assert reason(make_verifier(directory), token(ec_key, **overrides)) == expected


def test_replay_is_refused(directory: MemoryDirectory, ec_key: Any) -> None:
    verifier = make_verifier(directory)
    value = token(ec_key)
    verifier.verify(value, "GET", "/datasets?limit=5")
    assert reason(verifier, value) == "replayed_token"


def test_a_key_cannot_be_used_with_another_algorithm(directory: MemoryDirectory, ec_key: Any) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert reason(make_verifier(directory), token(rsa_key, alg="RS256")) == "unsupported_algorithm"
    directory.keys[("transport", "k2")] = PublicKey(
        department_id="transport",
        principal_id="alice",
        kid="k2",
        alg="RS256",
        jwk=RSAAlgorithm.to_jwk(rsa_key.public_key(), as_dict=True),
        created_at="t",
    )
    assert (
        make_verifier(directory).verify(token(rsa_key, alg="RS256", kid="k2"), "GET", "/datasets?limit=5").principal_id == "alice"
    )


def test_retired_keys_and_suspended_principals_are_refused(directory: MemoryDirectory, ec_key: Any) -> None:
    directory.principals[("transport", "alice")] = Principal(
        department_id="transport", principal_id="alice", roles=["member"], status="suspended"
    )
    assert reason(make_verifier(directory), token(ec_key)) == "unknown_principal"
    directory.keys[("transport", "k1")] = directory.keys[("transport", "k1")].model_copy(update={"status": "retired"})
    assert reason(make_verifier(directory), token(ec_key)) == "unknown_key"


@pytest.mark.parametrize("garbage", ["", "a.b", "a.b.c", "x" * 9000, "eyJhbGciOiJub25lIn0.e30."])
def test_garbage_is_refused_without_error(directory: MemoryDirectory, garbage: str) -> None:
    assert reason(make_verifier(directory), garbage) in {"malformed_token", "token_too_large", "unsupported_algorithm"}
