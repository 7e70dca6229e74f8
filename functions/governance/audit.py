"""Reading a department's audit chain (its stewards; the platform chain: the platform admin)."""

from __future__ import annotations

from functions.audit.chain import AuditEntry, AuditLog
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


class AuditService:
    def __init__(self, log: AuditLog, access: AccessControl) -> None:
        self._log = log
        self._access = access

    def read(self, caller: Caller, department_id: str, after: int, limit: int, request_id: str = "") -> AuditPage:
        resource = Resource("AuditChain", department_id, {"department": uid("Department", department_id)})
        # The read itself is audited in the caller's own chain, before the entries are fetched.
        decision = self._access.authorize(caller, "ReadAudit", resource, caller.department_id, request_id)
        if not decision.allowed:
            raise Forbidden(f"The caller may not read the audit trail of {department_id}")
        limit = max(1, min(limit, MAX_AUDIT_PAGE))
        entries = self._log.read(department_id, after_seq=after, limit=limit)
        next_after = entries[-1].seq if len(entries) == limit else None
        return AuditPage(chain=department_id, entries=entries, next_after=next_after)
