"""Restricted views: a version's curated Parquet with only what a grant allows (its columns and
rows, masked columns replaced by per-grant tokens, linked columns re-keyed into the grant's linkage
space, encrypted columns decrypted only if the grant says so). Written once per (version, terms)
under views/ (per grant when its tokens or clear values are its own: functions.sharing.placement)
and reused until either changes.

The only module of the API function that imports pyarrow, and only when a restricted read needs it.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from functions.catalog.models import Dataset
from functions.columnar.types import convert
from functions.core.layout import vault_key
from functions.core.scoped import DepartmentScopes, sse_kms
from functions.core.settings import Settings
from functions.identity.directory import DepartmentKeys
from functions.privacy.keys import KeyService
from functions.privacy.protect import decrypt_value, generalise, keyed_tokens, short_values
from functions.privacy.sealing import open_stream
from functions.sharing.models import AggregateTerms, Grant, RowFilter, linked_own_columns
from functions.sharing.placement import CLEAR_VIEW_REUSE_HOURS, BuiltView, is_clear, view_key

_OPERATORS = {"eq": pc.equal, "ne": pc.not_equal, "lt": pc.less, "le": pc.less_equal, "gt": pc.greater, "ge": pc.greater_equal}


def read_columns(dataset: Dataset, grant: Grant) -> list[str]:
    """The columns a view needs from the curated files: the granted ones and those its filter tests."""
    wanted = (
        grant.terms.aggregate.inputs() if grant.terms.aggregate else set(grant.terms.columns or dataset.table_schema.properties)
    )
    wanted |= {c.column for c in grant.terms.row_filter.conditions()} if grant.terms.row_filter else set()
    return [name for name in dataset.table_schema.stored_columns() if name in wanted]


def typed(values: Any, kind: pa.DataType) -> pa.Array:
    """A filter's values as the column's type, read as ingest reads them (so times and date-times
    written as text compare as what they are)."""
    text = pa.array([v if isinstance(v, str) else None for v in values], pa.string())
    if any(isinstance(v, str) for v in values) and not pa.types.is_string(kind):
        return convert(text, kind)[0]
    return pa.array(values).cast(kind)


def predicate(table: pa.Table, row_filter: RowFilter) -> pa.Array:
    """The row filter as a boolean mask over `table` (null comparisons count as false)."""
    if row_filter.condition is not None:
        condition = row_filter.condition
        column = table.column(condition.column)
        if condition.op == "not_null":
            return column.is_valid()
        if condition.op == "in":
            return pc.fill_null(pc.is_in(column, value_set=typed(condition.value, column.type)), False)
        return pc.fill_null(_OPERATORS[condition.op](column, typed([condition.value], column.type)[0]), False)
    parts = [predicate(table, child) for child in (row_filter.all or row_filter.any or [])]
    combine = pc.and_ if row_filter.all else pc.or_
    result = parts[0]
    for part in parts[1:]:
        result = combine(result, part)
    return result


@dataclass(frozen=True)
class ViewSecrets:
    """What a view may need, fetched only if it does: the dataset's data key (decrypt), the grant's
    masking key, and the re-keying of a pseudonymised column into the grant's linkage space."""

    data_key: Callable[[], bytes] = field(default=lambda: b"")
    mask_key: Callable[[], bytes] = field(default=lambda: b"")
    linked: Callable[[str, pa.Array], pa.Array] | None = None


def restrict(table: pa.Table, dataset: Dataset, grant: Grant, secrets: ViewSecrets) -> pa.Table:
    terms = grant.terms
    if terms.row_filter is not None:
        table = table.filter(predicate(table, terms.row_filter))
    if terms.aggregate is not None:
        return aggregated(table, terms.aggregate, terms.generalised)
    columns = [c for c in (terms.columns or table.column_names) if c in table.column_names]
    table = table.select(columns)
    for name in terms.decrypt_columns:
        if name in columns:
            key = secrets.data_key()
            clear = [
                None if v is None else decrypt_value(key, dataset.dataset_id, name, v) for v in table.column(name).to_pylist()
            ]
            table = table.set_column(columns.index(name), name, pa.array(clear, pa.string()))
    for name, granularity in terms.generalised.items():
        if name in columns:
            table = table.set_column(columns.index(name), name, generalise(table.column(name), granularity))
    for name in terms.masked_columns:
        if name in columns:
            # A per-grant token: stable within the grant (counts and joins inside it work), useless
            # outside it, and keyed by a platform secret so the grantee cannot recompute it from guesses.
            table = table.set_column(columns.index(name), name, keyed_tokens(table.column(name), secrets.mask_key()))
    for name in terms.linked_columns:
        if name in columns and secrets.linked is not None:
            table = table.set_column(columns.index(name), name, secrets.linked(name, table.column(name).combine_chunks()))
    return table


def _suppressed(metadata: dict[str, str]) -> dict[str, int] | None:
    """The suppression counts an aggregated view carries (as S3 object metadata)."""
    found = {name: metadata.get(f"cityshare-suppressed-{name}") for name in ("groups", "rows")}
    return {name: int(value) for name, value in found.items() if value is not None} or None


_PYARROW_AGGREGATES = {"count": "count", "sum": "sum", "mean": "mean", "min": "min", "max": "max"}
SUPPRESSED_GROUPS, SUPPRESSED_ROWS = b"cityshare.suppressed_groups", b"cityshare.suppressed_rows"


def aggregated(table: pa.Table, terms: AggregateTerms, generalised: dict[str, str]) -> pa.Table:
    """Groups of at least k rows: the grouping columns generalised as the grant says, each group's
    size and measures; smaller groups suppressed, and how many (groups and rows) said in the
    table's metadata."""
    needed = [c for c in table.column_names if c in terms.inputs()]
    table = table.select(needed)
    for name, granularity in generalised.items():
        if name in needed:
            table = table.set_column(needed.index(name), name, generalise(table.column(name), granularity))
    grouped = table.group_by(terms.group_by, use_threads=True).aggregate(
        [([], "count_all"), *((m.column, _PYARROW_AGGREGATES[m.aggregate]) for m in terms.measures)]
    )
    sizes = grouped.column("count_all")
    kept = pc.greater_equal(sizes, terms.min_group_size)
    suppressed_rows = pc.sum(pc.filter(sizes, pc.invert(kept))).as_py() or 0
    suppressed_groups = len(grouped) - (pc.sum(kept).as_py() or 0)
    grouped = grouped.filter(kept)
    columns = [grouped.column(c) for c in terms.group_by]
    columns.append(grouped.column("count_all"))
    columns.extend(grouped.column(f"{m.column}_{_PYARROW_AGGREGATES[m.aggregate]}") for m in terms.measures)
    result = pa.table(
        [c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in columns], names=terms.columns()
    )
    return result.replace_schema_metadata(
        {SUPPRESSED_GROUPS: str(suppressed_groups).encode(), SUPPRESSED_ROWS: str(suppressed_rows).encode()}
    )


def view_bytes(sources: list[Any], dataset: Dataset, grant: Grant, secrets: ViewSecrets) -> bytes:
    """The view's Parquet (zstd) from the version's curated Parquet sources (paths or file objects)."""
    columns = read_columns(dataset, grant)
    # An aggregated view groups on its text columns: read them dictionary-encoded (as stored), which
    # groups much faster than plain strings.
    filtered = {c.column for c in grant.terms.row_filter.conditions()} if grant.terms.row_filter else set()
    text = [c for c in columns if grant.terms.aggregate and c in grant.terms.aggregate.group_by and c not in filtered]
    table = pa.concat_tables(pq.read_table(source, columns=columns, read_dictionary=text) for source in sources)
    return _parquet(restrict(table.unify_dictionaries() if text else table, dataset, grant, secrets))


def linked_view_bytes(sources: list[Any], dataset: Dataset, kinds: list[str], secrets: ViewSecrets) -> bytes:
    """A grantee's own dataset with the columns of the linked kinds re-keyed into the linkage space."""
    table = pa.concat_tables(pq.read_table(source) for source in sources)
    for name in linked_own_columns(dataset, kinds):
        if name in table.column_names and secrets.linked is not None:
            index = table.column_names.index(name)
            table = table.set_column(index, name, secrets.linked(name, table.column(name).combine_chunks()))
    return _parquet(table)


def _parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def rekeyed(tokens: pa.Array, owner_key: bytes, vault: pa.Table | None, linkage_key: bytes) -> pa.Array:
    """Tokens of the owner's space to tokens under `linkage_key`: short values opened with the
    owner's key, long ones found in the version's vault (token -> value)."""
    values = short_values(tokens, owner_key)
    if vault is not None and len(vault):
        values = pc.coalesce(pc.take(vault.column("value"), pc.index_in(tokens, value_set=vault.column("token"))), values)
    return keyed_tokens(values, linkage_key)


class ViewBuilder:
    """Builds a view through a session acting for the department whose data it reads and holds."""

    def __init__(self, settings: Settings, keys: KeyService, scopes: DepartmentScopes, department_keys: DepartmentKeys) -> None:
        self._settings = settings
        self._keys = keys
        self._scopes = scopes
        self._department_keys = department_keys

    def __call__(
        self, dataset: Dataset, version: int, files: list[str], grant: Grant, now: str, linked_dataset: bool = False
    ) -> BuiltView:
        key = view_key(dataset.dataset_id, version, grant, linked_dataset)
        bucket = self._settings.data_bucket
        s3 = self._scopes.s3(dataset.owner)
        try:
            head = s3.head_object(Bucket=bucket, Key=key)
            fresh = not is_clear(key) or head["LastModified"] > datetime.now(UTC) - timedelta(hours=CLEAR_VIEW_REUSE_HOURS)
            if fresh:
                return BuiltView(key, int(head["ContentLength"]), _suppressed(head.get("Metadata") or {}))
        except s3.exceptions.ClientError:
            pass  # not built yet
        sources = [io.BytesIO(s3.get_object(Bucket=bucket, Key=f)["Body"].read()) for f in files]
        secrets = ViewSecrets(
            data_key=lambda: self._keys.dataset_key(dataset.dataset_id, dataset.owner),
            mask_key=lambda: self._keys.mask_key(grant.grant_id),
            linked=lambda column, tokens: self._linked(dataset, files, grant, column, tokens),
        )
        if linked_dataset:
            body = linked_view_bytes(sources, dataset, grant.linkage_kinds, secrets)
        else:
            body = view_bytes(sources, dataset, grant, secrets)
        extra = sse_kms(self._department_keys.key_of(dataset.owner))
        schema_metadata = pq.read_schema(io.BytesIO(body)).metadata or {}
        metadata = {
            k.decode().replace(".", "-").replace("_", "-"): v.decode()
            for k, v in schema_metadata.items()
            if k.startswith(b"cityshare.")
        }
        s3.put_object(Bucket=bucket, Key=key, Body=body, Metadata=metadata, **extra)
        return BuiltView(key, len(body), _suppressed(metadata))

    def _linked(self, dataset: Dataset, files: list[str], grant: Grant, column: str, tokens: pa.Array) -> pa.Array:
        """Re-key a column of `dataset` (the grant's dataset, or the grantee's own) into the linkage
        space of the grant's two departments for the column's identifier kind."""
        personal = dataset.table_schema.personal_columns()[column]
        s3 = self._scopes.s3(dataset.owner)
        vaults = []
        for file in files:
            sealed_key = vault_key(file, column)
            try:
                body = s3.get_object(Bucket=self._settings.data_bucket, Key=sealed_key)["Body"]
            except s3.exceptions.NoSuchKey:
                continue  # no long value in that version: every token opens with the key
            data_key = self._keys.dataset_key(dataset.dataset_id, dataset.owner)
            vaults.append(pq.read_table(io.BytesIO(open_stream(body.iter_chunks(1024 * 1024), data_key, sealed_key.encode()))))
        return rekeyed(
            tokens,
            self._keys.pseudonymisation_key(dataset.owner),
            pa.concat_tables(vaults) if vaults else None,
            self._keys.linkage_key(grant.owner, grant.grantee_department, personal.category),
        )
