"""A small forecast rule and the readings it is fitted on, shared by the suites that define one
(fault injection, the Athena path)."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

START = dt.datetime(2026, 10, 5, tzinfo=dt.UTC)  # a Monday


def forecast_rule(horizon: int) -> dict[str, Any]:
    """PM2.5 per station forecast above 60 within `horizon` hours, on a daily season."""
    return {
        "name": f"PM2.5 forecast above 60 within {horizon} hours",
        "measure": {"aggregate": "mean", "column": "pm25"},
        "group_by": ["station_id"],
        "window": {"column": "measured_at", "minutes": 60},
        "comparison": "gt",
        "threshold": 60,
        "forecast": {"horizon": horizon, "season": "day", "history": 3},
    }


def daily_peaks() -> list[dict[str, Any]]:
    """Two stations, ten days of hourly readings peaking each noon (AQ-2 5 higher)."""
    return [
        {
            "station_id": station,
            "district": "Centre",
            "measured_at": START + dt.timedelta(hours=h),
            "pm25": 40 + 30 * math.sin(math.pi * (h % 24) / 24) ** 8 + offset,
        }
        for station, offset in (("AQ-1", 0.0), ("AQ-2", 5.0))
        for h in range(240)
    ]
