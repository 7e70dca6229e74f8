"""The Cedar policy engine: policies and schema parsed once per process, entities built per request."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cedarpy

from functions.core.errors import Forbidden
from functions.identity.models import Caller

NAMESPACE = "CityShare"


def uid(entity_type: str, entity_id: str) -> dict[str, str]:
    return {"type": f"{NAMESPACE}::{entity_type}", "id": entity_id}


@dataclass(frozen=True)
class Resource:
    """A Cedar resource: its type, id and attributes (entity references as `uid(...)` dicts)."""

    entity_type: str
    entity_id: str
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.entity_type}::{self.entity_id}"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    policies: list[str]
    errors: list[str]


class PolicyEngine:
    def __init__(self, policies_dir: str | Path) -> None:
        folder = Path(policies_dir)
        schema_text = (folder / "cityshare.cedarschema").read_text()
        policy_text = "\n".join(p.read_text() for p in sorted(folder.glob("*.cedar")))
        self._schema = cedarpy.Schema.from_str(schema_text)
        self._policies = cedarpy.PolicySet.from_str(policy_text)

    def decide(self, caller: Caller, action: str, resource: Resource) -> Decision:
        entities = [
            {"uid": uid("Department", caller.department_id), "attrs": {"status": caller.department_status}, "parents": []},
            {
                "uid": uid("Principal", principal_key(caller)),
                "attrs": {
                    "department": {"__entity": uid("Department", caller.department_id)},
                    "roles": list(caller.roles),
                    "name": principal_key(caller),
                },
                "parents": [uid("Department", caller.department_id)],
            },
        ]
        own_department = resource.entity_type == "Department" and resource.entity_id == caller.department_id
        if resource.entity_type != "Principal" and not own_department:
            entities.append(
                {"uid": uid(resource.entity_type, resource.entity_id), "attrs": _attrs(resource.attrs), "parents": []}
            )
        request = {
            "principal": uid("Principal", principal_key(caller)),
            "action": uid("Action", action),
            "resource": uid(resource.entity_type, resource.entity_id),
            "context": {},
        }
        result = cedarpy.is_authorized(request, self._policies, json.dumps(entities), self._schema)
        diagnostics = result.diagnostics
        names = diagnostics.id_annotations_by_reason
        policies = [names.get(reason, reason) for reason in diagnostics.reasons]
        # NoDecision (a request or entity outside the schema) counts as deny.
        return Decision(allowed=result.allowed, policies=policies, errors=list(diagnostics.errors))


def principal_key(caller: Caller) -> str:
    return f"{caller.department_id}/{caller.principal_id}"


def _attrs(values: dict[str, Any]) -> dict[str, Any]:
    return {name: {"__entity": value} if isinstance(value, dict) and "type" in value else value for name, value in values.items()}


def require_own_inbox(engine: PolicyEngine, caller: Caller) -> None:
    """Decided, not audited: a department reading its own notices or received grants reveals nothing
    of others' data, and a client following its inbox would otherwise flood its own audit chain."""
    if not engine.decide(caller, "ViewInbox", Resource("Department", caller.department_id)).allowed:
        raise Forbidden("The caller may not read this department's inbox")
