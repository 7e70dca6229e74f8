"""Restricted views: a version's curated Parquet with only what a grant allows (its columns and
rows, masked columns replaced by per-grant tokens, linked columns re-keyed into the grant's linkage
space, encrypted columns decrypted only if the grant says so). Written once per (version, terms)
under views/ (per grant when its tokens or clear values are its own: functions.sharing.placement)
and reused until either changes.

The only module of the API function that imports pyarrow, and only when a restricted read needs it.
"""

from __future__ import annotations

import io
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from functions.catalog.models import Dataset, SubjectDeclaration, TableSchema
from functions.columnar.geometry import with_geoparquet_metadata
from functions.columnar.types import as_text, convert, read_parquet
from functions.core.layout import vault_key
from functions.core.scoped import DepartmentScopes, sse_kms
from functions.core.settings import Settings
from functions.identity.directory import DepartmentKeys
from functions.privacy.keys import KeyService
from functions.privacy.protect import decrypt_value, generalise, keyed_tokens, rekeyed_tokens, short_values
from functions.privacy.release import QuantileInput, ReleaseRequest, ReleaseResult, Releases
from functions.privacy.sealing import open_stream
from functions.sharing.models import QUANTILE_CANDIDATES, QUANTILES, AggregateTerms, Grant, RowFilter, linked_own_columns
from functions.sharing.placement import CLEAR_VIEW_REUSE_HOURS, BuiltView, is_clear, view_key

_OPERATORS = {"eq": pc.equal, "ne": pc.not_equal, "lt": pc.less, "le": pc.less_equal, "gt": pc.greater, "ge": pc.greater_equal}


def read_columns(dataset: Dataset, grant: Grant) -> list[str]:
    """The columns a view needs from the curated files: the granted ones and those its filter tests."""
    aggregate = grant.terms.aggregate
    wanted = (
        aggregate.inputs() | set(dataset.table_schema.subjects().columns)
        if aggregate
        else set(grant.terms.columns or dataset.table_schema.properties)
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
    release: Callable[[ReleaseRequest], ReleaseResult] | None = None


def restrict(table: pa.Table, dataset: Dataset, grant: Grant, secrets: ViewSecrets) -> pa.Table:
    terms = grant.terms
    if terms.row_filter is not None:
        table = table.filter(predicate(table, terms.row_filter))
    if terms.aggregate is not None:
        return aggregated(table, terms.aggregate, terms.generalised, dataset.table_schema, secrets.release)
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
    # A grant's pseudonyms are its own: the owner's tokens never leave the owner, so two grantees
    # cannot join their views, nor a grantee line up a view with another grant's.
    pseudonymised = set(dataset.table_schema.pseudonymised_columns())
    for name in dict.fromkeys([*terms.masked_columns, *grant.rekeyed(dataset)]):
        if name in columns:
            # A per-grant token: stable within the grant (counts and joins inside it work), useless
            # outside it, and keyed by a platform secret so the grantee cannot recompute it from guesses.
            # The owner's tokens are re-keyed as tokens; clear values are tokenised as values.
            tokens = rekeyed_tokens if name in pseudonymised else keyed_tokens
            table = table.set_column(columns.index(name), name, tokens(table.column(name), secrets.mask_key()))
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
PRIVACY_EPSILON, PRIVACY_DELTA = b"cityshare.privacy_epsilon", b"cityshare.privacy_delta"


def aggregated(
    table: pa.Table,
    terms: AggregateTerms,
    generalised: dict[str, str],
    schema: TableSchema,
    release: Callable[[ReleaseRequest], ReleaseResult] | None = None,
) -> pa.Table:
    """Groups of the rows (the grouping columns generalised as the grant says), counting subjects,
    not rows (the schema's x-subject: a group of six requests by one citizen is one subject).

    Of data about people, a differentially private release: each subject's contribution bounded
    (rows per group, groups, values clamped to the schema's bounds), then counts and sums with
    calibrated noise, and groups released only above a noisy threshold (functions/privacy/release.py);
    nothing is said of what was not released. Of other data, the exact groups of at least k subjects,
    and how many groups and rows were suppressed (in the table's metadata)."""
    subject = schema.subjects()
    needed = [c for c in table.column_names if c in terms.inputs()]
    frame = table.select(needed).append_column(_SUBJECT, subject_keys(table, subject))
    for name, granularity in generalised.items():
        if name in needed:
            frame = frame.set_column(needed.index(name), name, generalise(frame.column(name), granularity))
    if terms.cells is not None:
        from functions.columnar.cells import h3_cells

        cells = terms.cells
        located = h3_cells(frame.column(cells.latitude), frame.column(cells.longitude), cells.resolution)
        frame = frame.drop_columns([cells.latitude, cells.longitude]).append_column(cells.column, located)
    per_subject = frame.group_by([*terms.group_by, _SUBJECT], use_threads=True).aggregate([([], "count_all")])
    subjects = per_subject.group_by(terms.group_by, use_threads=True).aggregate([([], "count_all")])
    if not schema.is_personal():
        return _exact(frame, subjects.rename_columns([*terms.group_by, _SUBJECTS]), terms)
    if terms.privacy is None or release is None:
        raise ValueError("groups of data about people are released only with differential privacy")
    return _private(frame, terms, schema, release)


_SUBJECT, _SUBJECTS, _GROUP = "__subject", "__subjects", "__group"


def subject_keys(table: pa.Table, subject: SubjectDeclaration) -> pa.Array:
    """Who each row is about, as text; a row whose subject columns are null stands for itself."""
    row_ids = pc.binary_join_element_wise("\x00row:", pc.cast(pa.array(np.arange(table.num_rows)), pa.string()), "")
    if subject.each_row:
        return row_ids
    parts = [as_text(table.column(c).combine_chunks()) for c in subject.columns]
    joined = parts[0] if len(parts) == 1 else pc.binary_join_element_wise(*parts, "\x1f")
    return pc.coalesce(joined, row_ids)


def _exact(frame: pa.Table, subjects: pa.Table, terms: AggregateTerms) -> pa.Table:
    quantiled = [m for m in terms.measures if m.aggregate in QUANTILES]
    grouping = terms.group_by
    if quantiled:  # a number per group, to find each row's group (the key columns determine it)
        frame = frame.append_column(_GROUP, pa.array(_combined_codes([frame.column(c) for c in terms.group_by])))
        grouping = [*terms.group_by, _GROUP]
    exact = [m for m in terms.measures if m.aggregate not in QUANTILES]
    grouped = frame.group_by(grouping, use_threads=True).aggregate(
        [([], "count_all"), *((m.column, _PYARROW_AGGREGATES[m.aggregate]) for m in exact)]
    )
    grouped = grouped.join(subjects, keys=terms.group_by)
    kept = pc.greater_equal(grouped.column(_SUBJECTS), terms.min_group_size)
    suppressed_rows = pc.sum(pc.filter(grouped.column("count_all"), pc.invert(kept))).as_py() or 0
    suppressed_groups = len(grouped) - (pc.sum(kept).as_py() or 0)
    grouped = grouped.filter(kept)
    columns = [grouped.column(c) for c in terms.group_by]
    columns.append(grouped.column("count_all"))
    for measure in terms.measures:
        if measure.aggregate in QUANTILES:
            codes = np.asarray(grouped.column(_GROUP).to_numpy(), dtype=np.int64)
            columns.append(_group_quantiles(frame, measure.column, QUANTILES[measure.aggregate], codes))
        else:
            columns.append(grouped.column(f"{measure.column}_{_PYARROW_AGGREGATES[measure.aggregate]}"))
    return _named(columns, terms).replace_schema_metadata(
        {SUPPRESSED_GROUPS: str(suppressed_groups).encode(), SUPPRESSED_ROWS: str(suppressed_rows).encode()}
    )


def _group_quantiles(frame: pa.Table, column: str, alpha: float, wanted: np.ndarray) -> pa.Array:
    """The `alpha` quantile of `column`'s non-null values in each group of `frame` (by its _GROUP
    code), for the groups `wanted`, interpolated as DuckDB's quantile_cont; null where a group has no value."""
    values = frame.column(column).combine_chunks()
    valid = np.asarray(values.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    numbers = np.asarray(pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False), dtype=float)[valid]
    codes = np.asarray(frame.column(_GROUP).to_numpy(), dtype=np.int64)[valid]
    order = np.lexsort((numbers, codes))
    codes, numbers = codes[order], numbers[order]
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]]) if len(codes) else np.zeros(0, dtype=np.int64)
    ends = np.r_[starts[1:], len(codes)].astype(np.int64)
    position = starts + alpha * (ends - starts - 1)
    low, high = np.floor(position).astype(np.int64), np.ceil(position).astype(np.int64)
    found = numbers[low] + (numbers[high] - numbers[low]) * (position - low)
    heads = codes[starts]
    if not len(heads):
        return pa.nulls(len(wanted), pa.float64())
    at = np.minimum(np.searchsorted(heads, wanted), len(heads) - 1)
    present = heads[at] == wanted
    return pa.array(np.where(present, found[at], 0.0), mask=~present)


def _private(
    frame: pa.Table, terms: AggregateTerms, schema: TableSchema, release: Callable[[ReleaseRequest], ReleaseResult]
) -> pa.Table:
    assert terms.privacy is not None
    subject = schema.subjects()
    summed = sorted({m.column for m in terms.measures if m.aggregate in ("sum", "mean")})
    quantiled = [m for m in terms.measures if m.aggregate in QUANTILES]
    bounds, ranges = {}, {}
    for column in sorted(set(summed) | {m.column for m in quantiled}):
        # each value clamped to the schema's bounds (required for data about people)
        declared = schema.properties[column]
        low, high = float(declared.minimum or 0), float(declared.maximum or 0)
        frame = frame.set_column(
            frame.column_names.index(column), column, pc.min_element_wise(pc.max_element_wise(frame.column(column), low), high)
        )
        bounds[column], ranges[column] = max(abs(low), abs(high)), (low, high)
    grouping = terms.group_by
    if quantiled:  # a number per group, to find each row's group (the key columns determine it)
        frame = frame.append_column(_GROUP, pa.array(_combined_codes([frame.column(c) for c in terms.group_by])))
        grouping = [*terms.group_by, _GROUP]
    per = frame.group_by([*grouping, _SUBJECT], use_threads=True).aggregate([([], "count_all"), *((c, "sum") for c in summed)])
    # A subject weighs in at most max_groups groups (chosen by a keyed order, not by the data's),
    # for at most max_rows_per_group rows in each: its sums scaled to that many rows.
    per = per.take(_first_groups_of_each_subject(per, terms.group_by, subject.max_groups))
    rows = per.column("count_all").to_numpy(zero_copy_only=False).astype(float)
    bounded = np.minimum(rows, subject.max_rows_per_group)
    scaled = [pa.array(per.column(f"{c}_sum").to_numpy(zero_copy_only=False) * (bounded / rows)) for c in summed]
    pairs = per.select([_GROUP, _SUBJECT]) if quantiled else None
    per = pa.table(
        [*(per.column(c) for c in grouping), pa.array(bounded.astype(np.int64)), *scaled],
        names=[*grouping, "rows", *summed],
    )
    groups = per.group_by(grouping, use_threads=True).aggregate([("rows", "sum"), *((c, "sum") for c in summed)])
    keys = [str(position) for position in range(groups.num_rows)]  # opaque to the release: the group's row here
    quantiles = {}
    if pairs is not None:
        positions = np.asarray(groups.column(_GROUP).to_numpy(), dtype=np.int64)
        measured = frame.select([_GROUP, _SUBJECT, *sorted({m.column for m in quantiled})])
        limited = _bounded_rows(measured, pairs, subject.max_rows_per_group)
        for measure in quantiled:
            quantiles[measure.output()] = QuantileInput(
                alpha=QUANTILES[measure.aggregate],
                candidates=QUANTILE_CANDIDATES,
                histograms=_slot_histograms(limited, measure.column, ranges[measure.column], positions),
            )
    request = ReleaseRequest(
        epsilon=terms.privacy.epsilon,
        delta=terms.privacy.delta,
        k=terms.min_group_size,
        max_groups=subject.max_groups,
        max_rows=subject.max_rows_per_group,
        counts=dict(zip(keys, groups.column("rows_sum").to_pylist(), strict=True)),
        sums={c: dict(zip(keys, groups.column(f"{c}_sum").to_pylist(), strict=True)) for c in summed},
        bounds=bounds,
        quantiles=quantiles,
    )
    released = release(request)
    index = {key: position for position, key in enumerate(keys)}
    kept = sorted(index[key] for key in released.counts)
    order = [keys[i] for i in kept]
    counts = pa.array([released.counts[key] for key in order], pa.int64())
    columns = [groups.column(c).take(pa.array(kept, pa.int64())) for c in terms.group_by]
    columns.append(counts)
    for measure in terms.measures:
        if measure.aggregate == "count":
            columns.append(counts)
        elif measure.aggregate in QUANTILES:
            low, high = ranges[measure.column]
            step = (high - low) / (QUANTILE_CANDIDATES - 1)
            chosen = released.quantiles[measure.output()]
            columns.append(pa.array([low + chosen[key] * step for key in order], pa.float64()))
        else:
            noisy = np.array([released.sums[measure.column][key] for key in order], dtype=float)
            if measure.aggregate == "mean":
                noisy = noisy / np.maximum(counts.to_numpy(), 1)
            columns.append(pa.array(noisy))
    return _named(columns, terms).replace_schema_metadata(
        {PRIVACY_EPSILON: str(released.epsilon).encode(), PRIVACY_DELTA: str(released.delta).encode()}
    )


def _bounded_rows(frame: pa.Table, pairs: pa.Table, most: int) -> pa.Table:
    """The rows of `frame` a private release may use: those of the (group, subject) pairs kept (a
    subject's first max_groups groups), at most `most` rows of each pair, chosen at random."""
    joined = frame.join(pairs, keys=[_GROUP, _SUBJECT], join_type="inner")
    groups = np.asarray(joined.column(_GROUP).to_numpy(), dtype=np.int64)
    subjects = _codes(joined.column(_SUBJECT))
    order = np.lexsort((np.random.default_rng(secrets.randbits(64)).random(len(groups)), subjects, groups))
    pair = np.r_[True, (groups[order][1:] != groups[order][:-1]) | (subjects[order][1:] != subjects[order][:-1])]
    starts = np.maximum.accumulate(np.where(pair, np.arange(len(order)), 0)) if len(order) else order
    return joined.take(pa.array(order[(np.arange(len(order)) - starts) < most], pa.int64()))


def _slot_histograms(
    rows: pa.Table, column: str, bounds: tuple[float, float], positions: np.ndarray
) -> dict[str, dict[int, int]]:
    """Each group's non-null values of `column` as a histogram over slots (functions/privacy/release.py):
    slot 2i is the i-th of QUANTILE_CANDIDATES candidates evenly spaced over `bounds`, slot 2i + 1
    lies between candidates i and i + 1. Groups by their position in `positions` (their _GROUP codes)."""
    values = rows.column(column).combine_chunks()
    valid = np.asarray(values.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    numbers = np.asarray(pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False), dtype=float)[valid]
    low, high = bounds
    scaled = (numbers - low) / ((high - low) / (QUANTILE_CANDIDATES - 1)) if high > low else np.zeros(len(numbers))
    scaled = np.where(np.abs(scaled - np.rint(scaled)) < 1e-9, np.rint(scaled), scaled)  # on a candidate, exactly
    below = np.clip(np.floor(scaled), 0, QUANTILE_CANDIDATES - 1).astype(np.int64)
    slots = np.minimum(2 * below + (scaled > below), 2 * (QUANTILE_CANDIDATES - 1))
    order = np.argsort(positions)
    group_at = order[np.searchsorted(positions[order], np.asarray(rows.column(_GROUP).to_numpy(), dtype=np.int64)[valid])]
    width = 2 * QUANTILE_CANDIDATES
    found, rows_in = np.unique(group_at * width + slots, return_counts=True)
    histograms: dict[str, dict[int, int]] = {}
    for combined, count in zip(found.tolist(), rows_in.tolist(), strict=True):
        histograms.setdefault(str(combined // width), {})[combined % width] = count
    return histograms


def _first_groups_of_each_subject(per: pa.Table, group_by: list[str], most: int) -> pa.Array:
    """The rows of `per` (one per subject and group) keeping, for each subject, `most` of its groups
    in an order no one can steer (a keyed mix of subject and group, with a key drawn for this
    release): which groups a subject counts in does not depend on the data's order or values."""
    subjects = _codes(per.column(_SUBJECT))
    groups = _combined_codes([per.column(c) for c in group_by])
    salt = np.uint64(secrets.randbits(64))
    with np.errstate(over="ignore"):
        mixed = (subjects.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) ^ (groups.astype(np.uint64) + salt)
        mixed ^= mixed >> np.uint64(31)
        mixed *= np.uint64(0xBF58476D1CE4E5B9)
    order = np.lexsort((mixed, subjects))
    ordered = subjects[order]
    starts = np.r_[True, ordered[1:] != ordered[:-1]] if len(ordered) else np.zeros(0, dtype=bool)
    first = np.maximum.accumulate(np.where(starts, np.arange(len(ordered)), 0)) if len(ordered) else ordered
    return pa.array(order[(np.arange(len(ordered)) - first) < most], pa.int64())


def _codes(column: Any) -> np.ndarray:
    """Each value's index among the column's distinct values."""
    encoded = pc.dictionary_encode(column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column)
    return np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)


def _combined_codes(columns: list[Any]) -> np.ndarray:
    """One number per distinct combination of the columns' values (nulls a value of their own):
    each column's codes in a mixed radix, without making text of the values."""
    combined = np.zeros(len(columns[0]) if columns else 0, dtype=np.int64)
    distinct = 1
    for column in columns:
        flat = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        encoded = pc.dictionary_encode(flat.dictionary_decode() if pa.types.is_dictionary(flat.type) else flat)
        codes = np.asarray(pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False), dtype=np.int64) + 1
        if distinct * (len(encoded.dictionary) + 1) >= 1 << 62:  # renumber densely before the radix overflows
            uniques, inverse = np.unique(combined, return_inverse=True)
            combined, distinct = inverse.astype(np.int64), len(uniques)
        combined = combined * np.int64(len(encoded.dictionary) + 1) + codes
        distinct *= len(encoded.dictionary) + 1
    return combined


def _named(columns: list[Any], terms: AggregateTerms) -> pa.Table:
    return pa.table([c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in columns], names=terms.columns())


def view_bytes(sources: list[Any], dataset: Dataset, grant: Grant, secrets: ViewSecrets) -> bytes:
    """The view's Parquet (zstd) from the version's curated Parquet sources (paths or file objects)."""
    columns = read_columns(dataset, grant)
    # An aggregated view groups on its text columns: read them dictionary-encoded (as stored), which
    # groups much faster than plain strings.
    filtered = {c.column for c in grant.terms.row_filter.conditions()} if grant.terms.row_filter else set()
    text = [c for c in columns if grant.terms.aggregate and c in grant.terms.aggregate.group_by and c not in filtered]
    table = pa.concat_tables(read_parquet(source, columns, text) for source in sources)
    return _parquet(restrict(table.unify_dictionaries() if text else table, dataset, grant, secrets), dataset)


def linked_view_bytes(sources: list[Any], dataset: Dataset, kinds: list[str], secrets: ViewSecrets) -> bytes:
    """A grantee's own dataset with the columns of the linked kinds re-keyed into the linkage space."""
    table = pa.concat_tables(read_parquet(source) for source in sources)
    for name in linked_own_columns(dataset, kinds):
        if name in table.column_names and secrets.linked is not None:
            index = table.column_names.index(name)
            table = table.set_column(index, name, secrets.linked(name, table.column(name).combine_chunks()))
    return _parquet(table, dataset)


def _parquet(table: pa.Table, dataset: Dataset) -> bytes:
    sink = io.BytesIO()
    pq.write_table(with_geoparquet_metadata(table, dataset.table_schema.wkb_columns()), sink, compression="zstd")
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

    def __init__(
        self,
        settings: Settings,
        keys: KeyService,
        scopes: DepartmentScopes,
        department_keys: DepartmentKeys,
        budget: Callable[[Dataset, Grant, int], None] = lambda *_: None,
    ) -> None:
        self._settings = settings
        self._keys = keys
        self._scopes = scopes
        self._department_keys = department_keys
        self._budget = budget  # spends a private release's epsilon, once its request is known to fit
        self._releases = Releases(settings.privacy_function)

    def __call__(
        self, dataset: Dataset, version: int, files: list[str], grant: Grant, now: str, linked_dataset: bool = False
    ) -> BuiltView:
        key = view_key(dataset.dataset_id, version, grant, linked_dataset, per_grant=bool(grant.rekeyed(dataset)))
        bucket = self._settings.data_bucket
        s3 = self._scopes.s3(dataset.owner, dataset.dataset_id)
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
            # The budget is spent once the release is known to fit (a view too large spends nothing).
            release=lambda request: self._releases(request, spend=lambda: self._budget(dataset, grant, version)),
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
        s3 = self._scopes.s3(dataset.owner, dataset.dataset_id)
        vaults = []
        for file in files:
            sealed_key = vault_key(file, column)
            # Listed first: to a session whose listing is held to prefixes, S3 answers a missing object
            # AccessDenied, not NoSuchKey.
            if not s3.list_objects_v2(Bucket=self._settings.data_bucket, Prefix=sealed_key, MaxKeys=1).get("KeyCount"):
                continue  # no long value in that version: every token opens with the key
            body = s3.get_object(Bucket=self._settings.data_bucket, Key=sealed_key)["Body"]
            data_key = self._keys.dataset_key(dataset.dataset_id, dataset.owner)
            vaults.append(read_parquet(io.BytesIO(open_stream(body.iter_chunks(1024 * 1024), data_key, sealed_key.encode()))))
        return rekeyed(
            tokens,
            self._keys.pseudonymisation_key(dataset.owner, dataset.dataset_id),
            pa.concat_tables(vaults) if vaults else None,
            self._keys.linkage_key(grant.grant_id, personal.category),
        )
