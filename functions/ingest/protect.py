"""Personal-data protection, applied to valid rows before anything reaches curated storage.

- pseudonymise: HMAC-SHA256 under the city's pseudonymisation key (one key for the whole city, so
  the same plate gives the same token in every dataset and joins still work); computed once per
  distinct value. Not reversible without the key, which only the ingest function can decrypt.
- encrypt: AES-256-GCM per value with the dataset's data key (a KMS data key); the column name and
  dataset id are the associated data, so a ciphertext cannot be moved to another column.
- generalise: numbers to a grid (e.g. 0.01 degrees), integers to buckets, timestamps to an interval.
- drop: the column does not reach curated storage at all.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from functions.catalog.models import PersonalData, TableSchema
from functions.ingest.validate import arrow_type

_INTERVAL = re.compile(r"^([1-9][0-9]{0,3})(s|m|h|d)$")
_UNITS = {"s": "second", "m": "minute", "h": "hour", "d": "day"}
TOKEN_CHARS = 32


def output_type(personal: PersonalData | None, declared: pa.DataType) -> pa.DataType | None:
    """The curated column's type (None: dropped)."""
    if personal is None or personal.protection == "generalise":
        return declared
    if personal.protection == "drop":
        return None
    return pa.string()


def output_schema(schema: TableSchema) -> pa.Schema:
    fields = []
    for name, column in schema.properties.items():
        kind = output_type(column.personal, arrow_type(column))
        if kind is not None:
            fields.append(pa.field(name, kind))
    return pa.schema(fields)


class Protector:
    def __init__(self, schema: TableSchema, dataset_id: str, pseudonym_key: bytes, data_key: Callable[[], bytes]) -> None:
        self._schema = schema
        self._dataset_id = dataset_id
        self._pseudonym_key = pseudonym_key
        self._data_key = data_key  # fetched only if the schema has an encrypted column
        self._cipher: AESGCM | None = None
        self.output_schema = output_schema(schema)

    def protect(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        columns = []
        for name, column in self._schema.properties.items():
            values = batch.column(name)
            personal = column.personal
            if personal is None:
                columns.append(values)
            elif personal.protection == "pseudonymise":
                columns.append(self.pseudonymise(values))
            elif personal.protection == "encrypt":
                columns.append(self._encrypt(name, values))
            elif personal.protection == "generalise":
                columns.append(generalise(values, personal.granularity or ""))
        return pa.RecordBatch.from_arrays(columns, schema=self.output_schema)

    def pseudonymise(self, values: pa.Array) -> pa.Array:
        return keyed_tokens(values, self._pseudonym_key)

    def _encrypt(self, name: str, values: pa.Array) -> pa.Array:
        if self._cipher is None:
            self._cipher = AESGCM(self._data_key())
        associated = f"{self._dataset_id}/{name}".encode()
        text = values if pa.types.is_string(values.type) else pc.cast(values, pa.string())
        sealed: list[str | None] = []
        for value in text.to_pylist():
            if value is None:
                sealed.append(None)
                continue
            nonce = os.urandom(12)
            sealed.append(base64.b64encode(nonce + self._cipher.encrypt(nonce, value.encode(), associated)).decode())
        return pa.array(sealed, type=pa.string())


def keyed_tokens(values: pa.Array | pa.ChunkedArray, key: bytes) -> pa.Array:
    """HMAC-SHA256 tokens of the values under `key`, computed once per distinct value (nulls stay null)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    text = values if pa.types.is_string(values.type) else pc.cast(values, pa.string())
    encoded = pc.dictionary_encode(text)
    tokens = [
        None if v is None else hmac.new(key, v.encode(), hashlib.sha256).hexdigest()[:TOKEN_CHARS]
        for v in encoded.dictionary.to_pylist()
    ]
    return pc.take(pa.array(tokens, type=pa.string()), encoded.indices)


def decrypt_value(data_key: bytes, dataset_id: str, column: str, sealed: str) -> str:
    """The inverse of encrypt, for reads that a grant allows to see the clear value."""
    raw = base64.b64decode(sealed)
    return AESGCM(data_key).decrypt(raw[:12], raw[12:], f"{dataset_id}/{column}".encode()).decode()


def generalise(values: pa.Array, granularity: str) -> pa.Array:
    if pa.types.is_timestamp(values.type):
        found = _INTERVAL.match(granularity)
        if not found:
            raise ValueError(f"a time granularity looks like 15m, 1h or 1d, not {granularity!r}")
        return pc.floor_temporal(values, multiple=int(found.group(1)), unit=_UNITS[found.group(2)])
    step = float(granularity)
    if pa.types.is_integer(values.type):
        width = max(int(step), 1)
        return pc.multiply(pc.floor(pc.divide(pc.cast(values, pa.float64()), width)).cast(pa.int64()), width)
    decimals = max(0, -int(f"{step:e}".split("e")[1]))
    return pc.round(pc.multiply(pc.floor(pc.divide(values, step)), step), decimals)
