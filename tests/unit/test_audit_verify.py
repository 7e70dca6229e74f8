"""The SDK's chain verifier against entries hashed by the server's code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from cityshare.audit import load_witness, save_witness, verify_chain
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
        assert verify_chain("transport", entries).intact  # alone, a cut-off tail leaves a valid shorter chain
        return
    assert not verify_chain("transport", entries).intact


@given(st.integers(min_value=1, max_value=6), st.integers(min_value=1, max_value=6))
def test_a_witness_detects_a_tail_cut_off_after_it_was_seen(witnessed: int, kept: int) -> None:
    full = chain(6)
    report = verify_chain("transport", full[:witnessed])
    witness = {"seq": report.head_seq, "hash": report.head_hash}
    later = verify_chain("transport", full[:kept], witness)
    assert later.intact == (kept >= witnessed)


def test_a_witness_detects_a_rewritten_history() -> None:
    original = chain(4)
    witness = {"seq": 4, "hash": original[3]["hash"]}
    rewritten = chain(4)
    rewritten[3]["details"] = {"n": 99}
    rewritten[3]["hash"] = entry_hash({k: v for k, v in rewritten[3].items() if k != "hash"})
    report = verify_chain("transport", rewritten, witness)
    assert not report.intact and "witnessed" in report.problems[0]


def test_the_witness_file_moves_on_only_after_an_intact_verification(tmp_path: Path) -> None:
    path = tmp_path / "witness" / "transport.json"
    assert load_witness(path) is None
    save_witness(path, verify_chain("transport", chain(3)))
    assert load_witness(path) == {"chain": "transport", "seq": 3, "hash": chain(3)[2]["hash"]}


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
