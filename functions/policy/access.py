"""`authorize()`: the one door to every access decision, for requests and background work alike.

It decides with Cedar (functions.policy.engine) and, unless told the decision is only a filter
(listings, an inbox), appends it, allowed or denied, with the policies that decided it, to the
audit chain of the department that owns the resource. `permitted()` asks the same policies, in one
call, which of a caller's candidate grants would let it act: the grant a read then uses is chosen
among those, and its own decision is authorised (and audited) like any other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from functions.audit.chain import AuditEvent, AuditLog
from functions.core.errors import Forbidden
from functions.identity.models import Caller
from functions.policy.engine import Decision, GrantFacts, PolicyEngine, Resource


class HasFacts(Protocol):
    def facts(self) -> GrantFacts: ...


G = TypeVar("G", bound=HasFacts)


def _event(
    caller: Caller,
    action: str,
    resource: Resource,
    decision: Decision,
    request_id: str,
    details: dict[str, object] | None,
    purpose: str,
) -> AuditEvent:
    """The audit entry of a decision."""
    return AuditEvent(
        actor_department=caller.department_id,
        actor_principal=caller.principal_id,
        action=action,
        resource=resource.label,
        decision="allow" if decision.allowed else "deny",
        reason="" if decision.allowed or decision.policies else "no-permit",
        policies=decision.policies,
        request_id=request_id,
        details=dict(details or {}) | ({"purpose": purpose} if purpose and not (details or {}).get("purpose") else {}),
    )


def _now() -> datetime:
    return datetime.now(UTC)


class AccessControl:
    def __init__(self, engine: PolicyEngine, audit: AuditLog, clock: Callable[[], datetime] = _now) -> None:
        self.engine = engine
        self.audit = audit
        self._clock = clock

    def now(self) -> datetime:
        return self._clock()

    def authorize(
        self,
        caller: Caller,
        action: str,
        resource: Resource,
        audit_chain: str,
        request_id: str = "",
        details: dict[str, object] | None = None,
        *,
        grant: HasFacts | None = None,
        purpose: str = "",
        audit: bool = True,
        guard: Callable[[Any], dict[str, Any]] | None = None,
    ) -> Decision:
        """The policies' decision, audited. `guard`: for an allow under `grant`, the condition on the
        stored grant (a ConditionCheck) the entry is written under: PreconditionFailed if it changed."""
        facts = grant.facts() if grant is not None else None
        decision = self.engine.decide(caller, action, resource, self._clock(), purpose, facts)
        if audit:
            self.audit.append(
                audit_chain,
                _event(caller, action, resource, decision, request_id, details, purpose),
                guard=guard(grant) if guard is not None and grant is not None and decision.allowed else None,
            )
        return decision

    def authorize_many(
        self,
        caller: Caller,
        action: str,
        resources: Sequence[Resource],
        audit_chain: str,
        request_id: str = "",
        purpose: str = "",
    ) -> list[Decision]:
        """The policies' decision on each of `resources` (all in `audit_chain`'s department, acted on
        in the caller's own right), every one audited, in one write."""
        decisions = [self.engine.decide(caller, action, resource, self._clock(), purpose) for resource in resources]
        events = [
            _event(caller, action, resource, decision, request_id, None, purpose)
            for resource, decision in zip(resources, decisions, strict=True)
        ]
        self.audit.append_many(audit_chain, events)
        return decisions

    def permitted(self, caller: Caller, action: str, resource: Resource, grants: Sequence[G], purpose: str = "") -> list[G]:
        """The grants among `grants` under which `caller` may do `action` now (one call, not audited)."""
        if not grants:
            return []
        decisions = self.engine.decide_each(caller, action, resource, self._clock(), purpose, [g.facts() for g in grants])
        return [grant for grant, decision in zip(grants, decisions, strict=True) if decision.allowed]

    def require(
        self,
        caller: Caller,
        action: str,
        resource: Resource,
        refusal: str,
        request_id: str = "",
        details: dict[str, object] | None = None,
        audit: bool = True,
    ) -> None:
        """`authorize()`, then Forbidden(refusal) unless allowed; audited in the resource's department's chain."""
        chain = resource.entity_id if resource.entity_type == "Department" else caller.department_id
        if not self.authorize(caller, action, resource, chain, request_id, details, audit=audit).allowed:
            raise Forbidden(refusal)

    def require_steward(self, caller: Caller, request_id: str, details: dict[str, object], refusal: str) -> None:
        """ManageGrants on the caller's own department (its data stewards), audited."""
        self.require(caller, "ManageGrants", Resource("Department", caller.department_id), refusal, request_id, details)

    def require_own_inbox(self, caller: Caller) -> None:
        """Decided, not audited: a department reading its own notices or received grants reveals
        nothing of others' data, and a client following its inbox would otherwise flood its chain."""
        self.require(
            caller, "ViewInbox", Resource("Department", caller.department_id), "The caller may not read this inbox", audit=False
        )
