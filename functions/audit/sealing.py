"""Seals: what makes an audit chain's past unrewritable, not only detectably altered.

Any function that decides may append to a chain (a conditional PutItem), so a function taken over
could rewrite a chain's newest entries and recompute their hashes consistently: the chain alone
would still verify. The sealer (a scheduled function, the only principal allowed to use the seal
key and to write the archive) closes that:

- it copies each chain's new entries to the archive bucket, whose Object Lock (compliance mode)
  keeps every object version for the retention the stage sets, from everyone, the account's root
  included;
- it signs the chain's head (chain, sequence, hash, time) with an asymmetric KMS key whose policy
  lets the sealer alone sign, and writes the signed seal beside the entries (`seals/<chain>/`);
- before sealing more, it checks that the entry sealed last time still has the hash it sealed and
  that the new entries link to it: a chain rewritten below its seal is never sealed again, and the
  `AuditTampered` metric (an alarm) says so.

Anyone holding the seal key's public half verifies a seal offline (`cityshare audit verify`): the
chain must still hold the sealed entry with the sealed hash, so cutting off or rewriting anything
sealed is caught without a witness file.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, Literal

from functions.audit.chain import GENESIS_HASH, AuditEntry, AuditLog, entry_hash
from functions.core import aws
from functions.core.model import Model
from functions.core.observability import logger, record_metric

SIGNING_ALGORITHM = "ECDSA_SHA_256"
_PAGE = 500
# One run seals at most this many entries of a chain (the next run goes on from there), so a
# chain with a backlog cannot hold the function past its timeout.
MAX_ENTRIES_PER_RUN = 20_000
# A chain with nothing new is signed again this often: a verifier then knows a seal older than
# twice this was not the latest (an old seal served with a cut-off chain), or that sealing stopped.
HEARTBEAT_SECONDS = 3600
MAX_SEAL_AGE_SECONDS = 2 * HEARTBEAT_SECONDS


class AuditSeal(Model):
    """A chain's head as the sealer signed it. `signature` is the seal key's ECDSA P-256 signature
    (DER, base64) over `signed_bytes()`: the canonical JSON of the other fields."""

    chain: str
    seq: int
    hash: str
    sealed_at: str
    key_id: str
    signature: str = ""

    def signed_bytes(self) -> bytes:
        return seal_message(self.model_dump(exclude={"signature"}))


def seal_message(fields: dict[str, Any]) -> bytes:
    """What a seal's signature covers (the SDK's verifier builds the same bytes)."""
    body = {k: fields[k] for k in ("chain", "seq", "hash", "sealed_at", "key_id")}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


SealOutcome = Literal["sealed", "unchanged", "tampered", "failed"]


class AuditArchive:
    """The Object Lock bucket: entries as JSON lines per sealed range, each seal, and each chain's
    latest seal (a new version on each seal; versions are locked, so no earlier one is lost)."""

    s3 = aws.LazyClient("s3")

    def __init__(self, bucket: str, s3: Any = None) -> None:
        self._bucket = bucket
        self._s3 = s3

    def latest_seal(self, chain: str) -> AuditSeal | None:
        try:
            body = self.s3.get_object(Bucket=self._bucket, Key=f"seals/{chain}/latest.json")["Body"].read()
        except self.s3.exceptions.NoSuchKey:
            return None  # never sealed
        return AuditSeal.model_validate_json(body)

    def put_entries(self, chain: str, entries: list[AuditEntry]) -> str:
        key = f"audit/{chain}/{entries[0].seq:012d}-{entries[-1].seq:012d}.jsonl"
        lines = "".join(entry.model_dump_json() + "\n" for entry in entries)
        self.s3.put_object(
            Bucket=self._bucket, Key=key, Body=lines.encode(), ContentType="application/x-ndjson", ChecksumAlgorithm="SHA256"
        )
        return key

    def put_seal(self, seal: AuditSeal, numbered: bool = True) -> None:
        """The seal as the chain's latest, and (unless a heartbeat of an unchanged head) under its sequence."""
        body = seal.model_dump_json().encode()
        keys = [f"seals/{seal.chain}/{seal.seq:012d}.json"] if numbered else []
        for key in (*keys, f"seals/{seal.chain}/latest.json"):
            self.s3.put_object(
                Bucket=self._bucket, Key=key, Body=body, ContentType="application/json", ChecksumAlgorithm="SHA256"
            )


class SealKey:
    """The asymmetric KMS key seals are signed with (sign: the sealer only; public half: anyone)."""

    kms = aws.LazyClient("kms")

    def __init__(self, key: str, kms: Any = None) -> None:
        self._key = key
        self._kms = kms
        self._public_pem = ""
        self._key_arn = ""

    def sign(self, seal: AuditSeal) -> AuditSeal:
        response = self.kms.sign(
            KeyId=self._key, Message=seal.signed_bytes(), MessageType="RAW", SigningAlgorithm=SIGNING_ALGORITHM
        )
        return seal.model_copy(update={"signature": base64.b64encode(response["Signature"]).decode()})

    def key_arn(self) -> str:
        if not self._key_arn:
            self._key_arn = str(self.kms.describe_key(KeyId=self._key)["KeyMetadata"]["Arn"])
        return self._key_arn

    def public_pem(self) -> str:
        """The public half as PEM (SubjectPublicKeyInfo); kept for the process's life."""
        if not self._public_pem:
            der = self.kms.get_public_key(KeyId=self._key)["PublicKey"]
            encoded = base64.encodebytes(der).decode().replace("\n", "")
            lines = [encoded[i : i + 64] for i in range(0, len(encoded), 64)]
            self._public_pem = "\n".join(["-----BEGIN PUBLIC KEY-----", *lines, "-----END PUBLIC KEY-----", ""])
        return self._public_pem


class AuditSealer:
    def __init__(self, log: AuditLog, archive: AuditArchive, key: SealKey, chains: Callable[[], list[str]]) -> None:
        self._log = log
        self._archive = archive
        self._key = key
        self._chains = chains

    def seal_all(self) -> dict[str, SealOutcome]:
        """Every chain, each on its own: one that fails (throttled, say) is tried again next run
        and does not keep the others unsealed."""
        outcomes: dict[str, SealOutcome] = {}
        for chain in self._chains():
            try:
                outcomes[chain] = self.seal(chain)
            except Exception:
                logger.exception("a chain was not sealed this run", extra={"chain": chain})
                outcomes[chain] = "failed"
        return outcomes

    def seal(self, chain: str) -> SealOutcome:
        """Archive the entries after the last seal and seal the new head; a rerun after a crash
        archives the same entries again (a new locked version) and seals the same head."""
        last = self._archive.latest_seal(chain)
        after, previous_hash = (last.seq, last.hash) if last else (0, GENESIS_HASH)
        if last is not None and not self._still_sealed(last):
            return self._tampered(chain, f"entry {last.seq} no longer has the hash sealed at {last.sealed_at}")
        entries: list[AuditEntry] = []
        for entry in self._entries(chain, after):
            fields = entry.model_dump()
            if entry.prev_hash != previous_hash or entry_hash(fields) != entry.hash or entry.seq != after + len(entries) + 1:
                self._archive_and_seal(chain, entries)  # what links up to here is kept and sealed
                return self._tampered(chain, f"entry {entry.seq} does not link to the entries before it")
            entries.append(entry)
            previous_hash = entry.hash
            if len(entries) >= MAX_ENTRIES_PER_RUN:
                break
        if not entries:
            if last is not None and _age_seconds(last.sealed_at) >= HEARTBEAT_SECONDS:
                self._archive.put_seal(self._signed(chain, last.seq, last.hash), numbered=False)  # the heartbeat
            return "unchanged"
        self._archive_and_seal(chain, entries)
        return "sealed"

    def _entries(self, chain: str, after: int) -> Iterator[AuditEntry]:
        while True:
            page = self._log.read(chain, after_seq=after, limit=_PAGE)
            yield from page
            if len(page) < _PAGE:
                return
            after = page[-1].seq

    def _still_sealed(self, seal: AuditSeal) -> bool:
        page = self._log.read(seal.chain, after_seq=seal.seq - 1, limit=1)
        return bool(page) and page[0].seq == seal.seq and entry_hash(page[0].model_dump()) == page[0].hash == seal.hash

    def _archive_and_seal(self, chain: str, entries: list[AuditEntry]) -> None:
        if not entries:
            return
        self._archive.put_entries(chain, entries)
        self._archive.put_seal(self._signed(chain, entries[-1].seq, entries[-1].hash))

    def _signed(self, chain: str, seq: int, hash_: str) -> AuditSeal:
        sealed_at = datetime.now(UTC).isoformat(timespec="seconds")
        return self._key.sign(AuditSeal(chain=chain, seq=seq, hash=hash_, sealed_at=sealed_at, key_id=self._key.key_arn()))

    @staticmethod
    def _tampered(chain: str, why: str) -> SealOutcome:
        record_metric("AuditTampered")
        logger.error("audit chain tampered with", extra={"chain": chain, "why": why})
        return "tampered"


class SealReader:
    """The latest seal of a chain and the key's public half, for whoever may read the chain."""

    def __init__(self, archive: AuditArchive, key: SealKey) -> None:
        self._archive = archive
        self._key = key

    def latest(self, chain: str) -> AuditSeal | None:
        return self._archive.latest_seal(chain)

    def public_key(self) -> str:
        return self._key.public_pem()


def _age_seconds(stamp: str) -> float:
    try:
        return (datetime.now(UTC) - datetime.fromisoformat(stamp)).total_seconds()
    except ValueError:
        return float("inf")
