"""Reading a department's audit chain (its stewards; the platform chain: the platform admin)."""

from __future__ import annotations

from pydantic import Field

from functions.audit.chain import AuditEntry, AuditLog
from functions.audit.sealing import AuditSeal, SealReader
from functions.core.errors import Forbidden
from functions.core.model import Model
from functions.identity.models import Caller
from functions.policy.access import AccessControl
from functions.policy.engine import Resource, uid

MAX_AUDIT_PAGE = 500


class AuditPage(Model):
    chain: str
    entries: list[AuditEntry]
    next_after: int | None = None


class AuditSealAnswer(Model):
    chain: str
    seal: AuditSeal | None = Field(description="The chain's head as the platform's sealer last signed it (None before)")
    public_key: str = Field(description="The seal key's public half (PEM): pin it, and verify seals with it")


class AuditService:
    def __init__(self, log: AuditLog, access: AccessControl, seals: SealReader | None = None) -> None:
        self._log = log
        self._access = access
        self._seals = seals

    def _may_read(self, caller: Caller, department_id: str, request_id: str) -> None:
        resource = Resource("AuditChain", department_id, {"department": uid("Department", department_id)})
        # The read itself is audited in the caller's own chain, before anything is fetched.
        decision = self._access.authorize(caller, "ReadAudit", resource, caller.department_id, request_id)
        if not decision.allowed:
            raise Forbidden(f"The caller may not read the audit trail of {department_id}")

    def seal(self, caller: Caller, department_id: str, request_id: str = "") -> AuditSealAnswer:
        if self._seals is None:
            raise RuntimeError("no seal reader configured")
        self._may_read(caller, department_id, request_id)
        return AuditSealAnswer(chain=department_id, seal=self._seals.latest(department_id), public_key=self._seals.public_key())

    def read(self, caller: Caller, department_id: str, after: int, limit: int, request_id: str = "") -> AuditPage:
        self._may_read(caller, department_id, request_id)
        limit = max(1, min(limit, MAX_AUDIT_PAGE))
        entries = self._log.read(department_id, after_seq=after, limit=limit)
        next_after = entries[-1].seq if len(entries) == limit else None
        return AuditPage(chain=department_id, entries=entries, next_after=next_after)
