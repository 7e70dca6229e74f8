"""`authorize()`: the one call every API operation makes. It decides with Cedar and appends the
decision, allowed or denied, to the audit chain of the department that owns the resource."""

from __future__ import annotations

from functions.audit.chain import AuditEvent, AuditLog
from functions.core.errors import Forbidden
from functions.identity.models import Caller
from functions.policy.engine import Decision, PolicyEngine, Resource


class AccessControl:
    def __init__(self, engine: PolicyEngine, audit: AuditLog) -> None:
        self.engine = engine
        self.audit = audit

    def authorize(
        self,
        caller: Caller,
        action: str,
        resource: Resource,
        audit_chain: str,
        request_id: str = "",
        details: dict[str, object] | None = None,
    ) -> Decision:
        decision = self.engine.decide(caller, action, resource)
        self.audit.append(
            audit_chain,
            AuditEvent(
                actor_department=caller.department_id,
                actor_principal=caller.principal_id,
                action=action,
                resource=resource.label,
                decision="allow" if decision.allowed else "deny",
                reason="" if decision.allowed or decision.policies else "no-permit",
                policies=decision.policies,
                request_id=request_id,
                details=dict(details or {}),
            ),
        )
        return decision

    def require_steward(self, caller: Caller, request_id: str, details: dict[str, object], refusal: str) -> None:
        """ManageGrants on the caller's own department (its data stewards), audited; Forbidden(refusal) otherwise."""
        resource = Resource("Department", caller.department_id)
        if not self.authorize(caller, "ManageGrants", resource, caller.department_id, request_id, details).allowed:
            raise Forbidden(refusal)
