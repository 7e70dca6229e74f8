"""Client-side verification of an audit chain: recompute every hash and check every link.

A chain alone cannot show that its newest entries were cut off (what remains is a valid, shorter
chain). A *witness* closes that gap: the head (sequence and hash) seen at the last verification,
kept by the verifier outside CityShare. The next verification fails unless the chain still holds
that entry with that hash, so truncation or rewriting of anything already witnessed is detected.

A *seal* does the same without a file: the platform's sealer signs each chain's head every few
minutes with a KMS key only it may use (functions/audit/sealing.py). The chain must still hold the
sealed entry with the sealed hash, and the signature must be the seal key's. The witness file pins
that key (its SHA-256) the first time, so a platform that swapped keys is caught too.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GENESIS_HASH = "0" * 64
# The sealer signs an unchanged head again every hour (functions/audit/sealing.py): a seal older
# than two hours was not the latest one, or sealing has stopped.
MAX_SEAL_AGE_SECONDS = 7200


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
    sealed_seq: int = 0
    sealed_at: str = ""
    seal_key_sha256: str = ""

    @property
    def intact(self) -> bool:
        return not self.problems


def verify_chain(
    chain: str,
    entries: Iterable[dict[str, Any]],
    witness: dict[str, Any] | None = None,
    seal: dict[str, Any] | None = None,
    seal_key: str = "",
) -> ChainReport:
    """Detects an altered entry (hash), a removed or reordered one (sequence and link); with a
    `witness` ({"seq", "hash"} of a head verified before) entries cut off or rewritten since; with a
    `seal` (and the seal key's public PEM) entries cut off or rewritten since the platform sealed them."""
    report = ChainReport(chain)
    pinned = (witness or {}).get("seal_key_sha256")
    if seal is not None and not _check_seal(report, seal, seal_key, pinned):
        seal = None  # a seal that is not the key's says nothing about the entries
    elif seal is None and pinned:
        report.problems.append("no seal was served, but the witness pins a seal key: sealing was stopped or hidden")
    sealed = False
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
        if seal is not None and seq == seal.get("seq"):
            sealed = True
            if entry.get("hash") != seal.get("hash"):
                report.problems.append(f"entry {seq}: differs from the entry the platform sealed (history rewritten)")
        if witness and seq == witness.get("seq"):
            witnessed = True
            if entry.get("hash") != witness.get("hash"):
                report.problems.append(f"entry {seq}: differs from the head witnessed before (history rewritten)")
        previous_hash = str(entry.get("hash"))
        expected_seq = (seq if isinstance(seq, int) else expected_seq) + 1
        report.head_seq, report.head_hash = expected_seq - 1, previous_hash
    if seal is not None and not sealed:
        report.problems.append(
            f"the chain ends at entry {report.head_seq} but the platform sealed entry {seal.get('seq')} (entries removed)"
        )
    if witness and int(witness.get("seq", 0)) > 0 and not witnessed:
        report.problems.append(
            f"the chain ends at entry {report.head_seq} but entry {witness['seq']} was witnessed before (entries removed)"
        )
    return report


def _check_seal(report: ChainReport, seal: dict[str, Any], public_pem: str, pinned_sha256: str | None) -> bool:
    """The seal is this chain's, recent, signed by the seal key, and the key is the one pinned
    before (if any); problems are added to `report`, and False when the seal cannot be trusted."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    if seal.get("chain") != report.chain:
        report.problems.append(f"the seal served is chain {seal.get('chain')!r}'s, not {report.chain!r}'s")
        return False
    try:
        key = serialization.load_pem_public_key(public_pem.encode())
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise ValueError("not an elliptic-curve key")
        der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        key_sha256 = hashlib.sha256(der).hexdigest()  # the key itself, not how its PEM is wrapped
        if pinned_sha256 and pinned_sha256 != key_sha256:
            report.problems.append("the seal key is not the one pinned in the witness file (the platform's signing key changed)")
            return False
        key.verify(base64.b64decode(str(seal.get("signature", ""))), seal_message(seal), ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError) as error:
        report.problems.append(f"the seal of entry {seal.get('seq')} is not signed by the seal key ({error or 'bad signature'})")
        return False
    age = _age_seconds(str(seal.get("sealed_at", "")))
    if age > MAX_SEAL_AGE_SECONDS:
        report.problems.append(
            f"the seal served was made at {seal.get('sealed_at')}, over {MAX_SEAL_AGE_SECONDS // 3600} hours ago: it is not "
            "the latest (an old seal served with a cut-off chain), or the platform stopped sealing"
        )
        return False
    report.sealed_seq, report.sealed_at, report.seal_key_sha256 = int(seal["seq"]), str(seal.get("sealed_at", "")), key_sha256
    return True


def _age_seconds(stamp: str) -> float:
    from datetime import UTC, datetime

    try:
        return (datetime.now(UTC) - datetime.fromisoformat(stamp)).total_seconds()
    except ValueError:
        return float("inf")


def seal_message(fields: dict[str, Any]) -> bytes:
    """What a seal's signature covers: the canonical JSON of its fields but the signature."""
    body = {k: fields.get(k) for k in ("chain", "seq", "hash", "sealed_at", "key_id")}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def load_witness(path: Path) -> dict[str, Any] | None:
    return dict(json.loads(path.read_text())) if path.exists() else None


def save_witness(path: Path, report: ChainReport) -> None:
    """Remember the verified head; written to a temporary file and renamed, so never half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    witness: dict[str, Any] = {"chain": report.chain, "seq": report.head_seq, "hash": report.head_hash}
    pinned = report.seal_key_sha256 or (load_witness(path) or {}).get("seal_key_sha256")  # a pin is never dropped
    if pinned:
        witness["seal_key_sha256"] = pinned
    partial.write_text(json.dumps(witness))
    partial.replace(path)
