"""The sealer under every fault at every AWS call it makes (functions/audit/sealing.py): whatever
fails, and wherever the function stops, the next scheduled run leaves the chain sealed at its head
with a valid signature, every entry archived, and nothing reported as tampered."""

from __future__ import annotations

import json
from typing import Any

from cityshare.audit import verify_chain
from functions.audit.chain import AuditLog
from functions.audit.sealing import AuditArchive, AuditSealer, SealKey
from functions.core.settings import Settings
from tests.faults.harness import FAULTS, FaultInjector, plan
from tests.faults.scenario import deliver, record
from tests.integration.conftest import Aws
from tests.integration.test_audit_seals import event


class SealerRun:
    def __init__(self, moto_aws: Aws, settings: Settings) -> None:
        self.aws = moto_aws
        self.bucket = settings.audit_archive_bucket
        self.log = AuditLog(settings.audit_table)
        self.key = SealKey(settings.audit_seal_key)
        self.number = 0
        self.outcomes: list[str] = []

    def prepare(self) -> str:
        """A chain of its own, sealed once, then grown: a run checks the last seal and seals more."""
        self.number += 1
        chain = f"chain-{self.number:04d}"
        for entry in range(3):
            self.log.append(chain, event(entry))
        self.sealer(chain).seal(chain)
        for entry in range(3, 6):
            self.log.append(chain, event(entry))
        return chain

    def sealer(self, chain: str) -> AuditSealer:
        return AuditSealer(self.log, AuditArchive(self.bucket), self.key, lambda: [chain])

    def run(self, chain: str) -> Any:
        def once(attempt: int) -> str:
            self.outcomes.append(self.sealer(chain).seal(chain))
            return "done"

        return once


def check(run: SealerRun, chain: str, context: str) -> None:
    assert "tampered" not in run.outcomes, f"{context}: {run.outcomes}"
    s3 = run.aws.client("s3")
    seal = json.loads(s3.get_object(Bucket=run.bucket, Key=f"seals/{chain}/latest.json")["Body"].read())
    entries = [entry.model_dump() for entry in run.log.read(chain, limit=100)]
    report = verify_chain(chain, entries, None, seal, run.key.public_pem())
    assert report.intact and report.sealed_seq == 6, f"{context}: {report.problems} (sealed {report.sealed_seq})"
    archived: set[int] = set()
    for listed in s3.list_objects_v2(Bucket=run.bucket, Prefix=f"audit/{chain}/").get("Contents", []):
        first, last = listed["Key"].rsplit("/", 1)[1].removesuffix(".jsonl").split("-")
        archived |= set(range(int(first), int(last) + 1))
    assert archived == set(range(1, 7)), f"{context}: archived {sorted(archived)}"


def test_every_call_of_the_sealer_under_every_fault_converges(moto_aws: Aws, settings: Settings, injector: FaultInjector) -> None:
    run = SealerRun(moto_aws, settings)
    chain = run.prepare()
    injector.reset()
    assert deliver(injector, run.run(chain), None, None).outcomes == ["done"]
    calls = list(injector.calls)
    assert len(calls) >= 5  # read the last seal, check it, read the new entries, archive, sign, write the seal
    for index, fault in plan(calls, FAULTS):
        chain = run.prepare()
        injector.reset()
        run.outcomes.clear()
        deliveries = deliver(injector, run.run(chain), index, fault)
        record("sealer", injector, fault)
        context = f"{fault} at call {index} ({injector.injected}), deliveries {deliveries.outcomes}"
        assert deliveries.settled, context
        check(run, chain, context)
