"""Seals (functions/audit/sealing.py) against moto: entries archived under Object Lock, heads signed
by the seal key, and what a writer that rewrites a chain's past can and cannot hide."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cityshare.audit import verify_chain
from functions.audit.chain import AuditEvent, AuditLog, entry_hash
from functions.audit.sealing import AuditArchive, AuditSeal, AuditSealer, SealKey
from functions.core.dynamo import to_item
from tests.integration.conftest import Aws


def event(number: int) -> AuditEvent:
    return AuditEvent(
        actor_department="transport",
        actor_principal="alice",
        action="ReadData",
        resource="Dataset::traffic-flow",
        decision="allow",
        details={"n": number},
    )


class Sealing:
    def __init__(self, moto_aws: Aws) -> None:
        self.log = AuditLog(moto_aws.table("audit"), moto_aws.client("dynamodb"))
        self.archive = AuditArchive(moto_aws.names[("bucket", "audit-archive")], moto_aws.client("s3"))
        self.key = SealKey(moto_aws.names[("key", "audit-seal")], moto_aws.client("kms"))
        self.sealer = AuditSealer(self.log, self.archive, self.key, lambda: ["transport"])
        self.aws = moto_aws

    def entries(self) -> list[dict[str, Any]]:
        return [entry.model_dump() for entry in self.log.read("transport", limit=500)]

    def verify(self, witness: dict[str, Any] | None = None, public_key: str | None = None) -> Any:
        seal = self.archive.latest_seal("transport")
        return verify_chain(
            "transport",
            self.entries(),
            witness,
            seal.model_dump() if seal else None,
            self.key.public_pem() if public_key is None else public_key,
        )

    def rewrite(self, seq: int, reason: str) -> None:
        """What a function holding PutItem on the audit table could do: replace an entry, its hash
        recomputed, and every later one relinked so the chain alone still verifies."""
        entries = self.entries()
        previous = entries[seq - 2]["hash"] if seq > 1 else "0" * 64
        for entry in entries[seq - 1 :]:
            if entry["seq"] == seq:
                entry["reason"] = reason
            entry["prev_hash"] = previous
            entry["hash"] = entry_hash(entry)
            previous = entry["hash"]
            record = dict(entry, details=json.dumps(entry["details"], sort_keys=True))
            self.aws.client("dynamodb").put_item(TableName=self.aws.table("audit"), Item=to_item(record))


@pytest.fixture
def sealing(moto_aws: Aws) -> Sealing:
    return Sealing(moto_aws)


def test_a_seal_archives_the_entries_under_object_lock_and_signs_the_head(sealing: Sealing) -> None:
    for number in range(7):
        sealing.log.append("transport", event(number))
    assert sealing.sealer.seal_all() == {"transport": "sealed"}
    seal = sealing.archive.latest_seal("transport")
    assert seal is not None and seal.seq == 7 and seal.hash == sealing.entries()[-1]["hash"]
    report = sealing.verify()
    assert report.intact and report.sealed_seq == 7, report.problems

    s3, bucket = sealing.aws.client("s3"), sealing.aws.names[("bucket", "audit-archive")]
    archived = s3.get_object(Bucket=bucket, Key="audit/transport/000000000001-000000000007.jsonl")["Body"].read()
    assert [json.loads(line)["seq"] for line in archived.splitlines()] == list(range(1, 8))
    version = s3.list_object_versions(Bucket=bucket, Prefix="audit/transport/")["Versions"][0]["VersionId"]
    with pytest.raises(Exception, match="AccessDenied"):  # compliance mode: no one deletes a version
        s3.delete_object(Bucket=bucket, Key="audit/transport/000000000001-000000000007.jsonl", VersionId=version)

    # Nothing new: nothing archived or signed again. New entries: only they are archived.
    assert sealing.sealer.seal_all() == {"transport": "unchanged"}
    sealing.log.append("transport", event(8))
    assert sealing.sealer.seal("transport") == "sealed"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="audit/transport/")["Contents"]]
    assert keys == ["audit/transport/000000000001-000000000007.jsonl", "audit/transport/000000000008-000000000008.jsonl"]


def test_a_rewritten_past_is_caught_by_the_seal_and_never_sealed_again(sealing: Sealing) -> None:
    for number in range(5):
        sealing.log.append("transport", event(number))
    sealing.sealer.seal("transport")
    sealing.rewrite(3, "nothing to see")
    assert verify_chain("transport", sealing.entries()).intact  # the chain alone cannot tell
    report = sealing.verify()
    assert not report.intact and any("sealed" in problem for problem in report.problems)
    # The sealer refuses to seal over it (and says so: the AuditTampered metric, an alarm).
    sealing.log.append("transport", event(9))
    assert sealing.sealer.seal("transport") == "tampered"
    assert sealing.archive.latest_seal("transport").seq == 5  # type: ignore[union-attr]


def test_entries_cut_off_below_the_seal_are_caught_without_a_witness(sealing: Sealing) -> None:
    for number in range(4):
        sealing.log.append("transport", event(number))
    sealing.sealer.seal("transport")
    report = verify_chain(
        "transport", sealing.entries()[:2], None, sealing.archive.latest_seal("transport").model_dump(), sealing.key.public_pem()
    )  # type: ignore[union-attr]
    assert any("entries removed" in problem for problem in report.problems)


def test_a_forged_seal_or_a_swapped_key_is_refused(sealing: Sealing, moto_aws: Aws) -> None:
    for number in range(3):
        sealing.log.append("transport", event(number))
    sealing.sealer.seal("transport")
    seal = sealing.archive.latest_seal("transport")
    assert seal is not None
    forged = seal.model_copy(update={"seq": 2, "hash": sealing.entries()[1]["hash"]})  # signature of another head
    report = verify_chain("transport", sealing.entries(), None, forged.model_dump(), sealing.key.public_pem())
    assert any("not signed by the seal key" in problem for problem in report.problems)
    report = verify_chain("transport", sealing.entries(), None, seal.model_dump() | {"chain": "health"}, sealing.key.public_pem())
    assert any("not 'transport'" in problem for problem in report.problems)

    first = sealing.verify()
    pinned = {"chain": "transport", "seq": first.head_seq, "hash": first.head_hash, "seal_key_sha256": first.seal_key_sha256}
    other = moto_aws.client("kms").create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    impostor = SealKey(other, moto_aws.client("kms"))
    resigned = impostor.sign(AuditSeal.model_validate(seal.model_dump() | {"key_id": other}))
    report = verify_chain("transport", sealing.entries(), pinned, resigned.model_dump(), impostor.public_pem())
    assert any("not the one pinned" in problem for problem in report.problems)


def test_a_chain_is_sealed_in_runs_that_fit_a_function(sealing: Sealing, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("functions.audit.sealing.MAX_ENTRIES_PER_RUN", 3)
    for number in range(7):
        sealing.log.append("transport", event(number))
    sealed = [sealing.sealer.seal("transport") for _ in range(4)]
    assert sealed == ["sealed", "sealed", "sealed", "unchanged"]
    assert sealing.archive.latest_seal("transport").seq == 7  # type: ignore[union-attr]
    assert sealing.verify().intact


def test_a_stale_seal_a_hidden_seal_and_a_dropped_pin_are_caught(
    sealing: Sealing, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from cityshare.audit import load_witness, save_witness

    for number in range(3):
        sealing.log.append("transport", event(number))
    sealing.sealer.seal("transport")
    seal = sealing.archive.latest_seal("transport")
    assert seal is not None
    # An old seal served with a chain cut off after it would pass the seq/hash check: refused as stale.
    old = sealing.key.sign(seal.model_copy(update={"sealed_at": "2026-01-01T00:00:00+00:00", "signature": ""}))
    report = verify_chain("transport", sealing.entries(), None, old.model_dump(), sealing.key.public_pem())
    assert any("is not the latest" in problem for problem in report.problems)
    # Unchanged chains are signed again (the heartbeat), so a live seal is never that old.
    monkeypatch.setattr("functions.audit.sealing.HEARTBEAT_SECONDS", 0)
    assert sealing.sealer.seal("transport") == "unchanged"
    renewed = sealing.archive.latest_seal("transport")
    assert renewed is not None and renewed.seq == seal.seq and renewed.signature != seal.signature
    # The pin in a witness file is kept, and a verification with no seal served fails on it.
    witness = tmp_path / "head.json"
    save_witness(witness, sealing.verify())
    pinned = load_witness(witness)
    assert pinned and pinned["seal_key_sha256"]
    unsealed = verify_chain("transport", sealing.entries(), pinned, None, "")
    assert any("no seal was served" in problem for problem in unsealed.problems)
    save_witness(witness, verify_chain("transport", sealing.entries()))  # a report without a seal keeps the pin
    assert (load_witness(witness) or {}).get("seal_key_sha256") == pinned["seal_key_sha256"]
