"""The SDK's chain verifier against entries hashed by the server's code."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from cityshare.audit import verify_chain
from functions.audit.chain import GENESIS_HASH, entry_hash


def chain(length: int) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    previous = GENESIS_HASH
    for seq in range(1, length + 1):
        entry = {
            "chain": "transport",
            "seq": seq,
            "at": f"2026-01-01T00:00:{seq:02d}",
            "actor_department": "environment",
            "actor_principal": "p",
            "action": "ViewDataset",
            "resource": "Dataset::x",
            "decision": "allow",
            "reason": "",
            "policies": ["owner-views-datasets"],
            "request_id": "r",
            "details": {"n": seq},
            "prev_hash": previous,
        }
        entry["hash"] = entry_hash(entry)
        previous = entry["hash"]
        entries.append(entry)
    return entries


def test_an_intact_chain_verifies() -> None:
    assert verify_chain("transport", chain(5)).intact


@given(st.integers(min_value=0, max_value=5))
def test_a_removed_entry_is_detected(index: int) -> None:
    entries = chain(6)
    del entries[index]
    if index == 5:
        return  # removing the newest entry leaves a valid shorter chain (see README: audit head)
    assert not verify_chain("transport", entries).intact


@given(st.integers(min_value=0, max_value=5), st.sampled_from(["decision", "actor_department", "details"]))
def test_an_altered_entry_is_detected(index: int, field: str) -> None:
    entries = chain(6)
    entries[index][field] = {"n": -1} if field == "details" else "tampered"
    report = verify_chain("transport", entries)
    assert not report.intact and f"entry {index + 1}" in report.problems[0]


def test_reordered_entries_are_detected() -> None:
    entries = chain(4)
    entries[1], entries[2] = entries[2], entries[1]
    assert not verify_chain("transport", entries).intact
