"""What the catalog keeps of each version's data: its profile (rows; per column nulls, min, max, a
distinct estimate and, for columns holding no personal data, a histogram)."""

from __future__ import annotations

from typing import Any

from functions.core.model import Model


class Histogram(Model):
    """How a column's values spread from `low` to `high`: `counts` of rows in equal-width bins
    (an estimate from a sample of each batch, scaled to the batch; exact for small versions). For
    date-times the bins are of time, so this is the rows over the version's period."""

    low: Any
    high: Any
    counts: list[int]


class ColumnProfile(Model):
    nulls: int
    min: Any = None
    max: Any = None
    distinct_estimate: int
    # Numbers and date-times of columns that hold no personal data only.
    histogram: Histogram | None = None
    # Geometry columns (x-geometry): [west, south, east, north] of their shapes.
    bbox: list[float] | None = None


class DatasetProfile(Model):
    rows: int
    columns: dict[str, ColumnProfile]
