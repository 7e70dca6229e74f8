"""The one clock of the domain: UTC, ISO 8601 to the second (services take it as a parameter so
tests can pin time)."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
