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
from functions.columnar.types import arrow_type, convert, declared_types, truth_mask
from functions.ingest.models import Issue

MAX_ISSUES_KEPT = 100
CONTROL_CHARACTERS = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]"
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
                    mask = truth_mask(found)
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
            control = truth_mask(pc.match_substring_regex(original, CONTROL_CHARACTERS))
            if control.any():
                problems.append(("control_characters", control))
                original = pc.if_else(pa.array(control), pa.scalar(None, original.type), original)
        typed, wrong_type = convert(original, target)
        problems.append(("wrong_type", wrong_type))
        missing = truth_mask(original.is_null()) & ~wrong_type
        if not nullable:
            problems.append(("required", missing))
        present = typed.is_valid()
        if pa.types.is_floating(target):
            problems.append(("not_finite", truth_mask(pc.and_(present, pc.invert(pc.is_finite(typed))))))
        if pa.types.is_timestamp(target) or pa.types.is_date(target):
            # Arrow parses years 0 and 10000; no Python, pandas or DuckDB reader reads them back.
            earliest, latest = (pa.scalar(bound, target) for bound in _CALENDAR[pa.types.is_date(target)])
            extremes = pc.min_max(typed)  # one pass settles the usual case; the mask only when it is needed
            if extremes["min"].is_valid and (
                pc.less(extremes["min"], earliest).as_py() or pc.greater(extremes["max"], latest).as_py()
            ):
                problems.append(("out_of_range", truth_mask(pc.or_(pc.less(typed, earliest), pc.greater(typed, latest)))))
        if column.enum is not None:
            allowed = (
                pa.array(column.enum).cast(target) if not pa.types.is_string(target) else pa.array([str(v) for v in column.enum])
            )
            problems.append(("enum", truth_mask(pc.and_(present, pc.invert(pc.is_in(typed, value_set=allowed))))))
        if column.minimum is not None:
            problems.append(("minimum", truth_mask(pc.less(typed, column.minimum))))
        if column.maximum is not None:
            problems.append(("maximum", truth_mask(pc.greater(typed, column.maximum))))
        if pa.types.is_string(target):
            if column.maxLength is not None or column.minLength is not None:
                lengths = pc.utf8_length(typed)
                if column.maxLength is not None:
                    problems.append(("max_length", truth_mask(pc.greater(lengths, column.maxLength))))
                if column.minLength is not None:
                    problems.append(("min_length", truth_mask(pc.less(lengths, column.minLength))))
            if column.pattern is not None:
                problems.append(("pattern", truth_mask(pc.and_(present, pc.invert(self._matches(name, typed, column.pattern))))))
            if column.geometry is not None:
                from functions.columnar.geometry import geometry_problems  # shapely, only for a geometry column

                problems.extend(geometry_problems(typed, column.geometry))
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
    "not_geojson": "is not a GeoJSON geometry",
    "geometry_type": "is not one of the column's geometry types",
    "invalid_geometry": "is not a valid shape (a ring crossing itself, a polygon not closed)",
    "out_of_bounds": "lies outside the column's declared bounds",
}
