"""The one clock of the domain: UTC, aware (services take it as a parameter so tests can pin time).
Times are stored as ISO 8601 text and compared only once parsed (`moment`), never as strings."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def now() -> datetime:
    return datetime.now(UTC)


def moment(value: str) -> datetime:
    """An ISO 8601 date or date-time as an aware UTC datetime (a value with no zone is UTC).
    ValueError if it is neither."""
    found = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return (found if found.tzinfo else found.replace(tzinfo=UTC)).astimezone(UTC)
