"""A dataset version's profile: rows, and per column nulls, min, max and a distinct-count estimate.

The estimate is a HyperLogLog sketch (4096 registers, about 1.6% error) fed with 64-bit hashes:
numbers hash their bit patterns in numpy, strings hash each distinct value of a batch once.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime, time
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from functions.ingest.models import ColumnProfile, DatasetProfile

_P = 12
_M = 1 << _P
_ALPHA = 0.7213 / (1 + 1.079 / _M)


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
        index = (hashes >> np.uint64(64 - _P)).astype(np.int64)
        rest = (hashes << np.uint64(_P)) | np.uint64(1 << (_P - 1))
        # rank = position of the first 1 bit in the remaining bits
        rank = 64 - np.floor(np.log2(rest.astype(np.float64))).astype(np.int64)
        # Highest rank per register without np.maximum.at (slow): mark (register, rank) pairs seen,
        # then take the last marked rank of each register.
        seen = np.zeros((_M, 66), dtype=bool)
        seen[index, rank] = True
        highest = 65 - np.argmax(seen[:, ::-1], axis=1)
        highest[~seen.any(axis=1)] = 0
        np.maximum(self.registers, highest.astype(np.uint8), out=self.registers)

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
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        digests = [int.from_bytes(hashlib.blake2b(v.encode(), digest_size=8).digest(), "little") for v in present.to_pylist()]
        return np.array(digests, dtype=np.uint64)
    if pa.types.is_boolean(kind):
        return _mix(np.asarray(present.to_numpy(zero_copy_only=False), dtype=np.uint64))
    if pa.types.is_date32(kind):
        present = present.cast(pa.int32()).cast(pa.int64())  # date32 casts to int32 only
    elif pa.types.is_timestamp(kind) or pa.types.is_date(kind) or pa.types.is_time(kind):
        present = present.cast(pa.int64())
    as_numbers = np.asarray(present.to_numpy(zero_copy_only=False))
    return _mix(as_numbers.view(np.uint64) if as_numbers.dtype.itemsize == 8 else as_numbers.astype(np.int64).view(np.uint64))


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return value


class ProfileBuilder:
    def __init__(self, schema: pa.Schema) -> None:
        self._schema = schema
        self.rows = 0
        self._nulls = dict.fromkeys(schema.names, 0)
        self._min: dict[str, Any] = dict.fromkeys(schema.names)
        self._max: dict[str, Any] = dict.fromkeys(schema.names)
        self._distinct = {name: HyperLogLog() for name in schema.names}

    def add(self, batch: pa.RecordBatch) -> None:
        self.rows += batch.num_rows
        for name in self._schema.names:
            values = batch.column(name)
            self._nulls[name] += values.null_count
            # City data repeats a lot: work on each distinct value once.
            distinct = pc.unique(values.drop_null() if values.null_count else values)
            if len(distinct) and not pa.types.is_boolean(values.type):
                extremes = pc.min_max(distinct).as_py()
                low, high = extremes["min"], extremes["max"]
                if low is not None and (self._min[name] is None or low < self._min[name]):
                    self._min[name] = low
                if high is not None and (self._max[name] is None or high > self._max[name]):
                    self._max[name] = high
            self._distinct[name].add(_hashes(distinct))

    def build(self) -> DatasetProfile:
        return DatasetProfile(
            rows=self.rows,
            columns={
                name: ColumnProfile(
                    nulls=self._nulls[name],
                    min=_plain(self._min[name]),
                    max=_plain(self._max[name]),
                    distinct_estimate=min(self._distinct[name].estimate(), self.rows - self._nulls[name]),
                )
                for name in self._schema.names
            },
        )
