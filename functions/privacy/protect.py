"""Personal-data protection, applied before anything reaches curated storage (or quarantine).

- pseudonymise: a keyed token (functions.privacy.sealing) under the owning department's own key, held
  under its KMS key: the same plate gives the same token in every dataset of that department, and
  nothing another department uploads can produce a matching token. Computed once per distinct
  value of the file. Each (token, value) pair also goes to the version's sealed vault, which only
  a linkage grant ever opens (to re-key tokens into a linkage space).
- encrypt: AES-256-GCM per value, padded to a length bucket, with the dataset's data key; the
  dataset and column are the associated data, so a ciphertext cannot be moved to another column.
- generalise: numbers to a decimal grid (e.g. 0.01 degrees), integers to buckets, timestamps to an
  interval — exact on grid lines (see `generalise`).
- drop: the column does not reach curated storage at all.
"""

from __future__ import annotations

import binascii
import itertools
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from functions.catalog.models import GRID_TOLERANCE, PersonalData, TableSchema, grid
from functions.columnar.types import arrow_type, as_text, convert
from functions.privacy.sealing import SHORT_VALUE_BYTES, TOKEN_BYTES, TokenKey, ValueSealer

_INTERVAL = re.compile(r"^([1-9][0-9]{0,3})(s|m|h|d)$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
TOKEN_CHARS = 32
# Long values remembered per column and file before the memo is cleared (a memory bound).
_MEMO_LIMIT = 1_000_000
VAULT_SCHEMA = pa.schema([("token", pa.string()), ("value", pa.string())])


def output_type(personal: PersonalData | None, declared: pa.DataType) -> pa.DataType | None:
    """The curated column's type (None: dropped)."""
    if personal is None or personal.protection == "generalise":
        return declared
    if personal.protection == "drop":
        return None
    return pa.string()


def output_schema(schema: TableSchema) -> pa.Schema:
    """The curated Parquet's schema: GeoParquet when a geometry column is stored (as WKB)."""
    fields = []
    shapes = schema.wkb_columns()
    for name, column in schema.properties.items():
        kind = pa.binary() if name in shapes else output_type(column.personal, arrow_type(column))
        if kind is not None:
            fields.append(pa.field(name, kind))
    if not shapes:
        return pa.schema(fields)
    from functions.columnar.geometry import geoparquet_metadata  # shapely, only for a geometry column

    return pa.schema(fields, metadata=geoparquet_metadata(shapes))


def vault_file(column: str) -> str:
    return f"{column}.vault"


class TokenSpace:
    """Tokens under one key for a file's batches, the distinct values of each batch at once. A short
    value's token is a block cipher's output, which the key's holder can turn back into the value
    (to re-key it under a linkage grant); a long value's token is a MAC, so its (token, value) pair
    goes to the version's vault (a local file here, sealed when stored) when `vault` is given."""

    def __init__(self, key: bytes, vault: Path | None = None) -> None:
        self._key = TokenKey(key)
        self._memo: dict[bytes, str] = {}  # long values only: short ones cost less to recompute
        self._vault_path = vault
        self._vault: pq.ParquetWriter | None = None

    def tokens(self, values: pa.Array | pa.ChunkedArray, remember: bool = True) -> pa.Array:
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        # Bytes (a WKB geometry) are tokenised as they are: a cast to text would refuse them.
        text = as_text(values)
        if len(text) and (pc.max(pc.binary_length(text)).as_py() or 0) <= SHORT_VALUE_BYTES:
            # Only short values: a token per row costs less than finding the distinct ones first.
            tokens = self._distinct_tokens(pc.fill_null(text, ""), None)
            return pc.if_else(text.is_valid(), tokens, pa.scalar(None, pa.string())) if text.null_count else tokens
        encoded = pc.dictionary_encode(text)
        fresh: list[tuple[str, bytes]] = []
        tokens = self._distinct_tokens(encoded.dictionary, fresh if remember else None)
        if fresh and self._vault_path is not None:
            if self._vault is None:
                self._vault = pq.ParquetWriter(self._vault_path, VAULT_SCHEMA, compression="zstd")
            pairs = [pa.array([t for t, _ in fresh], pa.string()), pa.array([v.decode() for _, v in fresh], pa.string())]
            self._vault.write_table(pa.table(pairs, schema=VAULT_SCHEMA))
        return pc.take(tokens, encoded.indices)

    def _distinct_tokens(self, distinct: pa.Array, fresh: list[tuple[str, bytes]] | None) -> pa.Array:
        count = len(distinct)
        offsets = np.frombuffer(distinct.buffers()[1], dtype=np.int32, count=count + 1, offset=distinct.offset * 4)
        data = np.frombuffer(distinct.buffers()[2] or b"", dtype=np.uint8)
        starts, lengths = offsets[:-1], np.diff(offsets)
        short = lengths <= SHORT_VALUE_BYTES
        rows = np.nonzero(short)[0]
        if len(rows):
            # Each short value as one padded block (value, 0x80, zeros), all encrypted in one call, and
            # every token's digits written by hexlify in one C call.
            blocks = _padded_blocks(data, starts[rows], lengths[rows])
            digits = np.frombuffer(binascii.hexlify(self._key.blocks(blocks.reshape(-1).data)), dtype=np.uint8)
            if len(rows) == count:  # the usual case (plates, ids): the digits are the array's data, no copy
                return _fixed_width_strings(digits.reshape(count, 2 * TOKEN_BYTES))
        hexed = np.empty((count, 2 * TOKEN_BYTES), dtype=np.uint8)
        if len(rows):
            hexed[rows] = digits.reshape(len(rows), 2 * TOKEN_BYTES)
        for row in np.nonzero(~short)[0]:
            value = data[starts[row] : starts[row] + lengths[row]].tobytes()
            token = self._memo.get(value)
            if token is None:
                if len(self._memo) >= _MEMO_LIMIT:
                    self._memo.clear()
                token = self._memo[value] = self._key.long(value)
                if fresh is not None:
                    fresh.append((token, value))
            hexed[row] = np.frombuffer(token.encode(), dtype=np.uint8)
        return _fixed_width_strings(hexed)

    def close(self) -> Path | None:
        if self._vault is None:
            return None
        self._vault.close()
        return self._vault_path


def _padded_blocks(data: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Values of at most 15 bytes as 16-byte blocks: the value, 0x80, zeros (ISO/IEC 7816-4)."""
    count = len(lengths)
    if count and lengths.min() == lengths.max() and bool(np.all(np.diff(starts) == lengths[0])):
        # One length (plates, ids) and end to end (not a subset): a plain reshape.
        width = int(lengths[0])
        blocks = np.zeros((count, 16), dtype=np.uint8)
        blocks[:, :width] = data[starts[0] : starts[0] + count * width].reshape(count, width)
        blocks[:, width] = 0x80
        return blocks
    # Rows of 16 bytes starting at each value (a sliding view: one copy, no index per byte).
    windows = np.lib.stride_tricks.sliding_window_view(np.concatenate([data, np.zeros(16, dtype=np.uint8)]), 16)
    shifted: np.ndarray = windows[starts]
    np.multiply(shifted, np.arange(16, dtype=np.int32)[None, :] < lengths[:, None], out=shifted)
    shifted.reshape(-1)[np.arange(count) * 16 + lengths] = 0x80
    return shifted


def _fixed_width_strings(rows: np.ndarray) -> pa.Array:
    """A string array from a (count, width) matrix of UTF-8 bytes, one row per value."""
    count, width = rows.shape
    offsets = np.arange(0, (count + 1) * width, width, dtype=np.int32)
    return pa.Array.from_buffers(pa.string(), count, [None, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(rows))])


def short_values(tokens: pa.Array, key: bytes) -> pa.Array:
    """The values behind short-value tokens under `key`; null for anything else, such as a long
    value's token, except about one in 256 of those, whose opened block happens to look padded (a
    MAC is no block of ours): the vault, which holds every long value, answers for them first
    (`rekeyed`). The one inverse the linkage path needs."""
    count = len(tokens)
    dense = pc.fill_null(tokens, _BLANK_TOKEN) if tokens.null_count else tokens
    parsed = _token_bytes(dense)
    if parsed is None:  # some values are not tokens: find which, and read blanks in their place
        well_formed = pc.fill_null(pc.match_substring_regex(tokens, f"^[0-9a-f]{{{2 * TOKEN_BYTES}}}$"), False)
        parsed = _token_bytes(pc.if_else(well_formed, tokens, _BLANK_TOKEN))
    else:
        well_formed = tokens.is_valid()
    assert parsed is not None  # every value is now a token or the blank one
    blocks = np.frombuffer(TokenKey(key).open_blocks(parsed), dtype=np.uint8).reshape(count, 16)
    # The padding: the last non-zero byte is 0x80; what comes before it is the value.
    nonzero = blocks != 0
    last = 15 - np.argmax(nonzero[:, ::-1], axis=1)
    padded = nonzero.any(axis=1) & (blocks[np.arange(count), last] == 0x80)
    lengths = np.where(padded, last, 0)
    inside = np.arange(16)[None, :] < lengths[:, None]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    values = pa.Array.from_buffers(pa.string(), count, [None, pa.py_buffer(offsets), pa.py_buffer(blocks[inside].tobytes())])
    return pc.if_else(pc.and_(well_formed, pa.array(padded)), values, pa.scalar(None, pa.string()))


class Protector:
    def __init__(
        self,
        schema: TableSchema,
        dataset_id: str,
        token_key: bytes,
        data_key: Callable[[], bytes],
        vault_dir: Path | None = None,
    ) -> None:
        self._schema = schema
        self._dataset_id = dataset_id
        self._data_key = data_key  # fetched only if the schema has an encrypted column
        self._sealer: ValueSealer | None = None
        self._spaces = {
            name: TokenSpace(token_key, vault_dir / vault_file(name) if vault_dir else None)
            for name, personal in schema.personal_columns().items()
            if personal.protection == "pseudonymise"
        }
        self.output_schema = output_schema(schema)
        self._shapes = frozenset(schema.wkb_columns())
        self.personal_columns = frozenset(schema.personal_columns())
        self.opaque_columns = frozenset(
            name for name, personal in schema.personal_columns().items() if personal.protection in ("pseudonymise", "encrypt")
        )

    def _located(self, column: Callable[[str], pa.Array]) -> dict[str, pa.Array]:
        """A location generalised to H3 cells: its two columns as the centre of each row's cell."""
        pair = self._schema.h3_pair()
        if pair is None:
            return {}
        from functions.columnar.cells import h3_centres

        latitude, longitude, resolution = pair
        centres = h3_centres(column(latitude), column(longitude), resolution)
        return {latitude: centres[0], longitude: centres[1]}

    def protect(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """Valid rows, typed as declared, to their curated form."""
        columns = []
        located = self._located(batch.column)
        for name, column in self._schema.properties.items():
            values = batch.column(name)
            personal = column.personal
            if personal is None and name in self._shapes:
                from functions.columnar.geometry import wkb_of  # shapely, only for a geometry column

                columns.append(wkb_of(values))
            elif personal is None:
                columns.append(values)
            elif personal.protection == "pseudonymise":
                columns.append(self._spaces[name].tokens(values))
            elif personal.protection == "encrypt":
                columns.append(self._encrypt(name, values))
            elif personal.protection == "generalise":
                columns.append(located[name] if name in located else generalise(values, personal.granularity or ""))
        return pa.RecordBatch.from_arrays(columns, schema=self.output_schema)

    def protect_rejected(self, raw: pa.RecordBatch) -> pa.RecordBatch:
        """Rejected rows as read (text), with each personal column protected as curated data would
        be: dropped columns absent, pseudonyms and ciphertexts of the text as sent, generalised values
        where the text converts (null where it does not). Other columns stay as sent, for the fix."""
        names, columns = [], []

        def typed_column(name: str) -> pa.Array:
            values = raw.column(name)
            text = values if pa.types.is_string(values.type) else pc.cast(values, pa.string())
            return convert(text, arrow_type(self._schema.properties[name]))[0]

        located = self._located(typed_column)
        for name, column in self._schema.properties.items():
            values = raw.column(name)
            personal = column.personal
            if personal is not None and personal.protection == "drop":
                continue
            if personal is not None:
                text = values if pa.types.is_string(values.type) else pc.cast(values, pa.string())
                if personal.protection == "pseudonymise":
                    values = self._spaces[name].tokens(text, remember=False)
                elif personal.protection == "encrypt":
                    values = self._encrypt(name, text)
                elif name in located:
                    values = located[name]
                else:
                    typed, _ = convert(text, arrow_type(column))
                    values = generalise(typed, personal.granularity or "")
            names.append(name)
            columns.append(values)
        return pa.RecordBatch.from_arrays(columns, names=names)

    def vault_files(self) -> dict[str, Path]:
        """The local vault file of each pseudonymised column that received values."""
        closed = {name: space.close() for name, space in self._spaces.items()}
        return {name: path for name, path in closed.items() if path is not None}

    def _encrypt(self, name: str, values: pa.Array) -> pa.Array:
        if self._sealer is None:
            self._sealer = ValueSealer(self._data_key())
        associated = sealed_context(self._dataset_id, name)
        text = values if pa.types.is_string(values.type) else pc.cast(values, pa.string())
        seal = self._sealer.seal
        return pa.array([None if v is None else seal(v, associated) for v in text.to_pylist()], type=pa.string())


def sealed_context(dataset_id: str, column: str) -> bytes:
    return f"{dataset_id}/{column}".encode()


def keyed_tokens(values: pa.Array | pa.ChunkedArray, key: bytes) -> pa.Array:
    """Tokens of clear values under `key` (each distinct value computed once; nulls stay null): a
    masked column's values, a linked identifier. Whatever the values look like, one value has one
    token (hex-looking values included: they are values here, never re-keyed as tokens)."""
    whole = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    return TokenSpace(key).tokens(whole, remember=False)


def rekeyed_tokens(tokens: pa.Array | pa.ChunkedArray, key: bytes) -> pa.Array | pa.ChunkedArray:
    """A pseudonymised column's tokens (32 lowercase hex digits, as ingest writes them) re-keyed into
    the space of `key`: 16 bytes each, one AES block, every row in one call, chunk by chunk as read.
    Anything else in the column is refused, never tokenised another way: one token, one token."""
    chunks = tokens.chunks if isinstance(tokens, pa.ChunkedArray) else [tokens]
    parsed = [_token_bytes(pc.fill_null(chunk, _BLANK_TOKEN) if chunk.null_count else chunk) for chunk in chunks]
    if not pa.types.is_string(tokens.type) or any(token_bytes is None for token_bytes in parsed):
        raise ValueError("a pseudonymised column holds values that are not tokens")
    # One AES call and one hexlify over the whole column (the chunks' bytes joined, not the chunks
    # as strings), then the result cut back into the chunks it was read in.
    digits = binascii.hexlify(TokenKey(key).blocks(b"".join(t or b"" for t in parsed)))
    rekeyed = _fixed_width_strings(np.frombuffer(digits, dtype=np.uint8).reshape(len(tokens), 2 * TOKEN_BYTES))
    if tokens.null_count:
        rekeyed = pc.if_else(_valid(tokens), rekeyed, pa.scalar(None, pa.string()))
    if not isinstance(tokens, pa.ChunkedArray):
        return rekeyed
    bounds = np.cumsum([0, *(len(chunk) for chunk in chunks)])
    return pa.chunked_array([rekeyed.slice(a, b - a) for a, b in itertools.pairwise(bounds)], type=pa.string())


def _valid(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    valid = values.is_valid()
    return valid.combine_chunks() if isinstance(valid, pa.ChunkedArray) else valid


_BLANK_TOKEN = "0" * 2 * TOKEN_BYTES
_LOWER = 0x2020202020202020


def _token_bytes(text: pa.Array) -> bytes | None:
    """The 16 bytes of each value when every value is a token (32 lowercase hex digits), else None:
    a length check and one unhexlify over the array's data, instead of a regex per row."""
    count, width = len(text), 2 * TOKEN_BYTES
    if not count:
        return b""
    offsets = np.frombuffer(text.buffers()[1], dtype=np.int32, count=count + 1, offset=text.offset * 4)
    if int(offsets[-1] - offsets[0]) != count * width or not bool(np.all(np.diff(offsets) == width)):
        return None
    digits = memoryview(text.buffers()[2])[int(offsets[0]) : int(offsets[-1])]
    try:
        parsed = binascii.unhexlify(digits)
    except binascii.Error:  # a character that is not a hex digit
        return None
    # unhexlify also takes A-F; tokens are lower case. Among hex digits, only A-F lack bit 0x20, and
    # an AND over every eight bytes keeps a bit only if every byte has it: one pass, no copy.
    if int(np.bitwise_and.reduce(np.frombuffer(digits, dtype=np.uint64))) & _LOWER != _LOWER:
        return None
    return parsed


def decrypt_value(data_key: bytes, dataset_id: str, column: str, sealed: str) -> str:
    """The inverse of encrypt, for reads that a grant allows to see the clear value."""
    return ValueSealer(data_key).open(sealed, sealed_context(dataset_id, column))


def generalise(values: pa.Array | pa.ChunkedArray, granularity: str) -> pa.Array:
    """Coarsen to `granularity`: a date-time to the start of its interval, an integer to the
    start of its bucket (exact integer arithmetic), a number to the grid cell it lies in — a value
    on a grid line stays in its cell, and the result is rounded to the grid's decimals."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_timestamp(values.type):
        found = _INTERVAL.match(granularity)
        if not found:
            raise ValueError(f"a time granularity looks like 15m, 1h or 1d, not {granularity!r}")
        # Buckets counted from the epoch in UTC (as DuckDB's time_bucket and Athena's arithmetic do),
        # in integer arithmetic on the stored ticks: exact, and far cheaper than calendar rounding.
        per_second = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}[values.type.unit]
        width = int(found.group(1)) * _SECONDS[found.group(2)] * per_second
        ticks = np.asarray(pc.fill_null(values.cast(pa.int64()), 0).to_numpy(zero_copy_only=False), dtype=np.int64)
        start = np.floor_divide(ticks, width) * width
        mask = np.asarray(values.is_null().to_numpy(zero_copy_only=False)) if values.null_count else None
        return pa.array(start, type=pa.int64(), mask=mask).cast(values.type)
    units, decimals = grid(granularity)
    if pa.types.is_integer(values.type):
        width = max(units // 10**decimals, 1)
        numbers = np.asarray(pc.fill_null(values, 0).to_numpy(zero_copy_only=False), dtype=np.int64)
        cells = np.floor_divide(numbers, width) * width
        return pa.array(cells, type=values.type, mask=np.asarray(values.is_null().to_numpy(zero_copy_only=False)))
    scale = float(10**decimals)
    quotient = pc.divide(pc.cast(values, pa.float64()), units / scale)
    nudge = pc.multiply(pc.max_element_wise(pc.abs(quotient), 1.0), GRID_TOLERANCE)
    cells = pc.floor(pc.add(quotient, nudge))
    return pc.divide(pc.multiply(cells, float(units)), scale)
