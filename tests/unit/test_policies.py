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


def dataset(owner: str, classification: str = "internal", legal_hold: bool = False) -> Resource:
    return Resource(
        "Dataset",
        "d",
        {"owner": uid("Department", owner), "classification": classification, "tags": [], "legal_hold": legal_hold},
    )


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
