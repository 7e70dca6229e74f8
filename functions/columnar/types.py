"""The one mapping of declared column types to Arrow's, and the one conversion of read values to
them (a mask of what would not convert), for ingest, protection and views alike. Imported only by
the functions that handle data files (pyarrow)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from functions.catalog.models import ColumnSchema

MAX_NUMBER_TEXT = 64
INTEGER_TEXT = r"^[+-]?[0-9]{1,18}$"
NUMBER_TEXT = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]{1,3})?$"
_BARE_TIME = r"^(1970-01-01T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?)$"


def read_parquet(source: Any, columns: list[str] | None = None, read_dictionary: list[str] | None = None) -> pa.Table:
    """A Parquet file (path or file object) as a table. Not `pq.read_table`: it goes through Arrow's
    dataset scanner, whose threads can outlive the interpreter and abort a process at exit (apache/arrow
    #34314; 13 of 120 short processes here), as the embedded stack is on Ctrl-C."""
    return pq.ParquetFile(source, read_dictionary=read_dictionary).read(columns=columns)


def as_text(values: pa.Array) -> pa.Array:
    """Values as text for keys and tokens: bytes (a geometry's WKB) as they are, since a cast to
    text refuses bytes that are not UTF-8; other types cast."""
    if pa.types.is_string(values.type):
        return values
    return values.view(pa.string()) if pa.types.is_binary(values.type) else pc.cast(values, pa.string())


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


def truth_mask(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
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
        too_long = truth_mask(pc.greater(pc.utf8_length(original), MAX_NUMBER_TEXT))  # "1" * 3000 casts to inf
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
        prefiltered = truth_mask(pc.and_(original.is_valid(), pc.invert(well_formed)))
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
