"""A dataset version's profile: rows, and per column nulls, min, max, a distinct-count estimate and,
for numbers and date-times without personal data, a histogram.

The estimate is a HyperLogLog sketch (4096 registers, about 1.6% error) fed with 64-bit hashes:
numbers hash their bit patterns in numpy, strings hash each distinct value of a batch once.

The histogram comes from a uniform random sample of the column of bounded size (_SAMPLE_KEPT values,
512 KB), so it costs microseconds per batch and a fixed amount of memory whatever the version's
size; a version no larger than the sample is taken whole (small versions are exact).
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from functions.catalog.profiles import ColumnProfile, DatasetProfile, Histogram

_P = 12
_M = 1 << _P
_ALPHA = 0.7213 / (1 + 1.079 / _M)
HISTOGRAM_BINS = 20
_SAMPLE_KEPT = 65_536


def _mix(values: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: spreads 64-bit patterns over all bits."""
    z = values.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


class HyperLogLog:
    def __init__(self) -> None:
        self.registers = np.zeros(_M, dtype=np.uint8)
        self._pending: list[np.ndarray] = []
        self._pending_count = 0

    def add(self, hashes: np.ndarray) -> None:
        """Buffer hashes and fold them in large steps (each fold has a fixed cost)."""
        self._pending.append(hashes)
        self._pending_count += len(hashes)
        if self._pending_count >= 262_144:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self.add_hashes(np.concatenate(self._pending))
            self._pending, self._pending_count = [], 0

    def add_hashes(self, hashes: np.ndarray) -> None:
        if not len(hashes):
            return
        index = (hashes >> np.uint64(64 - _P)).astype(np.intp)
        rest = (hashes << np.uint64(_P)) | np.uint64(1 << (_P - 1))
        # rank = position of the first 1 bit in the remaining bits: 64 - floor(log2(rest)), the
        # floor read from the exponent of rest as a float64 (no logarithm computed).
        exponent = (rest.astype(np.float64).view(np.uint64) >> np.uint64(52)).astype(np.int64) - 1023
        np.maximum.at(self.registers, index, (64 - exponent).astype(np.uint8))

    def estimate(self) -> int:
        self.flush()
        harmonic = 1.0 / np.sum(np.power(2.0, -self.registers.astype(np.float64)))
        raw = _ALPHA * _M * _M * harmonic
        zeros = int(np.count_nonzero(self.registers == 0))
        if raw <= 2.5 * _M and zeros:
            return int(_M * np.log(_M / zeros) + 0.5)
        return int(raw + 0.5)


def _hashes(present: pa.Array) -> np.ndarray:
    """64-bit hashes of distinct, non-null values."""
    if not len(present):
        return np.zeros(0, dtype=np.uint64)
    kind = present.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_binary(kind):
        return _string_hashes(present)  # bytes alike (a geometry's WKB)
    if pa.types.is_boolean(kind):
        return _mix(np.asarray(present.to_numpy(zero_copy_only=False), dtype=np.uint64))
    if pa.types.is_date32(kind):
        present = present.cast(pa.int32()).cast(pa.int64())  # date32 casts to int32 only
    elif pa.types.is_timestamp(kind) or pa.types.is_date(kind) or pa.types.is_time(kind):
        present = present.cast(pa.int64())
    as_numbers = np.asarray(present.to_numpy(zero_copy_only=False))
    return _mix(as_numbers.view(np.uint64) if as_numbers.dtype.itemsize == 8 else as_numbers.astype(np.int64).view(np.uint64))


_HASHED_BYTES = 256
_WORD_PRIME = np.uint64(0x9E3779B97F4A7C15)


def _string_hashes(values: pa.Array, limit: int = _HASHED_BYTES) -> np.ndarray:
    """64-bit hashes of strings, all at once: each value's bytes laid in a zero-padded row of a
    matrix, read as 64-bit words that are folded in with a multiply and the splitmix64 finaliser,
    the length mixed in. Values longer than 256 bytes are hashed on their first 256 bytes and their
    length (enough for a distinct-count estimate)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_large_string(values.type):
        values = values.cast(pa.string())
    count = len(values)
    if not count:
        return np.zeros(0, dtype=np.uint64)
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int32, count=count + 1, offset=values.offset * 4)
    data = np.frombuffer(values.buffers()[2] or b"\x00", dtype=np.uint8)
    starts, lengths = offsets[:-1].astype(np.int64), np.diff(offsets).astype(np.int64)
    width = -(-min(int(lengths.max(initial=0)), limit) // 8) * 8 or 8
    columns = np.arange(width)
    positions = np.minimum(starts[:, None] + columns[None, :], len(data) - 1)
    matrix = np.where(columns[None, :] < lengths[:, None], data[positions], 0).astype(np.uint8)
    words = np.ascontiguousarray(matrix).view(np.uint64)
    hashes = lengths.astype(np.uint64)
    with np.errstate(over="ignore"):
        for word in range(words.shape[1]):
            hashes = _mix((hashes ^ words[:, word]) * _WORD_PRIME)
    return hashes


def token_hashes(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Hashes of tokens (32 hex digits): their first 16 digits are 64 random bits already, read
    straight from the buffer. Other opaque text (ciphertexts) is hashed as text."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    count = len(values)
    if not count or not pa.types.is_string(values.type):
        return _string_hashes(values, 16)
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int32, count=count + 1, offset=values.offset * 4)
    if offsets[-1] - offsets[0] != 32 * count or not (np.diff(offsets) == 32).all():
        return _string_hashes(values, 16)
    text = np.frombuffer(values.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]].reshape(count, 32)
    try:
        raw = bytes.fromhex(text[:, :16].tobytes().decode("ascii"))
    except ValueError:
        return _string_hashes(values, 16)
    return np.frombuffer(raw, dtype=np.uint64).copy()


def _histogrammable(kind: pa.DataType) -> bool:
    return bool(pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_timestamp(kind) or pa.types.is_date(kind))


def _storage(kind: pa.DataType) -> pa.DataType:
    return pa.int64() if pa.types.is_timestamp(kind) or kind == pa.date64() else pa.int32()


def _as_number(value: Any, kind: pa.DataType) -> float:
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        return float(pa.scalar(value, type=kind).cast(_storage(kind)).as_py())
    return float(value)


def _as_value(number: float, kind: pa.DataType) -> Any:
    """A bin edge back in the column's own terms (a date-time as ISO 8601)."""
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        return _plain(pa.scalar(round(number), type=_storage(kind)).cast(kind).as_py())
    return int(number) if pa.types.is_integer(kind) else number


class _Sample:
    """A uniform random sample of a column's values (as float64: epoch units for times), at most
    _SAMPLE_KEPT of them: each value is taken with the same probability `rate`, which halves (and
    what is kept is thinned alike) whenever the sample outgrows its bound, so each kept value stands
    for 1/rate values whichever batch it came from. While the rate is 1 the sample is the column."""

    def __init__(self) -> None:
        self.parts: list[np.ndarray] = []
        self.size = 0
        self.rate = 1.0

    def add(self, present: pa.Array, random: np.random.Generator) -> None:
        expected = len(present) * self.rate
        count = int(expected) + int(random.random() < expected - int(expected))
        if not count:
            return
        kind = present.type
        if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
            present = present.cast(_storage(kind))
        values = present.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
        self.parts.append(values.copy() if count >= len(values) else values[random.integers(0, len(values), count)])
        self.size += count
        while self.size > _SAMPLE_KEPT:
            every = np.concatenate(self.parts)
            self.parts = [every[random.random(len(every)) < 0.5]]
            self.size, self.rate = len(self.parts[0]), self.rate / 2

    def values(self) -> np.ndarray:
        return np.concatenate(self.parts) if self.parts else np.zeros(0)


def _bounding_box(values: pa.Array) -> list[float] | None:
    if not len(values):
        return None
    from functions.columnar.geometry import bounding_box  # shapely, only for a geometry column

    return bounding_box(values)


def _union(one: list[float] | None, other: list[float] | None) -> list[float] | None:
    if one is None or other is None:
        return one or other
    return [min(one[0], other[0]), min(one[1], other[1]), max(one[2], other[2]), max(one[3], other[3])]


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return value


class ProfileBuilder:
    """`opaque`: columns holding tokens or ciphertexts, whose order means nothing: no min or max."""

    def __init__(
        self,
        schema: pa.Schema,
        opaque: frozenset[str] = frozenset(),
        personal: frozenset[str] = frozenset(),
        geometry: frozenset[str] = frozenset(),
    ) -> None:
        self._schema = schema
        self._opaque = opaque
        # Geometries (WKB): their order means nothing either; their extent is their bounding box.
        self._geometry = geometry
        self._bbox: dict[str, list[float] | None] = dict.fromkeys(geometry)
        self.rows = 0
        self._nulls = dict.fromkeys(schema.names, 0)
        self._min: dict[str, Any] = dict.fromkeys(schema.names)
        self._max: dict[str, Any] = dict.fromkeys(schema.names)
        self._distinct = {name: HyperLogLog() for name in schema.names}
        self._mostly_distinct: dict[str, bool] = {}
        # A sample of each column that gets a histogram.
        self._samples: dict[str, _Sample] = {
            field.name: _Sample()
            for field in schema
            if field.name not in personal and field.name not in opaque and _histogrammable(field.type)
        }
        self._random = np.random.default_rng()

    def add(self, batch: pa.RecordBatch) -> None:
        self.rows += batch.num_rows
        for name in self._schema.names:
            values = batch.column(name)
            self._nulls[name] += values.null_count
            present = values.drop_null() if values.null_count else values
            if name in self._opaque:
                # Tokens and ciphertexts: random text whose order means nothing; 16 bytes of each
                # are plenty for the distinct-count sketch.
                self._distinct[name].add(token_hashes(present))
                continue
            # City data repeats a lot: each distinct value of a batch is compared and hashed once. A
            # column whose first batch is mostly distinct (times to the second, ids) is taken whole:
            # finding its distinct values would cost more than it saves.
            if name in self._geometry:
                shapes = pc.unique(present)
                self._distinct[name].add(_hashes(shapes))
                self._bbox[name] = _union(self._bbox[name], _bounding_box(shapes))
                continue
            whole = self._mostly_distinct.get(name, False) and not pa.types.is_string(values.type)
            considered = present if whole else pc.unique(present)
            if name not in self._mostly_distinct:
                self._mostly_distinct[name] = len(considered) > 0.5 * max(len(present), 1)
            if len(considered) and not pa.types.is_boolean(values.type):
                extremes = pc.min_max(considered).as_py()
                low, high = extremes["min"], extremes["max"]
                if low is not None and (self._min[name] is None or low < self._min[name]):
                    self._min[name] = low
                if high is not None and (self._max[name] is None or high > self._max[name]):
                    self._max[name] = high
            self._distinct[name].add(_hashes(considered))
            if name in self._samples and len(present):
                self._samples[name].add(present, self._random)

    def _histogram(self, name: str) -> Histogram | None:
        sample = self._samples.get(name)
        if sample is None:
            return None
        sampled = sample.values()
        values = sampled[np.isfinite(sampled)]
        if not len(values):
            return None
        # Each sampled value stands for the same share of the column's values (exact at rate 1).
        scale = (self.rows - self._nulls[name]) / len(sampled)
        kind = self._schema.field(name).type
        # The exact extremes (the sample may miss them), in the sample's units.
        low, high = (_as_number(self._min[name], kind), _as_number(self._max[name], kind))
        if high - low <= abs(low) * 1e-9:  # one value (or bins narrower than a float can tell apart)
            counts = np.zeros(HISTOGRAM_BINS)
            counts[0] = len(values)
        else:
            counts, _ = np.histogram(values, bins=HISTOGRAM_BINS, range=(low, high))
        return Histogram(low=_as_value(low, kind), high=_as_value(high, kind), counts=[round(c * scale) for c in counts])

    def build(self) -> DatasetProfile:
        return DatasetProfile(
            rows=self.rows,
            columns={
                name: ColumnProfile(
                    nulls=self._nulls[name],
                    min=_plain(self._min[name]),
                    max=_plain(self._max[name]),
                    distinct_estimate=min(self._distinct[name].estimate(), self.rows - self._nulls[name]),
                    histogram=self._histogram(name),
                    bbox=self._bbox.get(name),
                )
                for name in self._schema.names
            },
        )
