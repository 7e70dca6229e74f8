"""Small helpers around the low-level DynamoDB client (faster to create than boto3's resource layer)."""

from __future__ import annotations

import base64
import binascii
import json
import random
import time
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from functions.core import aws
from functions.core.errors import Busy, InvalidRequest

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def to_item(values: dict[str, Any]) -> dict[str, Any]:
    return {name: _serializer.serialize(_numbers(value)) for name, value in values.items() if value is not None}


def _numbers(value: Any) -> Any:
    """DynamoDB numbers are decimals: floats go in by their shortest exact text."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, list):
        return [_numbers(v) for v in value]
    if isinstance(value, dict):
        return {k: _numbers(v) for k, v in value.items()}
    return value


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _plain(_deserializer.deserialize(value)) for name, value in item.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, set):
        return sorted(_plain(v) for v in value)
    return value


def is_conditional_failure(error: Exception) -> bool:
    response = getattr(error, "response", None) or {}
    code = response.get("Error", {}).get("Code")
    return code in {"ConditionalCheckFailedException", "TransactionCanceledException"}


BATCH_GET_MAX_KEYS = 100  # DynamoDB's most in one BatchGetItem, across its tables


def batch_get(client: Any, keys: dict[str, list[dict[str, Any]]], attempts: int = 5) -> dict[str, list[dict[str, Any]]]:
    """Items of several tables (strongly consistent, as DynamoDB returns them): one BatchGetItem for
    up to 100 keys, one per 100 beyond, each asking again for any key DynamoDB left unprocessed."""
    found: dict[str, list[dict[str, Any]]] = {table: [] for table in keys}
    pending = [(table, key) for table, table_keys in keys.items() for key in table_keys]
    for start in range(0, len(pending), BATCH_GET_MAX_KEYS):
        batch: dict[str, list[dict[str, Any]]] = {}
        for table, key in pending[start : start + BATCH_GET_MAX_KEYS]:
            batch.setdefault(table, []).append(key)
        _batch_get_once(client, batch, found, attempts)
    return found


def _batch_get_once(
    client: Any, keys: dict[str, list[dict[str, Any]]], found: dict[str, list[dict[str, Any]]], attempts: int
) -> None:
    wanted = {table: {"Keys": table_keys, "ConsistentRead": True} for table, table_keys in keys.items() if table_keys}
    for attempt in range(attempts):
        if not wanted:
            return
        if attempt:  # DynamoDB leaves keys unprocessed when throttled: back off before asking again
            time.sleep(random.uniform(0, 0.05 * 2**attempt))
        response = client.batch_get_item(RequestItems=wanted)
        for table, items in response.get("Responses", {}).items():
            found[table].extend(items)
        wanted = response.get("UnprocessedKeys") or {}
    raise Busy(f"DynamoDB left keys of {sorted(wanted)} unprocessed {attempts} times")


class DynamoTable:
    """Base of the repositories: one table, its low-level client injected or taken from core.aws."""

    client = aws.LazyClient("dynamodb")

    def __init__(self, table_name: str, client: Any = None) -> None:
        self._table = table_name
        self._client = client

    @property
    def table_name(self) -> str:
        return self._table


def encode_cursor(key: dict[str, Any], index: str) -> str:
    """A listing's resume point (the last item's key in `index`) as an opaque URL-safe text."""
    payload = json.dumps({"i": index, "k": key}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, index: str, key_names: set[str]) -> dict[str, Any] | None:
    """The key `encode_cursor` wrapped, if the cursor is one this listing (`index`, `key_names`)
    issued: InvalidRequest otherwise (a caller never chooses where a query starts)."""
    if not cursor:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        key = payload["k"]
        valid = payload["i"] == index and set(key) == key_names
        valid = valid and all(isinstance(v, str) and len(v) <= 256 for v in key.values())
    except (ValueError, KeyError, TypeError, binascii.Error):
        valid = False
    if not valid:
        raise InvalidRequest("The cursor is not one this listing issued")
    return dict(key)
