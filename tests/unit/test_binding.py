"""The SDK and the server compute the same request binding for any path, query and body."""

from __future__ import annotations

from urllib.parse import parse_qsl, quote, urlencode

from hypothesis import given
from hypothesis import strategies as st

from cityshare.signing import body_sha256, request_target
from functions.identity.binding import body_digest, canonical_target

segment = st.text(st.characters(codec="utf-8", exclude_characters="/?#\x00"), min_size=1, max_size=12)
query_pairs = st.lists(st.tuples(st.text(min_size=1, max_size=8), st.text(max_size=8)), max_size=5)


@given(st.lists(segment, min_size=1, max_size=4), query_pairs)
def test_client_and_server_agree_on_the_target(segments: list[str], pairs: list[tuple[str, str]]) -> None:
    path = "/" + "/".join(quote(s, safe="") for s in segments)
    query = urlencode(pairs)
    # The server sees the query as API Gateway parses it into multiValueQueryStringParameters.
    parsed: dict[str, list[str]] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        parsed.setdefault(name, []).append(value)
    assert request_target(path + (f"?{query}" if query else "")) == canonical_target(path, parsed)


@given(st.binary(max_size=2048))
def test_client_and_server_agree_on_the_body_digest(body: bytes) -> None:
    assert body_sha256(body) == body_digest(body)
    assert len(body_digest(body)) == 43


def test_query_order_does_not_matter_but_values_do() -> None:
    assert canonical_target("/datasets", {"b": ["2"], "a": ["1"]}) == canonical_target("/datasets", {"a": ["1"], "b": ["2"]})
    assert canonical_target("/datasets", {"a": ["1"]}) != canonical_target("/datasets", {"a": ["2"]})
    assert canonical_target("/datasets/%2e%2e", None) == canonical_target("/datasets/..", None)
