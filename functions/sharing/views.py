"""Restricted views: a version's curated Parquet with only what a grant allows (its columns and
rows, masked columns replaced by per-grant tokens, encrypted columns decrypted only if the grant
says so). Written once per (version, terms fingerprint) under views/ and reused until either changes.

The only module of the API function that imports pyarrow, and only when a restricted read needs it.
"""

from __future__ import annotations

import hashlib
import hmac
import io
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from functions.catalog.models import Dataset
from functions.core.settings import Settings, department_key
from functions.ingest.keys import KeyService
from functions.ingest.protect import decrypt_value, generalise, keyed_tokens
from functions.sharing.models import Grant, RowFilter

_OPERATORS = {"eq": pc.equal, "ne": pc.not_equal, "lt": pc.less, "le": pc.less_equal, "gt": pc.greater, "ge": pc.greater_equal}


def view_key(dataset_id: str, version: int, grant: Grant) -> str:
    # Masking tokens are per grant, so a view with masked columns is never shared with another grant.
    scope = f"{grant.grant_id}-" if grant.terms.masked_columns else ""
    return f"views/{dataset_id}/v{version}/{scope}{grant.terms.fingerprint()}/part-00000.parquet"


def read_columns(dataset: Dataset, grant: Grant) -> list[str]:
    """The columns a view needs from the curated files: the granted ones and those its filter tests."""
    wanted = set(grant.terms.columns or dataset.table_schema.properties)
    wanted |= {c.column for c in grant.terms.row_filter.conditions()} if grant.terms.row_filter else set()
    return [name for name in dataset.table_schema.stored_columns() if name in wanted]


def predicate(table: pa.Table, row_filter: RowFilter) -> pa.Array:
    """The row filter as a boolean mask over `table` (null comparisons count as false)."""
    if row_filter.condition is not None:
        condition = row_filter.condition
        column = table.column(condition.column)
        if condition.op == "not_null":
            return column.is_valid()
        if condition.op == "in":
            return pc.is_in(column, value_set=pa.array(condition.value).cast(column.type))
        return pc.fill_null(_OPERATORS[condition.op](column, pa.scalar(condition.value).cast(column.type)), False)
    parts = [predicate(table, child) for child in (row_filter.all or row_filter.any or [])]
    combine = pc.and_ if row_filter.all else pc.or_
    result = parts[0]
    for part in parts[1:]:
        result = combine(result, part)
    return result


def restrict(
    table: pa.Table, dataset: Dataset, grant: Grant, data_key: Callable[[], bytes], mask_key: Callable[[], bytes]
) -> pa.Table:
    terms = grant.terms
    if terms.row_filter is not None:
        table = table.filter(predicate(table, terms.row_filter))
    columns = [c for c in (terms.columns or table.column_names) if c in table.column_names]
    table = table.select(columns)
    for name in terms.decrypt_columns:
        if name in columns:
            key = data_key()
            clear = [
                None if v is None else decrypt_value(key, dataset.dataset_id, name, v) for v in table.column(name).to_pylist()
            ]
            table = table.set_column(columns.index(name), name, pa.array(clear, pa.string()))
    for name, granularity in terms.generalised.items():
        if name in columns:
            coarse = generalise(table.column(name).combine_chunks(), granularity)
            table = table.set_column(columns.index(name), name, coarse)
    for name in terms.masked_columns:
        if name in columns:
            # A per-grant token: stable within the grant (counts and joins inside it work), useless
            # outside it, and keyed by a platform secret so the grantee cannot recompute it from guesses.
            table = table.set_column(columns.index(name), name, keyed_tokens(table.column(name), mask_key()))
    return table


def view_bytes(
    sources: list[Any], dataset: Dataset, grant: Grant, data_key: Callable[[], bytes], mask_key: Callable[[], bytes]
) -> bytes:
    """The view's Parquet (zstd) from the version's curated Parquet sources (paths or file objects)."""
    columns = read_columns(dataset, grant)
    table = pa.concat_tables(pq.read_table(source, columns=columns) for source in sources)
    sink = io.BytesIO()
    pq.write_table(restrict(table, dataset, grant, data_key, mask_key), sink, compression="zstd")
    return sink.getvalue()


def mask_key(secret: bytes, grant: Grant) -> bytes:
    return hmac.new(secret, f"grant-mask/{grant.grant_id}".encode(), hashlib.sha256).digest()


class ViewBuilder:
    def __init__(self, settings: Settings, keys: KeyService, s3: Any) -> None:
        self._settings = settings
        self._keys = keys
        self._s3 = s3

    def __call__(self, dataset: Dataset, version: int, files: list[str], grant: Grant, now: str) -> tuple[str, int]:
        key = view_key(dataset.dataset_id, version, grant)
        bucket = self._settings.data_bucket
        try:
            return key, int(self._s3.head_object(Bucket=bucket, Key=key)["ContentLength"])
        except self._s3.exceptions.ClientError:
            pass  # not built yet
        owner_key = department_key(self._settings, dataset.owner)
        sources = [io.BytesIO(self._s3.get_object(Bucket=bucket, Key=f)["Body"].read()) for f in files]
        body = view_bytes(
            sources,
            dataset,
            grant,
            lambda: self._keys.dataset_key(dataset.dataset_id, owner_key),
            lambda: mask_key(self._keys.pseudonymisation_key(), grant),
        )
        extra = {"ServerSideEncryption": "aws:kms", **({"SSEKMSKeyId": owner_key} if owner_key else {})}
        self._s3.put_object(Bucket=bucket, Key=key, Body=body, **extra)
        return key, len(body)
