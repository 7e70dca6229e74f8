"""Reading a landing object in bounded batches: CSV, JSON lines and Parquet, optionally gzip'd.

Every reader yields (RecordBatch, issues) where the batch holds the declared columns only (absent
optional columns filled with nulls) and the issues are row-level problems found while reading
(ragged CSV rows, malformed or nested JSON). File-level problems raise FileRejected.
"""

from __future__ import annotations

import io
import json
import re
import threading
import zlib
from collections.abc import Iterator
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from functions.catalog.models import TableSchema
from functions.core.strict_json import TWICE, no_constant, unique_keys
from functions.ingest.models import CsvDialect, Issue

BATCH_ROWS = 65_536
CSV_BLOCK_BYTES = 4 * 1024 * 1024  # also the longest row accepted
CSV_READ_AHEAD_BLOCKS = 16  # 64 MB: measured no slower than Arrow's own 32 blocks; 4 cost 3 %
MAX_ROW_BYTES = 1024 * 1024
MAX_JSON_DEPTH = 32
MAX_NUMBER_DIGITS = 64
GZIP_MAX_RATIO = 200
GZIP_RATIO_GRACE_BYTES = 64 * 1024 * 1024
MAX_DECOMPRESSED_BYTES = 20 * 1024**3

ReadResult = tuple[pa.RecordBatch, list[Issue]]
JSON_BLOCK_BYTES = 16 * 1024 * 1024
_JSON_READ = pajson.ReadOptions(block_size=1024 * 1024, use_threads=True)
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class FileRejected(Exception):
    """The whole file is refused (and kept, with a report): rule is a stable code."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message


class _Prepended(io.RawIOBase):
    """A raw stream with bytes already read from it put back in front (to sniff a file's start)."""

    def __init__(self, head: bytes, raw: BinaryIO) -> None:
        self._head, self._raw = head, raw

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        data = self._head[: len(target)] if self._head else self._raw.read(len(target))
        self._head = self._head[len(data) :] if self._head else b""
        target[: len(data)] = data
        return len(data)


class PacedReader(io.RawIOBase):
    """Lets a reader get at most `window` bytes ahead of what its consumer has taken. Arrow's CSV
    reader reads up to 32 blocks ahead in a thread of its own (128 MB at 4 MB blocks, twice that
    once parsed) whenever its consumer is the slower; paced, a file's ingest holds a few blocks,
    whatever the disk's or the network's speed. `release()`: the consumer stops; reads end."""

    def __init__(self, inner: BinaryIO, window: int) -> None:
        self._inner = inner
        self._allowed = window
        self._given = 0
        self._released = False
        self._turn = threading.Condition()

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        with self._turn:
            self._turn.wait_for(lambda: self._given < self._allowed or self._released)
            if self._released:
                return 0  # the consumer is gone: the end, as far as the reader is concerned
            room = min(len(target), self._allowed - self._given)
        data = self._inner.read(room)
        target[: len(data)] = data
        with self._turn:
            self._given += len(data)
        return len(data)

    def advance(self, taken: int) -> None:
        """The consumer has taken `taken` more bytes' worth."""
        with self._turn:
            self._allowed += taken
            self._turn.notify_all()

    def release(self) -> None:
        with self._turn:
            self._released = True
            self._turn.notify_all()


class BoundedGzipReader(io.RawIOBase):
    """Decompresses gzip on the fly and refuses a decompression bomb: output may not exceed
    GZIP_MAX_RATIO x the compressed bytes read (past a grace), nor MAX_DECOMPRESSED_BYTES."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._buffer = b""
        self._pending = b""
        self._read_in = 0
        self._written_out = 0
        self._eof = False

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        while not self._buffer and not self._eof:
            self._inflate_some()
        count = min(len(target), len(self._buffer))
        target[:count] = self._buffer[:count]
        self._buffer = self._buffer[count:]
        return count

    def _inflate_some(self) -> None:
        data = self._pending
        if not data:
            data = self._raw.read(256 * 1024)
            self._read_in += len(data)
        try:
            if data:
                self._buffer = self._inflater.decompress(data, 4 * 1024 * 1024)  # bounded output per step
                self._pending = self._inflater.unconsumed_tail
            else:
                self._buffer = self._inflater.flush()
                self._eof = True
                if not self._inflater.eof:
                    raise FileRejected("truncated_gzip", "The gzip stream ends before its end marker")
        except zlib.error as error:
            raise FileRejected("invalid_gzip", f"The file is not valid gzip: {error}") from None
        self._written_out += len(self._buffer)
        too_large = self._written_out > MAX_DECOMPRESSED_BYTES
        too_dense = self._written_out > GZIP_RATIO_GRACE_BYTES and self._written_out > GZIP_MAX_RATIO * max(self._read_in, 1)
        if too_large or too_dense:
            raise FileRejected("decompression_bomb", f"The file expands more than {GZIP_MAX_RATIO}x; refused")


def open_source(raw: BinaryIO, compression: str) -> BinaryIO:
    """The decompressed byte stream of a landing object (gzip when declared or when it starts like gzip)."""
    head = raw.read(2)
    if not head:
        raise FileRejected("empty_file", "The file is empty")
    stream: Any = _Prepended(head, raw)
    if compression == "gzip" or head == b"\x1f\x8b":
        stream = BoundedGzipReader(stream)
    return io.BufferedReader(stream, buffer_size=1024 * 1024)


def withholds_values(schema: TableSchema) -> bool:
    """Whether reports about this schema's files show no raw text at all (raw lines, parser messages,
    header names that look like data): true as soon as a column is personal, since any of that text
    may hold a personal value."""
    return bool(schema.personal_columns())


def excerpt(text: str, schema: TableSchema) -> str | None:
    return None if withholds_values(schema) else text[:80]


def check_columns(present: list[str], schema: TableSchema) -> None:
    """Schema drift at file level: unknown columns, or a required column missing."""
    unknown = [c for c in present if c not in schema.properties]
    if unknown and not schema.additionalProperties:
        hint = header_hint(present, unknown, schema)
        if hint:
            raise FileRejected("unexpected_columns", hint)
        if withholds_values(schema):
            # A file without its header row has data where the names should be: name none of them.
            raise FileRejected(
                "unexpected_columns",
                f"{len(unknown)} column(s) are not in the dataset's schema (names withheld: is the header row missing?); "
                f"the schema's columns are {', '.join(list(schema.properties)[:50])}",
            )
        raise FileRejected("unexpected_columns", f"Columns not in the dataset's schema: {', '.join(unknown[:20])}")
    missing = [c for c in schema.required if c not in present]
    if missing:
        raise FileRejected("missing_columns", f"Required columns missing: {', '.join(missing)}")
    duplicated = sorted({c for c in present if present.count(c) > 1 and c in schema.properties})
    if len(set(present)) < len(present):
        raise FileRejected("duplicate_columns", f"Columns named twice: {', '.join(duplicated) or '(names withheld)'}")


def header_hint(present: list[str], unknown: list[str], schema: TableSchema) -> str | None:
    """What is wrong with a header that is the schema's columns written another way: another
    delimiter than declared, or names in another case. Only schema names are quoted, never the file's."""
    columns = set(schema.properties)
    if len(present) == 1:
        for delimiter, called in ((";", "semicolons"), ("\t", "tabs"), ("|", "bars"), (",", "commas")):
            parts = [part.strip().strip('"') for part in present[0].split(delimiter)]
            if len(parts) > 1 and set(parts) <= columns:
                return (
                    f"The header is the schema's columns separated by {called}, not by the declared delimiter: "
                    f"declare csv.delimiter {delimiter!r} (the CLI and SDK detect it)"
                )
    folded = {column.casefold(): column for column in columns}
    if all(name.strip().casefold() in folded for name in unknown):
        renamed = ", ".join(sorted({folded[name.strip().casefold()] for name in unknown})[:20])
        return f"Column names are matched exactly (case and spaces count): the header should name {renamed}"
    return None


def _declared(batch: pa.RecordBatch, schema: TableSchema) -> pa.RecordBatch:
    """The batch's declared columns in schema order; absent optional ones as nulls. A geometry
    column given as WKB (binary, as GeoParquet writes it) is read as the GeoJSON it stands for."""
    columns = []
    shapes = schema.geometry_columns()
    for name in schema.properties:
        index = batch.schema.get_field_index(name)
        column = batch.column(index) if index >= 0 else pa.nulls(batch.num_rows, pa.string())
        if name in shapes and (pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type)):
            from functions.columnar.geometry import geojson_of_wkb  # shapely, only for a geometry column

            column = geojson_of_wkb(column)
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, names=list(schema.properties))


def csv_batches(stream: BinaryIO, schema: TableSchema, dialect: CsvDialect) -> Iterator[ReadResult]:
    ragged: list[Issue] = []

    def on_invalid_row(row: Any) -> str:
        ragged.append(
            Issue(
                row=row.number,
                rule="ragged_row",
                message=f"expected {row.expected_columns} fields, found {row.actual_columns}",
                value=excerpt(row.text or "", schema),
            )
        )
        return "skip"

    encoding = "utf8" if dialect.encoding in ("utf-8", "utf-8-sig") else dialect.encoding
    paced = PacedReader(stream, CSV_READ_AHEAD_BLOCKS * CSV_BLOCK_BYTES)
    # The finally ends the pacing while Arrow's reader is still held: dropping the reader waits for
    # its reading thread, which may be waiting for this consumer.
    try:
        try:
            reader = pacsv.open_csv(
                paced,
                read_options=pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES, encoding=encoding, use_threads=True),
                parse_options=pacsv.ParseOptions(
                    delimiter=dialect.delimiter, quote_char=dialect.quote_char, invalid_row_handler=on_invalid_row
                ),
                convert_options=pacsv.ConvertOptions(
                    column_types=dict.fromkeys(schema.properties, pa.string()),
                    strings_can_be_null=True,
                    check_utf8=True,
                ),
            )
            # A BOM before the header is not part of the first column's name.
            names = [name.lstrip("\ufeff") for name in reader.schema.names]
        except (pa.ArrowException, UnicodeDecodeError) as error:
            raise FileRejected(*_csv_problem(error, schema)) from None
        check_columns(names, schema)
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            except (pa.ArrowException, UnicodeDecodeError) as error:
                raise FileRejected(*_csv_problem(error, schema)) from None
            paced.advance(CSV_BLOCK_BYTES)  # a batch is a block of the file
            batch = pa.RecordBatch.from_arrays(batch.columns, names=names)
            _check_row_size(batch)
            issues, ragged[:] = list(ragged), []
            yield _declared(batch, schema), issues
        if ragged:
            empty = pa.RecordBatch.from_pylist([], schema=pa.schema([(n, pa.string()) for n in names]))
            yield _declared(empty, schema), ragged
    finally:
        paced.release()


def _check_row_size(batch: pa.RecordBatch) -> None:
    """The reader accepts long values; CityShare's row limit is MAX_ROW_BYTES (a value cannot exceed it)."""
    for column in batch.columns:
        if pa.types.is_string(column.type) and len(column) and (pc.max(pc.binary_length(column)).as_py() or 0) > MAX_ROW_BYTES:
            raise FileRejected("row_too_large", f"A value is longer than {MAX_ROW_BYTES // 1024} KB")


def _csv_problem(error: Exception, schema: TableSchema) -> tuple[str, str]:
    text = str(error)
    if isinstance(error, UnicodeDecodeError) or "UTF8" in text or "utf8" in text.lower():
        return "invalid_encoding", "The file is not valid UTF-8; declare its encoding (csv.encoding)"
    if "straddling" in text or "block size" in text.lower():
        return "row_too_large", f"A row is longer than {CSV_BLOCK_BYTES // 1024 // 1024} MB"
    if "Empty CSV" in text:
        return "empty_file", "The file has no header row"
    return "unreadable_csv", "The CSV file could not be parsed" if withholds_values(schema) else text[:300]


def jsonl_batches(stream: BinaryIO, schema: TableSchema) -> Iterator[ReadResult]:
    """JSON lines in blocks of whole lines. A block that is plainly well-formed (flat objects, one
    per line, no long numbers, no NaN, valid UTF-8) is parsed by Arrow's JSON reader at C speed; any
    other block is read line by line, so every problem is found and reported per line, as before."""
    explicit = pa.schema([(name, _json_arrow_type(column)) for name, column in schema.properties.items()])
    options = pajson.ParseOptions(
        explicit_schema=explicit,
        unexpected_field_behavior="ignore" if schema.additionalProperties else "error",
    )
    first_line = 1
    for block in _line_blocks(stream):
        ends = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == 10)  # every line ends with "\n"
        lines = len(ends)
        parsed = _fast_block(block, ends, options, schema)
        if parsed is not None:
            yield parsed, []
        else:
            yield from _slow_lines(block.splitlines(keepends=True), first_line, schema)
        first_line += lines


def _json_arrow_type(column: Any) -> pa.DataType:
    """How Arrow's JSON reader is told to read a column: numbers, booleans and text as such (dates
    and times stay text: the validator converts them, as for every format)."""
    kind = column.kinds()[0] if column.kinds() else "string"
    return {"integer": pa.int64(), "number": pa.float64(), "boolean": pa.bool_()}.get(kind, pa.string())


def _line_blocks(stream: BinaryIO) -> Iterator[bytes]:
    """The stream in blocks of about JSON_BLOCK_BYTES that end at a line's end (the last may not)."""
    pending = b""
    while chunk := stream.read(JSON_BLOCK_BYTES):
        pending += chunk
        cut = pending.rfind(b"\n")
        if cut < 0:
            if len(pending) > MAX_ROW_BYTES:
                raise FileRejected("row_too_large", f"A line is longer than {MAX_ROW_BYTES} bytes")
            continue
        yield pending[: cut + 1]
        pending = pending[cut + 1 :]
    if pending:
        yield pending if pending.endswith(b"\n") else pending + b"\n"


# Every digit to "0", everything else to " ": a number too long for the line-by-line reader is then
# a run of zeros, found by one substring search (both at C speed, over one translated copy).
_SCREENED = bytes(0x30 if byte in b"0123456789" else 0x20 for byte in range(256))
_TOO_MANY_DIGITS = b"0" * (MAX_NUMBER_DIGITS + 1)


def _has_long_numbers(block: bytes) -> bool:
    """A number too long for the line-by-line reader to accept (Arrow would read it, rounded)."""
    return _TOO_MANY_DIGITS in block.translate(_SCREENED)


def _has_non_finite(table: pa.Table) -> bool:
    """NaN or Infinity, which Arrow's reader accepts and JSON does not (nor does the line-by-line
    reader), found in the parsed numbers rather than searched for in the text: a string value
    "NaN" is fine, and a number that overflows to infinity is caught too."""
    return any(
        pc.any(pc.invert(pc.is_finite(column))).as_py()
        for column in table.columns
        if pa.types.is_floating(column.type) and column.null_count < len(column)
    )


def _fast_block(block: bytes, ends: np.ndarray, options: pajson.ParseOptions, schema: TableSchema) -> pa.RecordBatch | None:
    """The block as one batch when Arrow can read it exactly as the line-by-line reader would;
    None when anything in it needs the careful path."""
    # One brace per line and no bracket: nothing nests (Arrow's parser recurses), nothing to doubt.
    # Blank lines, which Arrow skips, show as fewer rows than lines below.
    lines = len(ends)
    braces = int(np.count_nonzero(np.frombuffer(block, dtype=np.uint8) == 0x7B))
    if not lines or braces != lines or b"[" in block or _has_long_numbers(block):
        return None
    if np.diff(ends, prepend=-1).max() > MAX_ROW_BYTES:
        return None
    try:
        block.decode("utf-8")
        table = pajson.read_json(io.BytesIO(block), read_options=_JSON_READ, parse_options=options)
    except (UnicodeDecodeError, pa.ArrowException):
        return None
    if table.num_rows != lines or _has_non_finite(table):
        return None
    batch = table.combine_chunks().to_batches()[0] if table.num_rows else None
    return _declared(batch, schema) if batch is not None else None


def _slow_lines(lines: list[bytes], first_line: int, schema: TableSchema) -> Iterator[ReadResult]:
    names = list(schema.properties)
    rows: dict[str, list[str | None]] = {n: [] for n in names}
    issues: list[Issue] = []
    count = 0
    for number, line in enumerate(lines, start=first_line):
        if len(line) > MAX_ROW_BYTES:
            raise FileRejected("row_too_large", f"Line {number} is longer than {MAX_ROW_BYTES} bytes")
        if not line.strip():
            continue
        record, problem = _parse_json_line(line)
        if problem or not isinstance(record, dict):
            issues.append(
                Issue(
                    row=number,
                    rule=problem or "not_an_object",
                    message="a key is given twice" if problem == "duplicate_key" else "the line is not one JSON object",
                    value=excerpt(line[:80].decode("utf-8", "replace"), schema),
                )
            )
            record = None
        else:
            extra = [k for k in record if k not in schema.properties]
            if extra and not schema.additionalProperties:
                named = None if withholds_values(schema) else extra[0][:64]
                issues.append(Issue(row=number, column=named, rule="unexpected_column", message="a key not in the schema"))
                record = None
            nested = [k for k, v in record.items() if isinstance(v, dict | list)] if record else []
            if nested:
                issues.append(
                    Issue(row=number, column=nested[0], rule="nested_value", message="objects and arrays are not column values")
                )
                record = None
        if record is None:
            continue
        for name in names:
            rows[name].append(_as_text(record.get(name)))
        count += 1
        if count == BATCH_ROWS:
            yield _batch(rows, names), issues
            rows, issues, count = {n: [] for n in names}, [], 0
    if count or issues:
        yield _batch(rows, names), issues


def _parse_json_line(line: bytes) -> tuple[Any, str | None]:
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return None, "invalid_encoding"
    depth = 0
    # Bound nesting before the parser recurses; a flat record has one brace, so count first.
    brackets = text.count("{") + text.count("[")
    for character in text if brackets > MAX_JSON_DEPTH else "":
        if character in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return None, "too_deeply_nested"
        elif character in "]}":
            depth -= 1
    try:
        record = json.loads(
            text,
            parse_int=_bounded_number,
            parse_float=_bounded_number,
            parse_constant=no_constant,
            object_pairs_hook=unique_keys,
        )
    except ValueError as error:
        if str(error) == TWICE:
            return None, "duplicate_key"
        return None, "number_too_long" if "digits" in str(error) else "malformed_json"
    if _SURROGATE_ESCAPE.search(text):
        try:  # a lone surrogate (\ud800) is valid JSON but no character: it cannot be stored
            json.dumps(record, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            return None, "invalid_encoding"
    return record, None


def _bounded_number(text: str) -> str:
    if len(text) > MAX_NUMBER_DIGITS:
        raise ValueError("a number has too many digits")
    return text  # kept as text: validated and converted with the other formats' values


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


def _batch(rows: dict[str, list[str | None]], names: list[str]) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([pa.array(rows[n], type=pa.string()) for n in names], names=names)


def parquet_batches(source: BinaryIO, schema: TableSchema) -> Iterator[ReadResult]:
    try:
        parquet = pq.ParquetFile(source)
    except (pa.ArrowException, OSError) as error:
        raise FileRejected("unreadable_parquet", _parquet_problem("Not a readable Parquet file", error, schema)) from None
    check_columns(parquet.schema_arrow.names, schema)
    try:
        for batch in parquet.iter_batches(batch_size=BATCH_ROWS):
            yield _declared(batch, schema), []
    except (pa.ArrowException, OSError) as error:
        raise FileRejected("unreadable_parquet", _parquet_problem("The Parquet file is damaged", error, schema)) from None


def _parquet_problem(what: str, error: Exception, schema: TableSchema) -> str:
    return what if withholds_values(schema) else f"{what}: {str(error)[:200]}"
