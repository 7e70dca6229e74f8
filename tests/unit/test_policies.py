"""The Cedar base rules, evaluated as authorize() evaluates them."""

from __future__ import annotations

from pathlib import Path

import cedarpy
import pytest
from hypothesis import given
from hypothesis import strategies as st

from functions.catalog.models import CLASSIFICATIONS
from functions.identity.models import Caller
from functions.policy.engine import PolicyEngine, Resource, uid

POLICIES = Path(__file__).resolve().parents[2] / "policies"
ENGINE = PolicyEngine(POLICIES)
departments = st.sampled_from(["transport", "environment", "health", "platform"])
role_sets = st.sets(st.sampled_from(["member", "steward", "admin"]), min_size=1).map(lambda r: tuple(sorted(r)))


def caller(department: str, *roles: str, status: str = "active") -> Caller:
    return Caller(
        department_id=department,
        principal_id="p",
        roles=roles or ("member",),
        department_status=status,
        jti="j" * 16,
        body_sha256="x" * 43,
    )


def dataset(owner: str, classification: str = "internal", legal_hold: bool = False, readers: tuple[str, ...] = ()) -> Resource:
    attrs = {
        "owner": uid("Department", owner),
        "classification": classification,
        "tags": [],
        "legal_hold": legal_hold,
        "readers": [uid("Department", r) for r in readers],
        "reader_principals": [],
    }
    return Resource("Dataset", "d", attrs)


def test_policies_validate_against_the_schema() -> None:
    policies = "\n".join(p.read_text() for p in sorted(POLICIES.glob("*.cedar")))
    result = cedarpy.validate_policies(policies, (POLICIES / "cityshare.cedarschema").read_text())
    assert result.validation_passed, result.errors


def test_owners_manage_their_datasets() -> None:
    decision = ENGINE.decide(caller("transport"), "UpdateDataset", dataset("transport"))
    assert decision.allowed and decision.policies == ["owner-manages-datasets"]


@pytest.mark.parametrize(
    ("classification", "visible"), [("public", True), ("internal", True), ("confidential", False), ("restricted", False)]
)
def test_other_departments_see_only_open_metadata(classification: str, visible: bool) -> None:
    assert ENGINE.decide(caller("environment"), "ViewDataset", dataset("transport", classification)).allowed is visible


def test_admin_manages_the_directory_but_not_datasets_of_others() -> None:
    admin = caller("platform", "admin")
    assert ENGINE.decide(admin, "ManageDirectory", Resource("Directory", "directory")).allowed
    assert not ENGINE.decide(admin, "ViewDataset", dataset("health", "confidential")).allowed
    assert not ENGINE.decide(caller("transport", "admin"), "ManageDirectory", Resource("Directory", "directory")).allowed


def test_stewards_read_only_their_departments_audit() -> None:
    chain = Resource("AuditChain", "transport", {"department": uid("Department", "transport")})
    assert ENGINE.decide(caller("transport", "member", "steward"), "ReadAudit", chain).allowed
    assert not ENGINE.decide(caller("transport", "member"), "ReadAudit", chain).allowed
    assert not ENGINE.decide(caller("health", "steward"), "ReadAudit", chain).allowed


@given(departments, departments, role_sets, st.sampled_from(CLASSIFICATIONS))
def test_nobody_edits_another_departments_dataset(actor: str, owner: str, roles: tuple[str, ...], classification: str) -> None:
    decision = ENGINE.decide(caller(actor, *roles), "UpdateDataset", dataset(owner, classification))
    assert decision.allowed is (actor == owner)


@given(
    departments, role_sets, st.sampled_from(["CreateDataset", "UpdateDataset", "ViewDataset"]), st.sampled_from(CLASSIFICATIONS)
)
def test_a_suspended_department_is_always_denied(
    department: str, roles: tuple[str, ...], action: str, classification: str
) -> None:
    decision = ENGINE.decide(caller(department, *roles, status="suspended"), action, dataset(department, classification))
    assert not decision.allowed


def test_legal_hold_freezes_a_dataset_even_for_its_owner() -> None:
    decision = ENGINE.decide(caller("transport"), "UpdateDataset", dataset("transport", legal_hold=True))
    assert not decision.allowed and decision.policies == ["legal-hold-freezes-dataset"]


def test_a_request_outside_the_schema_is_denied() -> None:
    decision = ENGINE.decide(caller("transport"), "ViewDataset", Resource("Dataset", "d", {"owner": "not-an-entity"}))
    assert not decision.allowed


readers_lists = st.lists(departments, max_size=4)


@given(departments, departments, st.sampled_from(["confidential", "restricted", "internal"]))
def test_no_grant_no_read(actor: str, owner: str, classification: str) -> None:
    decision = ENGINE.decide(caller(actor), "ReadData", dataset(owner, classification))
    assert decision.allowed is (actor == owner)


@given(departments, departments, readers_lists, st.sampled_from(CLASSIFICATIONS))
def test_an_explicit_deny_wins_over_any_grant(actor: str, owner: str, readers: list[str], classification: str) -> None:
    resource = dataset(owner, classification, readers=(actor, *readers))
    assert not ENGINE.decide(caller(actor, status="suspended"), "ReadData", resource).allowed


@given(departments, departments, readers_lists, st.randoms())
def test_the_order_of_grants_does_not_matter(actor: str, owner: str, readers: list[str], rng: object) -> None:
    shuffled = list(readers)
    rng.shuffle(shuffled)  # type: ignore[attr-defined]
    first = ENGINE.decide(caller(actor), "ReadData", dataset(owner, "confidential", readers=tuple(readers))).allowed
    assert first == ENGINE.decide(caller(actor), "ReadData", dataset(owner, "confidential", readers=tuple(shuffled))).allowed


@given(departments, departments, readers_lists, st.integers(0, 3))
def test_revoking_a_grant_never_widens_access(actor: str, owner: str, readers: list[str], revoked: int) -> None:
    before = ENGINE.decide(caller(actor), "ReadData", dataset(owner, "restricted", readers=tuple(readers))).allowed
    remaining = tuple(r for i, r in enumerate(readers) if i != revoked)
    after = ENGINE.decide(caller(actor), "ReadData", dataset(owner, "restricted", readers=remaining)).allowed
    assert after <= before


def test_only_the_owners_stewards_manage_grants() -> None:
    assert ENGINE.decide(caller("transport", "member", "steward"), "ManageGrants", dataset("transport")).allowed
    assert not ENGINE.decide(caller("transport", "member"), "ManageGrants", dataset("transport")).allowed
    assert not ENGINE.decide(caller("health", "member", "steward"), "ManageGrants", dataset("transport")).allowed
