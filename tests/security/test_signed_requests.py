"""Attacks on signed requests, each a real HTTP request to the embedded stack.

Every refusal must be the documented problem+json (401 unauthenticated / 403 forbidden) and must
leave an audit entry saying why.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization

from cityshare.keys import generate_key, load_private_key
from cityshare.signing import TOKEN_TYPE, body_sha256, request_target
from infra.request_models import BODY_REFUSED
from tests.conftest import Member, RunningStack, onboard, unique
from tests.datasets import SMALL_SCHEMA


@pytest.fixture(scope="module")
def transport(stack: RunningStack) -> Member:
    return onboard(stack, unique("transport"), "traffic-control", ["member"])


def claims_for(member: Member, method: str, target: str, body: bytes = b"", **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": member.profile.department,
        "sub": member.profile.principal,
        "aud": member.profile.audience,
        "iat": now,
        "exp": now + 60,
        "jti": secrets.token_urlsafe(24),
        "htm": method,
        "htu": request_target(target),
        "bsh": body_sha256(body),
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def sign(member: Member, claims: dict[str, Any], **header: Any) -> str:
    headers = {"kid": member.profile.kid, "typ": TOKEN_TYPE, **header}
    return jwt.encode(claims, load_private_key(member.key_file), algorithm="ES256", headers=headers)


def send(stack: RunningStack, method: str, target: str, token: str, body: bytes = b"") -> requests.Response:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    return requests.request(method, stack.admin_profile.endpoint + target, headers=headers, data=body or None, timeout=10)


def refusal_reason(stack: RunningStack, response: requests.Response) -> str:
    """The documented refusal, and the reason the platform's audit chain recorded for it."""
    assert response.status_code == 401
    assert response.headers["Content-Type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["code"] == "unauthenticated"
    assert "Traceback" not in response.text
    last = list(stack.admin().iter_audit("platform"))
    denials = [e for e in last if e["action"] == "Authenticate" and e["decision"] == "deny"]
    return str(denials[-1]["reason"])


def _unsigned(claims: dict[str, Any], header: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part(header)}.{part(claims)}."


def test_a_correctly_signed_request_is_accepted(stack: RunningStack, transport: Member) -> None:
    token = sign(transport, claims_for(transport, "GET", "/me"))
    response = send(stack, "GET", "/me", token)
    assert response.status_code == 200
    assert response.json()["principal_id"] == "traffic-control"


def test_alg_none_is_refused(stack: RunningStack, transport: Member) -> None:
    token = _unsigned(claims_for(transport, "GET", "/me"), {"alg": "none", "typ": TOKEN_TYPE, "kid": transport.profile.kid})
    assert refusal_reason(stack, send(stack, "GET", "/me", token)) == "unsupported_algorithm"


def test_hs256_keyed_with_the_public_key_is_refused(stack: RunningStack, transport: Member) -> None:
    public_pem = (
        load_private_key(transport.key_file)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    header = {"alg": "HS256", "typ": TOKEN_TYPE, "kid": transport.profile.kid}
    signing_input = _unsigned(claims_for(transport, "GET", "/me"), header)[:-1]
    import hashlib
    import hmac

    signature = base64.urlsafe_b64encode(hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()).rstrip(b"=")
    token = f"{signing_input}.{signature.decode()}"
    assert refusal_reason(stack, send(stack, "GET", "/me", token)) == "unsupported_algorithm"


def test_unknown_kid_is_refused(stack: RunningStack, transport: Member) -> None:
    token = sign(transport, claims_for(transport, "GET", "/me"), kid="no-such-key")
    assert refusal_reason(stack, send(stack, "GET", "/me", token)) == "unknown_key"


def test_a_key_the_attacker_made_is_refused(stack: RunningStack, transport: Member, tmp_path: Any) -> None:
    generate_key(tmp_path / "attacker.pem")
    claims = claims_for(transport, "GET", "/me")
    token = jwt.encode(
        claims,
        load_private_key(tmp_path / "attacker.pem"),
        algorithm="ES256",
        headers={"kid": transport.profile.kid, "typ": TOKEN_TYPE},
    )
    assert refusal_reason(stack, send(stack, "GET", "/me", token)) == "invalid_signature"


def test_expired_token_is_refused(stack: RunningStack, transport: Member) -> None:
    now = int(time.time())
    token = sign(transport, claims_for(transport, "GET", "/me", iat=now - 400, exp=now - 200))
    assert refusal_reason(stack, send(stack, "GET", "/me", token)) == "token_expired"


@pytest.mark.parametrize("claim", ["iat", "nbf"])
def test_token_from_the_future_is_refused(stack: RunningStack, transport: Member, claim: str) -> None:
    future = int(time.time()) + 600
    token = sign(transport, claims_for(transport, "GET", "/me", **{claim: future, "exp": future + 60}))
    assert refusal_reason(stack, send(stack, "GET", "/me", token)) == "token_not_yet_valid"


def test_token_living_longer_than_five_minutes_is_refused(stack: RunningStack, transport: Member) -> None:
    now = int(time.time())
    token = sign(transport, claims_for(transport, "GET", "/me", iat=now, exp=now + 3600))
    assert refusal_reason(stack, send(stack, "GET", "/me", token)) == "token_lifetime_too_long"


def test_wrong_audience_is_refused(stack: RunningStack, transport: Member) -> None:
    token = sign(transport, claims_for(transport, "GET", "/me", aud="another-deployment"))
    assert refusal_reason(stack, send(stack, "GET", "/me", token)) == "wrong_audience"


def test_issuer_of_another_department_is_refused(stack: RunningStack, transport: Member) -> None:
    environment = onboard(stack, unique("environment"), "sensors", ["member"])
    # transport's key, claiming to be environment's principal
    token = sign(transport, claims_for(transport, "GET", "/me", iss=environment.profile.department, sub="sensors"))
    assert refusal_reason(stack, send(stack, "GET", "/me", token)) == "unknown_key"


def test_missing_binding_claim_is_refused(stack: RunningStack, transport: Member) -> None:
    token = sign(transport, claims_for(transport, "GET", "/me", bsh=None))
    assert refusal_reason(stack, send(stack, "GET", "/me", token)) == "missing_claim"


def test_replayed_token_is_refused(stack: RunningStack, transport: Member) -> None:
    token = sign(transport, claims_for(transport, "GET", "/me"))
    assert send(stack, "GET", "/me", token).status_code == 200
    assert refusal_reason(stack, send(stack, "GET", "/me", token)) == "replayed_token"


RETARGETS: dict[str, Callable[[RunningStack, str], requests.Response]] = {
    "method": lambda stack, token: send(stack, "POST", "/datasets?limit=5", token),
    "path": lambda stack, token: send(stack, "GET", "/me?limit=5", token),
    "query": lambda stack, token: send(stack, "GET", "/datasets?limit=6", token),
}


@pytest.mark.parametrize("changed", sorted(RETARGETS))
def test_token_sent_with_another_method_path_or_query_is_refused(stack: RunningStack, transport: Member, changed: str) -> None:
    token = sign(transport, claims_for(transport, "GET", "/datasets?limit=5"))
    assert refusal_reason(stack, RETARGETS[changed](stack, token)) == "request_mismatch"


def test_token_sent_with_another_body_is_refused(stack: RunningStack, transport: Member) -> None:
    signed_body = json.dumps({"title": "As signed"}).encode()
    dataset_id = unique("bodycheck")
    transport.client.create_dataset(dataset_id, "Body check", "internal", SMALL_SCHEMA)
    target = f"/datasets/{dataset_id}"
    token = sign(transport, claims_for(transport, "PATCH", target, body=signed_body))
    response = send(stack, "PATCH", target, token, body=json.dumps({"title": "Tampered"}).encode())
    assert refusal_reason(stack, response) == "body_mismatch"
    assert transport.client.get_dataset(dataset_id)["title"] == "Body check"


def test_token_over_16_kb_is_refused(stack: RunningStack, transport: Member) -> None:
    token = sign(transport, claims_for(transport, "GET", "/me", padding="x" * 17000))
    assert refusal_reason(stack, send(stack, "GET", "/me", token)) == "token_too_large"


def test_missing_token_is_refused(stack: RunningStack) -> None:
    response = requests.get(stack.admin_profile.endpoint + "/me", timeout=10)
    assert refusal_reason(stack, response) == "missing_token"


def test_a_role_claimed_in_the_token_is_ignored(stack: RunningStack, transport: Member) -> None:
    token = sign(transport, claims_for(transport, "GET", "/me", roles=["steward", "admin"], role="admin"))
    response = send(stack, "GET", "/me", token)
    assert response.status_code == 200
    assert response.json()["roles"] == ["member"]
    token = sign(transport, claims_for(transport, "GET", "/admin/departments", roles=["admin"]))
    refused = send(stack, "GET", "/admin/departments", token)
    assert refused.status_code == 403
    assert refused.json()["code"] == "forbidden"
    directory_decisions = [e for e in stack.admin().iter_audit("platform") if e["action"] == "ViewDirectory"]
    assert directory_decisions[-1]["decision"] == "deny"
    assert directory_decisions[-1]["actor_department"] == transport.profile.department


def test_a_department_cannot_edit_another_departments_dataset(stack: RunningStack, transport: Member) -> None:
    dataset_id = unique("flows")
    transport.client.create_dataset(dataset_id, "Flows", "internal", SMALL_SCHEMA)
    environment = onboard(stack, unique("environment"), "analyst", ["member", "steward"])
    token_claims = claims_for(environment, "PATCH", f"/datasets/{dataset_id}", body=b'{"title": "Mine now"}')
    response = send(stack, "PATCH", f"/datasets/{dataset_id}", sign(environment, token_claims), body=b'{"title": "Mine now"}')
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"
    assert transport.client.get_dataset(dataset_id)["title"] == "Flows"
    steward = onboard(stack, transport.profile.department, "steward", ["member", "steward"], register=False)
    denials = [e for e in steward.client.iter_audit() if e["action"] == "UpdateDataset" and e["decision"] == "deny"]
    assert denials[-1]["actor_department"] == environment.profile.department
    assert denials[-1]["resource"] == f"Dataset::{dataset_id}"


@pytest.mark.parametrize("body", [b'[{"a": 1}]', b'"records"', b"42", b'{"records": ', b"\xa2"])
def test_a_body_that_is_not_a_json_object_is_refused_at_the_edge(stack: RunningStack, transport: Member, body: bytes) -> None:
    # As API Gateway's request validator does in AWS (the same body model), before any function.
    token = sign(transport, claims_for(transport, "POST", "/datasets/no-such-dataset/records", body))
    refused = send(stack, "POST", "/datasets/no-such-dataset/records", token, body)
    assert refused.status_code == 400 and refused.headers["Content-Type"].startswith("application/problem+json")
    assert refused.json()["code"] == "invalid_request" and refused.json()["detail"] == BODY_REFUSED


@pytest.mark.parametrize(
    "body",
    [
        {"records": "not a list"},
        {"records": []},
        {"records": [{"a": 1}] * 1001},
        {"record": [{"a": 1}]},
        {"records": [{"a": 1}]},
    ],
    ids=["wrong-type", "too-few", "too-many", "misspelt-member", "well-formed"],
)
def test_any_json_object_reaches_the_function_which_says_precisely_what_is_wrong(
    stack: RunningStack, transport: Member, body: Any
) -> None:
    # The edge leaves members, types, values and bounds to the function, whose problem names them.
    data = json.dumps(body).encode()
    token = sign(transport, claims_for(transport, "POST", "/datasets/no-such-dataset/records", data))
    answer = send(stack, "POST", "/datasets/no-such-dataset/records", token, data).json()
    if body == {"records": [{"a": 1}]}:
        assert answer["code"] == "dataset_not_found"
    else:
        assert answer["code"] == "validation_failed" and answer["errors"], answer
