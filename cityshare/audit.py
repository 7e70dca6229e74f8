"""Client-side verification of an audit chain: recompute every hash and check every link.

A chain alone cannot show that its newest entries were cut off (what remains is a valid, shorter
chain). A *witness* closes that gap: the head (sequence and hash) seen at the last verification,
kept by the verifier outside CityShare. The next verification fails unless the chain still holds
that entry with that hash, so truncation or rewriting of anything already witnessed is detected.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
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
    head_seq: int = 0
    head_hash: str = GENESIS_HASH

    @property
    def intact(self) -> bool:
        return not self.problems


def verify_chain(chain: str, entries: Iterable[dict[str, Any]], witness: dict[str, Any] | None = None) -> ChainReport:
    """Detects an altered entry (hash), a removed or reordered one (sequence and link), and with a
    `witness` ({"seq", "hash"} of a head verified before) entries cut off or rewritten since."""
    report = ChainReport(chain)
    witnessed = False
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
        if witness and seq == witness.get("seq"):
            witnessed = True
            if entry.get("hash") != witness.get("hash"):
                report.problems.append(f"entry {seq}: differs from the head witnessed before (history rewritten)")
        previous_hash = str(entry.get("hash"))
        expected_seq = (seq if isinstance(seq, int) else expected_seq) + 1
        report.head_seq, report.head_hash = expected_seq - 1, previous_hash
    if witness and int(witness.get("seq", 0)) > 0 and not witnessed:
        report.problems.append(
            f"the chain ends at entry {report.head_seq} but entry {witness['seq']} was witnessed before (entries removed)"
        )
    return report


def load_witness(path: Path) -> dict[str, Any] | None:
    return dict(json.loads(path.read_text())) if path.exists() else None


def save_witness(path: Path, report: ChainReport) -> None:
    """Remember the verified head; written to a temporary file and renamed, so never half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps({"chain": report.chain, "seq": report.head_seq, "hash": report.head_hash}))
    partial.replace(path)
