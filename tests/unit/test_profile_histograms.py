"""Histograms in a version's profile: how numbers and date-times spread, never for personal data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa

from functions.ingest.profile import _SAMPLE_KEPT, HISTOGRAM_BINS, ProfileBuilder

SCHEMA = pa.schema(
    [
        ("vehicle_count", pa.int64()),
        ("measured_at", pa.timestamp("us", tz="UTC")),
        ("district", pa.string()),
        ("latitude", pa.float64()),
        ("plate", pa.string()),
    ]
)
START = datetime(2026, 3, 1, tzinfo=UTC)


def batch(counts: np.ndarray, minutes: np.ndarray) -> pa.RecordBatch:
    rows = len(counts)
    return pa.record_batch(
        [
            pa.array(counts),
            pa.array([START + timedelta(minutes=int(m)) for m in minutes], pa.timestamp("us", tz="UTC")),
            pa.array(["Centre"] * rows),
            pa.array(np.full(rows, 52.37)),
            pa.array(["tok"] * rows),
        ],
        schema=SCHEMA,
    )


def test_a_small_version_is_counted_exactly_between_its_min_and_max() -> None:
    builder = ProfileBuilder(SCHEMA, opaque=frozenset({"plate"}), personal=frozenset({"latitude", "plate"}))
    builder.add(batch(np.array([0, 0, 0, 10, 20]), np.array([0, 1, 2, 60, 120])))
    profile = builder.build()
    counts = profile.columns["vehicle_count"].histogram
    assert counts is not None and counts.low == 0 and counts.high == 20
    assert len(counts.counts) == HISTOGRAM_BINS and sum(counts.counts) == 5
    assert counts.counts[0] == 3 and counts.counts[HISTOGRAM_BINS // 2] == 1 and counts.counts[-1] == 1
    times = profile.columns["measured_at"].histogram
    assert times is not None and times.low == "2026-03-01T00:00:00+00:00" and times.high == "2026-03-01T02:00:00+00:00"
    assert sum(times.counts) == 5 and times.counts[0] == 3


def test_personal_opaque_and_text_columns_have_none() -> None:
    builder = ProfileBuilder(SCHEMA, opaque=frozenset({"plate"}), personal=frozenset({"latitude", "plate"}))
    builder.add(batch(np.arange(10), np.arange(10)))
    columns = builder.build().columns
    assert columns["latitude"].histogram is None  # a number, but personal (a place)
    assert columns["plate"].histogram is None and columns["district"].histogram is None


def test_a_large_version_is_estimated_from_samples_within_a_few_percent() -> None:
    random = np.random.default_rng(7)
    builder = ProfileBuilder(SCHEMA)
    # 400,000 rows in batches of 50,000: a skewed count (most rows low) over a fortnight.
    for _ in range(8):
        builder.add(batch(random.integers(0, 100, 50_000) ** 2 // 100, random.integers(0, 14 * 24 * 60, 50_000)))
    histogram = builder.build().columns["vehicle_count"].histogram
    assert histogram is not None and histogram.low == 0 and histogram.high == 98
    rows = 400_000
    assert abs(sum(histogram.counts) - rows) < 0.01 * rows
    # The exact share of each bin for v = n*n//100, n uniform in [0, 100).
    values = np.arange(100) ** 2 // 100
    exact, _ = np.histogram(values, bins=HISTOGRAM_BINS, range=(0, 98))
    for estimated, share in zip(histogram.counts, exact / 100, strict=True):
        assert abs(estimated - share * rows) < 0.03 * rows


def test_what_the_sample_keeps_stays_bounded_and_the_estimate_unbiased() -> None:
    random = np.random.default_rng(11)
    builder = ProfileBuilder(SCHEMA)
    for _ in range(60):  # 3,000,000 rows: far more batches than the sample keeps whole
        builder.add(batch(random.integers(0, 100, 50_000) ** 2 // 100, random.integers(0, 14 * 24 * 60, 50_000)))
        assert len(builder._samples["vehicle_count"].values()) <= _SAMPLE_KEPT
    histogram = builder.build().columns["vehicle_count"].histogram
    assert histogram is not None
    rows = 3_000_000
    assert abs(sum(histogram.counts) - rows) < 0.02 * rows
    exact, _ = np.histogram(np.arange(100) ** 2 // 100, bins=HISTOGRAM_BINS, range=(0, 98))
    for estimated, share in zip(histogram.counts, exact / 100, strict=True):
        assert abs(estimated - share * rows) < 0.03 * rows
