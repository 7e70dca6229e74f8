"""Small dataset definitions for tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas" / "datasets"


def city_schema(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SCHEMAS / f"{name}.json").read_text())
    return loaded


SMALL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"station_id": {"type": "string"}, "value": {"type": "number", "x-unit": "µg/m³"}},
    "required": ["station_id"],
}
