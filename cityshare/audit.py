"""Client-side verification of an audit chain: recompute every hash and check every link."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

GENESIS_HASH = "0" * 64


def entry_hash(entry: dict[str, Any]) -> str:
    canonical = json.dumps(
        {k: v for k, v in entry.items() if k != "hash"}, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class ChainReport:
    chain: str
    entries: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.problems


def verify_chain(chain: str, entries: Iterable[dict[str, Any]]) -> ChainReport:
    """Detects an altered entry (hash), a removed or reordered one (sequence and link)."""
    report = ChainReport(chain)
    previous_hash, expected_seq = GENESIS_HASH, 1
    for entry in entries:
        report.entries += 1
        seq = entry.get("seq")
        if seq != expected_seq:
            report.problems.append(f"entry {seq}: expected sequence {expected_seq} (an entry is missing or moved)")
        if entry.get("prev_hash") != previous_hash:
            report.problems.append(f"entry {seq}: does not link to the entry before it")
        if entry_hash(entry) != entry.get("hash"):
            report.problems.append(f"entry {seq}: content does not match its hash (altered)")
        previous_hash = str(entry.get("hash"))
        expected_seq = (seq if isinstance(seq, int) else expected_seq) + 1
    return report
