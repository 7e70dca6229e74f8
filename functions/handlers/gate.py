"""The request gate: what every request must be before any route sees it, with one problem (and
one stable code) per way it can fail. Run by every HTTP function, after the signature is verified.

- the body: at most MAX_BODY_BYTES (413), declared as JSON when there is one (415), UTF-8 (400
  invalid_encoding), JSON (400 malformed_json) nested at most MAX_JSON_DEPTH deep (400
  too_deeply_nested), with no NaN or Infinity anywhere (400 malformed_json);
- the request target (path and query): at most MAX_TARGET_BYTES (414);
- the method: one the path has (405, with `Allow`).

Booleans are never taken for numbers, nor text for numbers: the API's models validate strictly.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Sequence
from typing import Any

from functions.core.errors import CityShareError, PayloadTooLarge
from functions.core.strict_json import no_constant, unique_keys

MAX_JSON_DEPTH = 64
MAX_TARGET_BYTES = 4096
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")
_JSON_MEDIA = re.compile(r"^application/(?:[a-z0-9.+-]+\+)?json$")
_BODY_METHODS = {"POST", "PUT", "PATCH"}
# C0 controls but tab and line breaks, DEL, C1: an ESC in a dataset's title would reach every terminal
# that lists it (`cityshare datasets`), and nothing a department writes needs one.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# Pushed records are data, not text about data: their values get ingest's row rules and report.
_RECORDS = re.compile(r"^/datasets/[^/]+/records$")


class MalformedJson(CityShareError):
    status, code, title = 400, "malformed_json", "The body is not valid JSON"


class InvalidEncoding(CityShareError):
    status, code, title = 400, "invalid_encoding", "The body is not UTF-8"


class TooDeeplyNested(CityShareError):
    status, code, title = 400, "too_deeply_nested", "The body nests too deeply"


class ControlCharacters(CityShareError):
    status, code, title = 400, "control_characters", "The body's text holds control characters"


class MethodNotAllowed(CityShareError):
    status, code, title = 405, "method_not_allowed", "The path does not take this method"


class UriTooLong(CityShareError):
    status, code, title = 414, "uri_too_long", "The request target is too long"


class UnsupportedMediaType(CityShareError):
    status, code, title = 415, "unsupported_media_type", "The body must be JSON"


Route = tuple[str, re.Pattern[str]]


def allowed_methods(routes: Sequence[Route], path: str) -> list[str]:
    return sorted({method for method, rule in routes if rule.match(path)})


def check_request(event: dict[str, Any], body: bytes, routes: Sequence[Route], max_body_bytes: int) -> None:
    """Raise the CityShareError that describes what is wrong with the request, if anything."""
    if len(body) > max_body_bytes:
        raise PayloadTooLarge(f"The body exceeds {max_body_bytes} bytes")
    method, path = str(event.get("httpMethod") or "").upper(), str(event.get("path") or "")
    query = event.get("multiValueQueryStringParameters") or {}
    target_bytes = len(path.encode()) + sum(len(k) + sum(len(v) + 2 for v in values) for k, values in query.items())
    if target_bytes > MAX_TARGET_BYTES:
        raise UriTooLong(f"The path and query may total {MAX_TARGET_BYTES} bytes")
    allowed = allowed_methods(routes, path)
    if allowed and method not in allowed:
        raise MethodNotAllowed(f"{path} takes {', '.join(allowed)}", allow=", ".join(allowed))
    if method in _BODY_METHODS and body:
        parsed = check_json_body(body, _header(event, "content-type"))
        if not _RECORDS.match(path):
            check_text(parsed)


def check_text(value: Any) -> None:
    """ControlCharacters if any key or string in the parsed body holds a control character."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if _CONTROL.search(item):
                raise ControlCharacters("Text may hold tabs and line breaks, no other control character")
        elif isinstance(item, dict):
            pending.extend(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)


def body_bytes(event: dict[str, Any]) -> bytes:
    """The request body as sent: bytes that are not UTF-8 arrive base64-encoded and are never decoded as text here."""
    body = event.get("body") or ""
    return base64.b64decode(body) if event.get("isBase64Encoded") else body.encode("utf-8", "surrogatepass")


def check_json_body(body: bytes, content_type: str) -> Any:
    media = content_type.split(";")[0].strip().lower()
    if not _JSON_MEDIA.match(media):
        raise UnsupportedMediaType(f"Send the body as application/json, not {media or 'without a content type'}")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidEncoding("The body is not valid UTF-8") from None
    if nesting(text) > MAX_JSON_DEPTH:
        raise TooDeeplyNested(f"Objects and arrays nest at most {MAX_JSON_DEPTH} deep")
    try:
        return json.loads(text, parse_constant=no_constant, parse_float=_finite, object_pairs_hook=unique_keys)
    except (ValueError, RecursionError):
        raise MalformedJson("Send one JSON value, each object naming a key once; NaN and Infinity are not JSON numbers") from None


def nesting(text: str) -> int:
    """How deep objects and arrays nest in JSON text (brackets inside strings do not count)."""
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return 0  # cannot nest deeper than the brackets it has
    depth = deepest = 0
    for bracket in _BRACKETS.findall(_STRINGS.sub('""', text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def _header(event: dict[str, Any], name: str) -> str:
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == name:
            return str(value or "")
    return ""


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text[:20]} is not a finite number")
    return number
