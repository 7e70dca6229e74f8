"""Row-level validation of a batch against the dataset's JSON Schema, vectorised with pyarrow.compute.

Each column is converted to its declared type (a fast whole-column cast; only when that fails are
the offending values isolated), then checked against nullability, enum, range, length and pattern.
A row with any problem is rejected; each problem is counted by rule and the first ones are kept
with their row, column and an excerpt of the value.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from functions.catalog.models import ColumnSchema, TableSchema
from functions.ingest.models import Issue

MAX_ISSUES_KEPT = 100
MAX_NUMBER_TEXT = 64
CONTROL_CHARACTERS = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]"
INTEGER_TEXT = r"^[+-]?[0-9]{1,18}$"
NUMBER_TEXT = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]{1,3})?$"
_BARE_TIME = r"^(1970-01-01T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?)$"


def declared_types(column: ColumnSchema) -> tuple[str, bool]:
    """(the JSON type, whether null is allowed by the type)."""
    types = column.type if isinstance(column.type, list) else [column.type]
    concrete = [t for t in types if t != "null"]
    return (concrete[0] if concrete else "string"), "null" in types


def arrow_type(column: ColumnSchema) -> pa.DataType:
    json_type, _ = declared_types(column)
    if json_type == "string":
        return {"date-time": pa.timestamp("us", tz="UTC"), "date": pa.date32(), "time": pa.time64("us")}.get(
            column.format or "", pa.string()
        )
    return {"integer": pa.int64(), "number": pa.float64(), "boolean": pa.bool_()}[json_type]


# A rule's verdict per row: an Arrow boolean array (null: not applicable) or a numpy mask.
Problem: TypeAlias = Any  # a boolean pa.Array (null: not applicable) or a numpy mask


@dataclass
class ValidatedBatch:
    valid: pa.RecordBatch
    rejected_rows: list[int]
    rejected: pa.RecordBatch | None  # the rejected rows as read (text), for quarantine after protection
    rejected_reasons: list[list[str]]
    counts: Counter[str] = field(default_factory=Counter)
    issues: list[Issue] = field(default_factory=list)


class BatchValidator:
    def __init__(self, schema: TableSchema) -> None:
        self.schema = schema
        self.targets = {name: arrow_type(column) for name, column in schema.properties.items()}
        # A report never shows a personal column's value: it names row, column and rule.
        self.personal = set(schema.personal_columns())
        # Per pattern column, decided on the first batch: whether its values repeat enough that
        # matching each distinct value once (then spreading the answers) costs less than one per row.
        self._repeating: dict[str, bool] = {}

    def _matches(self, name: str, values: pa.Array, pattern: str) -> pa.Array:
        if self._repeating.get(name, True):
            encoded = pc.dictionary_encode(values)
            if name not in self._repeating:
                self._repeating[name] = len(encoded.dictionary) * 4 <= len(values)
            return pc.take(pc.match_substring_regex(encoded.dictionary, pattern), encoded.indices)
        return pc.match_substring_regex(values, pattern)

    def validate(self, batch: pa.RecordBatch, first_row: int, issues_kept: int = 0) -> ValidatedBatch:
        """`first_row` numbers the batch's rows in the file (1-based data rows)."""
        rows = batch.num_rows
        bad_any = np.zeros(rows, dtype=bool)
        reasons: dict[int, list[str]] = {}
        counts: Counter[str] = Counter()
        issues: list[Issue] = []
        typed_columns = []
        # One column after another: the pipeline already reads, validates and writes in threads of
        # their own, and a pool here as well only made them contend (measured: +50 ms CPU per 1M rows).
        checked = [self._check_column(name, column, batch.column(name)) for name, column in self.schema.properties.items()]
        for (name, _), (typed, problems) in zip(self.schema.properties.items(), checked, strict=True):
            original = batch.column(name)
            typed_columns.append(typed)
            for rule, found in problems:
                if isinstance(found, np.ndarray):
                    mask = found
                elif found.null_count == len(found) or not pc.any(found).as_py():
                    continue  # the usual case: nothing wrong, no numpy mask needed
                else:
                    mask = _mask(found)
                positions = np.flatnonzero(mask)
                if not len(positions):
                    continue
                counts[rule] += len(positions)
                bad_any[positions] = True
                for position in positions[:MAX_ISSUES_KEPT]:
                    reasons.setdefault(int(position), []).append(f"{name}:{rule}")
                room = MAX_ISSUES_KEPT - issues_kept - len(issues)
                for position in positions[: max(room, 0)]:
                    value = original[int(position)].as_py()
                    issues.append(
                        Issue(
                            row=first_row + int(position),
                            column=name,
                            rule=rule,
                            message=_MESSAGES[rule],
                            value=None if value is None or name in self.personal else str(value)[:80],
                        )
                    )
        typed_batch = pa.RecordBatch.from_arrays(typed_columns, names=list(self.schema.properties))
        if not bad_any.any():
            return ValidatedBatch(typed_batch, [], None, [], counts, issues)
        keep = pa.array(~bad_any)
        rejected_positions = np.flatnonzero(bad_any)
        return ValidatedBatch(
            valid=typed_batch.filter(keep),
            rejected_rows=[first_row + int(p) for p in rejected_positions],
            rejected=batch.take(pa.array(rejected_positions)),
            rejected_reasons=[reasons.get(int(p), []) for p in rejected_positions],
            counts=counts,
            issues=issues,
        )

    def _check_column(self, name: str, column: ColumnSchema, original: pa.Array) -> tuple[pa.Array, list[tuple[str, Problem]]]:
        target = self.targets[name]
        _, null_in_type = declared_types(column)
        nullable = null_in_type or name not in self.schema.required
        problems: list[tuple[str, Problem]] = []
        if (pa.types.is_string(original.type) or pa.types.is_large_string(original.type)) and _has_control_bytes(original):
            control = _mask(pc.match_substring_regex(original, CONTROL_CHARACTERS))
            if control.any():
                problems.append(("control_characters", control))
                original = pc.if_else(pa.array(control), pa.scalar(None, original.type), original)
        typed, wrong_type = convert(original, target)
        problems.append(("wrong_type", wrong_type))
        missing = _mask(original.is_null()) & ~wrong_type
        if not nullable:
            problems.append(("required", missing))
        present = typed.is_valid()
        if pa.types.is_floating(target):
            problems.append(("not_finite", _mask(pc.and_(present, pc.invert(pc.is_finite(typed))))))
        if pa.types.is_timestamp(target) or pa.types.is_date(target):
            # Arrow parses years 0 and 10000; no Python, pandas or DuckDB reader reads them back.
            earliest, latest = (pa.scalar(bound, target) for bound in _CALENDAR[pa.types.is_date(target)])
            extremes = pc.min_max(typed)  # one pass settles the usual case; the mask only when it is needed
            if extremes["min"].is_valid and (
                pc.less(extremes["min"], earliest).as_py() or pc.greater(extremes["max"], latest).as_py()
            ):
                problems.append(("out_of_range", _mask(pc.or_(pc.less(typed, earliest), pc.greater(typed, latest)))))
        if column.enum is not None:
            allowed = (
                pa.array(column.enum).cast(target) if not pa.types.is_string(target) else pa.array([str(v) for v in column.enum])
            )
            problems.append(("enum", _mask(pc.and_(present, pc.invert(pc.is_in(typed, value_set=allowed))))))
        if column.minimum is not None:
            problems.append(("minimum", _mask(pc.less(typed, column.minimum))))
        if column.maximum is not None:
            problems.append(("maximum", _mask(pc.greater(typed, column.maximum))))
        if pa.types.is_string(target):
            if column.maxLength is not None or column.minLength is not None:
                lengths = pc.utf8_length(typed)
                if column.maxLength is not None:
                    problems.append(("max_length", _mask(pc.greater(lengths, column.maxLength))))
                if column.minLength is not None:
                    problems.append(("min_length", _mask(pc.less(lengths, column.minLength))))
            if column.pattern is not None:
                problems.append(("pattern", _mask(pc.and_(present, pc.invert(self._matches(name, typed, column.pattern))))))
        return typed, problems


_CONTROL_BYTES = np.zeros(256, dtype=bool)
_CONTROL_BYTES[[*range(0, 9), 11, 12, *range(14, 32), 127]] = True


def _has_control_bytes(values: pa.Array) -> bool:
    """One numpy pass over the column's character data; the per-row regex runs only when it finds one."""
    data = values.buffers()[2]
    if data is None or not data.size:
        return False
    characters = np.frombuffer(data, dtype=np.uint8)
    if characters.min() >= 32 and (characters.max() < 127 or not (characters == 127).any()):
        return False  # two SIMD reductions settle the usual case
    return bool(_CONTROL_BYTES[characters].any())


def _mask(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A boolean numpy mask; nulls count as False (not a problem of this rule)."""
    return np.asarray(pc.fill_null(values, False).to_numpy(zero_copy_only=False), dtype=bool)


def convert(original: pa.Array, target: pa.DataType) -> tuple[pa.Array, np.ndarray]:
    """(values as `target`, null where they could not be converted; the mask of those failures)."""
    if original.type == target:
        return original, np.zeros(len(original), dtype=bool)
    if pa.types.is_null(original.type):
        return pa.nulls(len(original), target), np.zeros(len(original), dtype=bool)
    if pa.types.is_time(target) and pa.types.is_string(original.type):
        # Arrow parses no bare times: read them as instants of 1970-01-01 (UTC when no offset is given).
        stamped = pc.replace_substring_regex(pc.binary_join_element_wise("1970-01-01T", original, ""), _BARE_TIME, r"\1Z")
        instants, failed = convert(stamped, pa.timestamp("us", tz="UTC"))
        return pc.cast(instants, target), failed
    numeric_text = pa.types.is_string(original.type) and (pa.types.is_integer(target) or pa.types.is_floating(target))
    try:
        converted = pc.cast(original, target)  # the common case: everything converts
        if not numeric_text:
            return converted, np.zeros(len(original), dtype=bool)
        too_long = _mask(pc.greater(pc.utf8_length(original), MAX_NUMBER_TEXT))  # "1" * 3000 casts to inf
        if not too_long.any():
            return converted, too_long
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    candidates = original
    prefiltered = np.zeros(len(original), dtype=bool)
    if numeric_text:
        syntax = INTEGER_TEXT if pa.types.is_integer(target) else NUMBER_TEXT
        well_formed = pc.and_(
            pc.match_substring_regex(original, syntax), pc.less_equal(pc.utf8_length(original), MAX_NUMBER_TEXT)
        )
        prefiltered = _mask(pc.and_(original.is_valid(), pc.invert(well_formed)))
        if prefiltered.any():
            candidates = pc.if_else(pa.array(prefiltered), pa.scalar(None, original.type), original)
    converted, failed = _cast_isolating(candidates, target)
    return converted, failed | prefiltered


def _cast_isolating(values: pa.Array, target: pa.DataType) -> tuple[pa.Array, np.ndarray]:
    """Cast all at once; when that fails, halve until the values that cannot be cast are found."""
    try:
        return pc.cast(values, target), np.zeros(len(values), dtype=bool)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        if len(values) == 1:
            return pa.nulls(1, target), np.ones(1, dtype=bool)
    middle = len(values) // 2
    left, left_failed = _cast_isolating(values.slice(0, middle), target)
    right, right_failed = _cast_isolating(values.slice(middle), target)
    return pa.concat_arrays([left, right]), np.concatenate([left_failed, right_failed])


# The instants and dates every reader can hold: years 1 to 9999 (UTC), keyed by "is a date".
_CALENDAR = {
    False: (datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)),
    True: (date.min, date.max),
}

_MESSAGES = {
    "out_of_range": "is outside the years 1 to 9999",
    "control_characters": "contains NUL or control characters",
    "wrong_type": "is not of the declared type",
    "required": "is missing but required",
    "not_finite": "is not a finite number",
    "enum": "is not one of the allowed values",
    "minimum": "is below the minimum",
    "maximum": "is above the maximum",
    "max_length": "is longer than allowed",
    "min_length": "is shorter than allowed",
    "pattern": "does not match the pattern",
}
