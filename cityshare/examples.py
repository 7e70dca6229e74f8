"""Example definitions used by the demo, the benchmarks and the documentation."""

from __future__ import annotations

from typing import Any

# "PM2.5 hourly mean above 75 per station" on the air-quality dataset.
PM25_HOURLY_RULE: dict[str, Any] = {
    "name": "PM2.5 hourly mean above 75",
    "measure": {"aggregate": "mean", "column": "pm25"},
    "group_by": ["station_id"],
    "window": {"column": "measured_at", "minutes": 60},
    "comparison": "gt",
    "threshold": 75,
}
