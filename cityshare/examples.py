"""Example definitions used by the demo, the benchmarks and the documentation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# "PM2.5 hourly mean above 75 per station" on the air-quality dataset: the rule the README's worked
# example defines from its file, so the demo, the benchmarks and the README share one definition.
PM25_HOURLY_RULE: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parents[1] / "schemas" / "examples" / "pm25-rule.json").read_text()
)
# The demo's forecast rule: PM2.5 at a station forecast above 75 within the next 6 hours.
PM25_FORECAST_RULE: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parents[1] / "schemas" / "examples" / "pm25-forecast-rule.json").read_text()
)

# The city picture of the demo's city management: one derived dataset per indicator (a file each, as
# `cityshare analytics derive --definition` takes it), over what each department shares with it.
CITY_INDICATORS: list[dict[str, Any]] = [
    json.loads(path.read_text())
    for path in sorted((Path(__file__).resolve().parents[1] / "schemas" / "examples" / "city").glob("*.json"))
]
