"""The Cedar rules, as a security team would read and test them: the policies validated against the
schema, then a table of principal x action x resource x context -> decision (and the policy that
decided), then properties over many combinations. Every test asks the engine as authorize() does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cedarpy
import pytest
from hypothesis import given
from hypothesis import strategies as st

from functions.core.classification import CLASSIFICATION_RANK, CLASSIFICATIONS
from functions.identity.models import Caller
from functions.policy.engine import Decision, GrantFacts, PolicyEngine, Resource, uid

POLICIES = Path(__file__).resolve().parents[2] / "policies"
ENGINE = PolicyEngine(POLICIES)
NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
departments = st.sampled_from(["transport", "environment", "health", "platform"])
role_sets = st.sets(st.sampled_from(["member", "steward", "admin"]), min_size=1).map(lambda r: tuple(sorted(r)))


def caller(
    department: str, *roles: str, status: str = "active", principal_status: str = "active", keys: int = 1, name: str = "p"
) -> Caller:
    return Caller(
        department_id=department,
        principal_id=name,
        roles=roles or ("member",),
        department_status=status,
        principal_status=principal_status,
        active_keys=keys,
    )


def dataset(
    owner: str, classification: str = "internal", legal_hold: bool = False, tags: tuple[str, ...] = (), name: str = "d"
) -> Resource:
    attrs = {
        "owner": uid("Department", owner),
        "name": name,
        "classification": classification,
        "rank": CLASSIFICATION_RANK[classification],
        "tags": list(tags),
        "legal_hold": legal_hold,
    }
    return Resource("Dataset", name, attrs)


def grant(
    owner: str = "transport",
    grantee: str = "environment",
    dataset_id: str | None = "d",
    status: str = "active",
    expires: datetime | None = None,
    principal: str | None = None,
    tags: tuple[str, ...] = (),
    max_classification: str | None = None,
    grant_id: str = "g1",
) -> GrantFacts:
    return GrantFacts(grant_id, owner, grantee, principal, dataset_id, tags, max_classification, status, expires)


def decide(actor: Caller, action: str, resource: Resource, under: GrantFacts | None = None) -> Decision:
    return ENGINE.decide(actor, action, resource, NOW, "test", under)


def test_policies_validate_against_the_schema() -> None:
    policies = "\n".join(p.read_text() for p in sorted(POLICIES.glob("*.cedar")))
    result = cedarpy.validate_policies(policies, (POLICIES / "cityshare.cedarschema").read_text())
    assert result.validation_passed, result.errors


AN_HOUR_AGO, IN_AN_HOUR = NOW - timedelta(hours=1), NOW + timedelta(hours=1)
AUDIT = Resource("AuditChain", "transport", {"department": uid("Department", "transport")})
PLATFORM_AUDIT = Resource("AuditChain", "platform", {"department": uid("Department", "platform")})
DIRECTORY = Resource("Directory", "directory")
STEWARD, MEMBER, ADMIN = ("member", "steward"), ("member",), ("admin",)

# (who, action, on what, under which grant) -> allowed, the policy that decided (None: no permit).
TABLE: list[tuple[str, Caller, str, Resource, GrantFacts | None, bool, str | None]] = [
    (
        "the owner edits its dataset",
        caller("transport"),
        "UpdateDataset",
        dataset("transport"),
        None,
        True,
        "owner-manages-datasets",
    ),
    ("another department cannot", caller("health"), "UpdateDataset", dataset("transport"), None, False, None),
    (
        "legal hold freezes the owner",
        caller("transport"),
        "UpdateDataset",
        dataset("transport", legal_hold=True),
        None,
        False,
        "legal-hold-freezes-dataset",
    ),
    ("the owner publishes", caller("transport"), "UploadData", dataset("transport"), None, True, "owner-publishes-data"),
    ("the owner reads", caller("transport"), "ReadData", dataset("transport", "restricted"), None, True, "owner-reads-data"),
    (
        "public data is readable by all",
        caller("health"),
        "ReadData",
        dataset("transport", "public"),
        None,
        True,
        "public-data-readable",
    ),
    ("internal data needs a grant", caller("health"), "ReadData", dataset("transport", "internal"), None, False, None),
    (
        "internal metadata is discoverable",
        caller("health"),
        "ViewDataset",
        dataset("transport", "internal"),
        None,
        True,
        "city-discovers-open-metadata",
    ),
    ("confidential metadata is not", caller("health"), "ViewDataset", dataset("transport", "confidential"), None, False, None),
    ("a live grant reads", caller("environment"), "ReadData", dataset("transport", "confidential"), grant(), True, "live-grant"),
    (
        "a live grant shows metadata",
        caller("environment"),
        "ViewDataset",
        dataset("transport", "confidential"),
        grant(),
        True,
        "live-grant",
    ),
    (
        "a revoked grant reads nothing",
        caller("environment"),
        "ReadData",
        dataset("transport"),
        grant(status="revoked"),
        False,
        None,
    ),
    (
        "an expired grant reads nothing",
        caller("environment"),
        "ReadData",
        dataset("transport"),
        grant(expires=AN_HOUR_AGO),
        False,
        None,
    ),
    (
        "a grant until later reads",
        caller("environment"),
        "ReadData",
        dataset("transport"),
        grant(expires=IN_AN_HOUR),
        True,
        "live-grant",
    ),
    ("a grant to another department", caller("health"), "ReadData", dataset("transport"), grant(), False, None),
    ("a grant on another dataset", caller("environment"), "ReadData", dataset("transport", name="other"), grant(), False, None),
    ("a grant from another owner", caller("environment"), "ReadData", dataset("health"), grant(), False, None),
    (
        "a grant to one principal, that principal",
        caller("environment", name="alice"),
        "ReadData",
        dataset("transport"),
        grant(principal="alice"),
        True,
        "live-grant",
    ),
    (
        "a grant to one principal, another",
        caller("environment", name="bob"),
        "ReadData",
        dataset("transport"),
        grant(principal="alice"),
        False,
        None,
    ),
    (
        "a tag grant covers a tagged dataset",
        caller("environment"),
        "ReadData",
        dataset("transport", tags=("traffic", "live")),
        grant(dataset_id=None, tags=("traffic",), max_classification="internal"),
        True,
        "live-grant",
    ),
    (
        "a tag grant, a dataset without the tag",
        caller("environment"),
        "ReadData",
        dataset("transport", tags=("air",)),
        grant(dataset_id=None, tags=("traffic",), max_classification="internal"),
        False,
        None,
    ),
    (
        "a tag grant, above its classification",
        caller("environment"),
        "ReadData",
        dataset("transport", "confidential", tags=("traffic",)),
        grant(dataset_id=None, tags=("traffic",), max_classification="internal"),
        False,
        None,
    ),
    (
        "a tag grant with no tags covers nothing",
        caller("environment"),
        "ReadData",
        dataset("transport"),
        grant(dataset_id=None, max_classification="restricted"),
        False,
        None,
    ),
    (
        "a suspended department reads nothing",
        caller("environment", status="suspended"),
        "ReadData",
        dataset("transport"),
        grant(),
        False,
        "suspended-department",
    ),
    (
        "nor its own data",
        caller("transport", status="suspended"),
        "ReadData",
        dataset("transport"),
        None,
        False,
        "suspended-department",
    ),
    (
        "a suspended principal reads nothing",
        caller("environment", principal_status="suspended"),
        "ReadData",
        dataset("transport"),
        grant(),
        False,
        "suspended-principal",
    ),
    (
        "a principal without keys acts nowhere",
        caller("transport", keys=0),
        "ReadData",
        dataset("transport"),
        None,
        False,
        "principal-without-keys",
    ),
    (
        "stewards manage their grants",
        caller("transport", *STEWARD),
        "ManageGrants",
        dataset("transport"),
        None,
        True,
        "stewards-manage-grants",
    ),
    ("members do not", caller("transport", *MEMBER), "ManageGrants", dataset("transport"), None, False, None),
    ("other stewards do not", caller("health", *STEWARD), "ManageGrants", dataset("transport"), None, False, None),
    ("stewards read their chain", caller("transport", *STEWARD), "ReadAudit", AUDIT, None, True, "stewards-read-own-audit"),
    ("members do not read it", caller("transport", *MEMBER), "ReadAudit", AUDIT, None, False, None),
    (
        "the admin reads the platform chain",
        caller("platform", *ADMIN),
        "ReadAudit",
        PLATFORM_AUDIT,
        None,
        True,
        "admin-reads-platform-audit",
    ),
    ("not a department's", caller("platform", *ADMIN), "ReadAudit", AUDIT, None, False, None),
    (
        "the admin manages the directory",
        caller("platform", *ADMIN),
        "ManageDirectory",
        DIRECTORY,
        None,
        True,
        "admin-manages-directory",
    ),
    ("an admin role elsewhere does not", caller("transport", *ADMIN), "ManageDirectory", DIRECTORY, None, False, None),
    (
        "the admin reads no department's data",
        caller("platform", *ADMIN),
        "ReadData",
        dataset("health", "confidential"),
        None,
        False,
        None,
    ),
    (
        "members view their inbox",
        caller("transport"),
        "ViewInbox",
        Resource("Department", "transport"),
        None,
        True,
        "members-view-own-inbox",
    ),
    ("not another's", caller("transport"), "ViewInbox", Resource("Department", "health"), None, False, None),
]


@pytest.mark.parametrize(("case", "actor", "action", "resource", "under", "allowed", "policy"), TABLE, ids=[r[0] for r in TABLE])
def test_the_decision_table(
    case: str, actor: Caller, action: str, resource: Resource, under: GrantFacts | None, allowed: bool, policy: str | None
) -> None:
    decision = decide(actor, action, resource, under)
    assert decision.allowed is allowed and not decision.errors, (case, decision)
    if policy is not None:
        assert policy in decision.policies, (case, decision.policies)


def test_a_request_outside_the_schema_is_denied() -> None:
    broken = Resource("Dataset", "d", {"owner": "not-an-entity"})
    assert not decide(caller("transport"), "ViewDataset", broken).allowed


@given(departments, departments, role_sets, st.sampled_from(CLASSIFICATIONS))
def test_nobody_edits_another_departments_dataset(actor: str, owner: str, roles: tuple[str, ...], classification: str) -> None:
    assert decide(caller(actor, *roles), "UpdateDataset", dataset(owner, classification)).allowed is (actor == owner)


@given(departments, departments, st.sampled_from(["confidential", "restricted", "internal"]))
def test_no_grant_no_read(actor: str, owner: str, classification: str) -> None:
    assert decide(caller(actor), "ReadData", dataset(owner, classification)).allowed is (actor == owner)


suspensions: Any = st.sampled_from([{"status": "suspended"}, {"principal_status": "suspended"}, {"keys": 0}])


@given(
    departments, departments, role_sets, st.sampled_from(["ReadData", "ViewDataset", "UpdateDataset", "UploadData"]), suspensions
)
def test_an_explicit_deny_wins_over_ownership_and_any_grant(
    actor: str, owner: str, roles: tuple[str, ...], action: str, suspension: dict[str, Any]
) -> None:
    suspended = caller(actor, *roles, **suspension)
    for under in (None, grant(owner=owner, grantee=actor)):
        assert not decide(suspended, action, dataset(owner, "public"), under).allowed


@given(st.integers(-10_000, 10_000))
def test_a_grant_lives_exactly_until_it_expires(seconds: int) -> None:
    expires = NOW + timedelta(seconds=seconds)
    assert decide(caller("environment"), "ReadData", dataset("transport"), grant(expires=expires)).allowed is (seconds > 0)


def test_several_grants_are_decided_in_one_call_each_on_its_own() -> None:
    candidates: list[GrantFacts | None] = [
        None,
        grant(grant_id="g1", status="revoked"),
        grant(grant_id="g2"),
        grant(grant_id="g3", owner="health"),
    ]
    decisions = ENGINE.decide_each(caller("environment"), "ReadData", dataset("transport"), NOW, "test", candidates)
    assert [d.allowed for d in decisions] == [False, False, True, False]
