"""The Cedar policy engine: policies and schema parsed once per process, entities built per request.

Everything a decision depends on is an entity or in the context, never decided beforehand in code:
the actor (a principal, with its status and how many keys it may sign with, and its department with
its status), the resource, and the grant the request acts under (with its status, scope and expiry)
together with the time (`context.now`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import cedarpy

from functions.core.classification import CLASSIFICATION_RANK
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
class GrantFacts:
    """A grant as the policies see it (sharing.models.Grant.facts())."""

    grant_id: str
    owner: str
    grantee: str
    grantee_principal: str | None
    dataset_id: str | None
    tags: tuple[str, ...]
    max_classification: str | None
    status: str
    expires: datetime | None
    # For choosing among several grants that all allow a read (not for deciding): an unrestricted
    # grant before a restricted one, the newest first.
    restricted: bool = False
    created_at: str = ""

    def entity(self) -> dict[str, Any]:
        return {
            "uid": uid("Grant", self.grant_id),
            "attrs": {
                "owner": {"__entity": uid("Department", self.owner)},
                "grantee": {"__entity": uid("Department", self.grantee)},
                "grantee_principal": f"{self.grantee}/{self.grantee_principal}" if self.grantee_principal else "",
                "dataset": self.dataset_id or "",
                "tags": list(self.tags),
                "max_rank": CLASSIFICATION_RANK.get(self.max_classification or "public", 0),
                "status": self.status,
                "expires": int(self.expires.timestamp()) if self.expires else 0,
            },
            "parents": [],
        }


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

    def decide(
        self,
        actor: Caller,
        action: str,
        resource: Resource,
        now: datetime,
        purpose: str = "",
        grant: GrantFacts | None = None,
    ) -> Decision:
        return self.decide_each(actor, action, resource, now, purpose, [grant])[0]

    def decide_each(
        self,
        actor: Caller,
        action: str,
        resource: Resource,
        now: datetime,
        purpose: str,
        grants: Sequence[GrantFacts | None],
    ) -> list[Decision]:
        """One decision per grant (None: acting under no grant), in one call to Cedar."""
        entities = _actor_entities(actor)
        own_department = resource.entity_type == "Department" and resource.entity_id == actor.department_id
        if resource.entity_type != "Principal" and not own_department:
            # Another department as a resource: its status is not the caller's to know.
            attrs = resource.attrs or ({"status": "unknown"} if resource.entity_type == "Department" else {})
            entities.append({"uid": uid(resource.entity_type, resource.entity_id), "attrs": _attrs(attrs), "parents": []})
        entities.extend(g.entity() for g in {g.grant_id: g for g in grants if g is not None}.values())
        base = {"now": int(now.timestamp()), "purpose": purpose}
        requests = [
            {
                "principal": uid("Principal", principal_key(actor)),
                "action": uid("Action", action),
                "resource": uid(resource.entity_type, resource.entity_id),
                "context": base if grant is None else dict(base, grant={"__entity": uid("Grant", grant.grant_id)}),
            }
            for grant in grants
        ]
        results = cedarpy.is_authorized_batch(requests, self._policies, entities, self._schema)
        decisions = []
        for result in results:
            diagnostics = result.diagnostics
            names = diagnostics.id_annotations_by_reason
            # NoDecision (a request or entity outside the schema) counts as deny.
            decisions.append(
                Decision(
                    allowed=result.allowed,
                    policies=[names.get(reason, reason) for reason in diagnostics.reasons],
                    errors=list(diagnostics.errors),
                )
            )
        return decisions


def _actor_entities(actor: Caller) -> list[dict[str, Any]]:
    return [
        {"uid": uid("Department", actor.department_id), "attrs": {"status": actor.department_status}, "parents": []},
        {
            "uid": uid("Principal", principal_key(actor)),
            "attrs": {
                "department": {"__entity": uid("Department", actor.department_id)},
                "roles": list(actor.roles),
                "name": principal_key(actor),
                "status": actor.principal_status,
                "active_keys": actor.active_keys,
            },
            "parents": [uid("Department", actor.department_id)],
        },
    ]


def principal_key(caller: Caller) -> str:
    return f"{caller.department_id}/{caller.principal_id}"


def _attrs(values: dict[str, Any]) -> dict[str, Any]:
    return {name: {"__entity": value} if isinstance(value, dict) and "type" in value else value for name, value in values.items()}
