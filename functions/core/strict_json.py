"""JSON read strictly, the same way for request bodies and uploaded JSON lines: no NaN or Infinity
constants, and each key once per object (parsers disagree on which of two values wins, so neither
is guessed)."""

from __future__ import annotations

from typing import Any

TWICE = "a key is given twice"


def no_constant(text: str) -> None:
    raise ValueError(f"{text} is not a JSON number")


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        raise ValueError(TWICE)
    return found
