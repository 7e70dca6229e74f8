"""No input makes the platform fail: each hostile request, properly signed, gets its documented
problem+json and stable code over real HTTP — never a 500."""

from __future__ import annotations

import json
import socket
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from tests.conftest import Member, RunningStack, onboard, unique
from tests.datasets import SMALL_SCHEMA
from tests.security.test_signed_requests import claims_for, sign


@pytest.fixture(scope="module")
def member(stack: RunningStack) -> Member:
    return onboard(stack, unique("gate"), "tester", ["member"])


@pytest.fixture(scope="module")
def dataset(member: Member) -> str:
    dataset_id = unique("gate-data")
    member.client.create_dataset(dataset_id, "Gate", "internal", SMALL_SCHEMA)
    return dataset_id


def signed(
    stack: RunningStack, member: Member, method: str, target: str, body: bytes = b"", content_type: str = "application/json"
) -> requests.Response:
    token = sign(member, claims_for(member, method, target, body))
    headers = {"Authorization": f"Bearer {token}", **({"Content-Type": content_type} if content_type else {})}
    return requests.request(method, stack.admin_profile.endpoint + target, headers=headers, data=body or None, timeout=30)


def problem(response: requests.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    found: dict[str, Any] = response.json()
    assert found["status"] == status and found["code"]
    return found


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        # Not JSON, or not an object: refused at the edge by the body model (API Gateway's validator in AWS).
        (b"\xa2", "application/json", 400, "invalid_request"),
        (b'{"title": "x"}', "text/plain", 415, "unsupported_media_type"),
        # The body model applies to application/json alone (as API Gateway's): anything else is the function's.
        (b"\xa2", "text/plain", 415, "unsupported_media_type"),
        (b'{"title": "x"}', "application/xml", 415, "unsupported_media_type"),
        (b'{"title": "x"}', "multipart/form-data", 415, "unsupported_media_type"),
        (b'{"title": "x"}', "", 415, "unsupported_media_type"),
        (b"[" * 5000 + b"]" * 5000, "application/json", 400, "invalid_request"),
        (b'{"description": ' + b"[" * 100 + b"]" * 100 + b"}", "application/json", 400, "too_deeply_nested"),
        (b'{"title": NaN}', "application/json", 400, "malformed_json"),
        (b'{"title": 1e999}', "application/json", 400, "malformed_json"),
        (b'{"title": "x"', "application/json", 400, "invalid_request"),
        (b'["title", "x"]', "application/json", 400, "invalid_request"),
        (b'{"title": "x", "title": "y"}', "application/json", 400, "malformed_json"),
        (b'{"title": "\\u001b]0;owned\\u0007Air"}', "application/json", 400, "control_characters"),  # a terminal escape
        (b'{"title": "Air\xc2\x9b31m"}', "application/json", 400, "control_characters"),  # C1 CSI, raw
        (b'{"tags": ["a\\u0000b"]}', "application/json", 400, "control_characters"),
        (b'{"description": "Hourly means.\\nTwo lines,\\ta tab."}', "application/json", 200, ""),
        (b'{"ingest": {"max_invalid_share": false}}', "application/json", 422, "validation_failed"),
        (b'{"ingest": {"max_invalid_share": "0.1"}}', "application/json", 422, "validation_failed"),
        (b'{"title": "x"}', "application/json; charset=utf-8", 200, ""),
    ],
)
def test_hostile_bodies_get_their_problem(
    stack: RunningStack, member: Member, dataset: str, body: bytes, content_type: str, status: int, code: str
) -> None:
    response = signed(stack, member, "PATCH", f"/datasets/{dataset}", body, content_type)
    if status == 200:
        assert response.status_code == 200
        return
    assert problem(response, status)["code"] == code


def test_pushed_records_keep_their_row_rules_for_control_characters(stack: RunningStack, member: Member, dataset: str) -> None:
    """Records are data, not text about data: a NUL in a value is a rejected row in the upload's report."""
    response = signed(stack, member, "POST", f"/datasets/{dataset}/records", b'{"records": [{"station_id": "A\\u0000B"}]}')
    assert response.status_code == 202, response.text
    report = member.client.wait_for_upload(dataset, response.json()["upload_id"], 60)["report"]
    assert report["issue_counts"].get("control_characters") == 1


def test_a_schema_nested_3000_deep_is_refused(stack: RunningStack, member: Member) -> None:
    nested = '{"type": "object", "properties": {"x": ' * 3000 + '{"type": "string"}' + "}}" * 3000
    head = json.dumps({"dataset_id": unique("deep"), "title": "Deep", "classification": "internal"})[:-1]
    body = f'{head}, "schema": {nested}}}'
    # Deeper than a JSON parser goes: the edge cannot read it as an object (64 to ~1,000 levels reach
    # the function, which says too_deeply_nested: the case above).
    assert problem(signed(stack, member, "POST", "/datasets", body.encode()), 400)["code"] == "invalid_request"


def test_a_known_path_with_another_method_is_405_with_allow(stack: RunningStack, member: Member, dataset: str) -> None:
    response = signed(stack, member, "PUT", f"/datasets/{dataset}", b"{}")
    assert problem(response, 405)["code"] == "method_not_allowed" and response.headers["Allow"] == "GET, PATCH"
    response = signed(stack, member, "DELETE", f"/datasets/{dataset}/alert-rules", b"")  # the analytics function too
    assert problem(response, 405)["code"] == "method_not_allowed" and response.headers["Allow"] == "GET, POST"
    assert problem(signed(stack, member, "GET", "/no-such-thing"), 404)["code"] == "route_not_found"


def test_long_urls_are_answered_not_refused_as_unauthenticated(stack: RunningStack, member: Member) -> None:
    assert problem(signed(stack, member, "GET", "/datasets?cursor=" + "a" * 2000), 400)["code"] in {
        "invalid_request",
        "malformed_json",
    }
    assert problem(signed(stack, member, "GET", "/datasets?q=" + "a" * 6000), 414)["code"] == "uri_too_long"


def test_an_empty_cursor_is_no_cursor(stack: RunningStack, member: Member) -> None:
    assert signed(stack, member, "GET", "/notifications?after=").status_code == 200


def test_a_nan_threshold_is_refused_and_rules_stay_readable(stack: RunningStack, member: Member, dataset: str) -> None:
    rule = {"name": "x", "measure": {"aggregate": "mean", "column": "value"}, "comparison": "gt", "threshold": "NaN"}
    response = signed(stack, member, "POST", f"/datasets/{dataset}/alert-rules", json.dumps(rule).encode())
    assert problem(response, 422)["code"] == "validation_failed"
    assert signed(stack, member, "GET", f"/datasets/{dataset}/alert-rules").status_code == 200


def test_a_token_for_several_audiences_is_refused(stack: RunningStack, member: Member) -> None:
    claims = claims_for(member, "GET", "/me")
    claims["aud"] = [claims["aud"], "another-deployment"]
    response = requests.get(
        stack.admin_profile.endpoint + "/me", headers={"Authorization": f"Bearer {sign(member, claims)}"}, timeout=10
    )
    assert problem(response, 401)["code"] == "unauthenticated"


def raw_http(stack: RunningStack, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """One request written byte for byte (what a client library would never send), and its answer."""
    host, port = urlsplit(stack.admin_profile.endpoint).netloc.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(request)
        connection.shutdown(socket.SHUT_WR)  # nothing more comes: a short body ends here
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in header_lines)}
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"POST /datasets HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400),
        (b"POST /datasets HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n{}", 400),
        (b"POST /datasets HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 5\r\n\r\n{}", 400),
        (b"POST /datasets HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{}", 400),  # the body ends early
        (b"POST /datasets HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n", 400),
        (b"POST /datasets HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n", 413),
        (b"GET /me HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 70_000 + b"\r\n\r\n", 431),
        (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET /me HTTP/9.9\r\nHost: x\r\n\r\n", 505),
    ],
)
def test_http_the_gateway_cannot_read_gets_a_problem_and_a_closed_connection(
    stack: RunningStack, request_bytes: bytes, status: int
) -> None:
    answered, headers, body = raw_http(stack, request_bytes)
    assert answered == status and headers["content-type"].startswith("application/problem+json")
    assert json.loads(body)["code"] in {"malformed_request", "payload_too_large"} and headers["connection"] == "close"


def test_a_chunked_body_is_read_whole_and_its_signature_checked(stack: RunningStack, member: Member) -> None:
    """API Gateway takes chunked bodies; so does the embedded gateway (the signature binds the whole body)."""
    body = json.dumps({"dataset_id": unique("chunked"), "title": "Chunked", "classification": "internal", "schema": SMALL_SCHEMA})
    token = sign(member, claims_for(member, "POST", "/datasets", body.encode()))
    chunks = b"".join(f"{len(part):x}\r\n".encode() + part.encode() + b"\r\n" for part in (body[:10], body[10:])) + b"0\r\n\r\n"
    head = f"POST /datasets HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n"
    status, _, answer = raw_http(stack, head.encode() + b"Transfer-Encoding: chunked\r\n\r\n" + chunks)
    assert status == 201, answer
