"""The platform admin's directory over HTTP: departments, principals, keys, rotation, suspension."""

from __future__ import annotations

import json
import time

import boto3
import pytest

from cityshare import CityShareClient, CityShareError
from cityshare.audit import entry_hash
from cityshare.keys import generate_key, load_private_key, public_jwk
from functions.core.dynamo import from_item, to_item
from tests.conftest import RunningStack, local_only, onboard, unique
from tests.datasets import SMALL_SCHEMA


def test_admin_registers_a_department_and_its_principals(stack: RunningStack) -> None:
    member = onboard(stack, unique("health"), "beds", ["member"])
    department = member.profile.department
    assert member.client.whoami() == {
        "department_id": department,
        "principal_id": "beds",
        "roles": ["member"],
        "department_status": "active",
    }
    detail = stack.admin().describe_department(department)
    assert [p["principal_id"] for p in detail["principals"]] == ["beds"]
    assert detail["keys"][0]["kid"] == member.profile.kid
    assert "d" not in detail["keys"][0]["jwk"]
    assert department in {d["department_id"] for d in stack.admin().list_departments()}


def test_key_rotation_retires_the_old_key(stack: RunningStack) -> None:
    member = onboard(stack, unique("police"), "dispatch", ["member"])
    admin = stack.admin()
    new_key_file = stack.state_dir / "keys" / "dispatch-2.pem"
    new_key = admin.add_key(member.profile.department, "dispatch", generate_key(new_key_file, "RS256"))
    rotated = CityShareClient.from_profile(
        member.profile.as_principal(member.profile.department, "dispatch", str(new_key_file), new_key["kid"])
    )
    assert rotated.whoami()["principal_id"] == "dispatch"
    assert member.client.whoami()["principal_id"] == "dispatch"  # both keys valid during rotation
    admin.retire_key(member.profile.department, member.profile.kid)
    with pytest.raises(CityShareError) as refused:
        member.client.whoami()
    assert (refused.value.status, refused.value.code) == (401, "unauthenticated")
    assert rotated.whoami()["principal_id"] == "dispatch"


def test_one_public_key_is_one_principals(stack: RunningStack) -> None:
    """Whoever holds a private key signs as the one principal its public half was registered for:
    the same key for a principal of another department (or another of the same) is refused."""
    first = onboard(stack, unique("parks"), "gardener", ["member"])
    other = unique("sports")
    stack.admin().register_department(other, "Sports")
    stack.admin().put_principal(other, "coach", ["member"])
    jwk = public_jwk(load_private_key(first.key_file))
    with pytest.raises(CityShareError) as refused:
        stack.admin().add_key(other, "coach", jwk)
    assert refused.value.status == 409 and f"registered to {first.profile.department}/gardener" in refused.value.detail
    with pytest.raises(CityShareError) as renamed:  # the same key under a key id of the caller's choosing
        stack.admin().add_key(other, "coach", jwk | {"kid": "another-name"})
    assert renamed.value.status == 409 and "registered to" in renamed.value.detail
    assert not stack.admin().describe_department(other)["keys"]


def test_private_keys_and_weak_keys_are_refused(stack: RunningStack) -> None:
    member = onboard(stack, unique("parks"), "rangers", ["member"])
    admin = stack.admin()
    from jwt.algorithms import ECAlgorithm

    from cityshare.keys import load_private_key

    private_jwk = ECAlgorithm.to_jwk(load_private_key(member.key_file), as_dict=True)
    with pytest.raises(CityShareError) as refused:
        admin.add_key(member.profile.department, "rangers", private_jwk)
    assert (refused.value.status, refused.value.code) == (400, "invalid_request")
    with pytest.raises(CityShareError) as unknown_principal:
        admin.add_key(member.profile.department, "nobody", generate_key(stack.state_dir / "keys" / "nobody.pem"))
    assert unknown_principal.value.status == 400


def test_admin_role_only_in_the_platform_department(stack: RunningStack) -> None:
    member = onboard(stack, unique("water"), "ops", ["member"])
    with pytest.raises(CityShareError) as refused:
        stack.admin().put_principal(member.profile.department, "ops", ["admin"])
    assert refused.value.status == 400


def test_only_the_admin_manages_the_directory(stack: RunningStack) -> None:
    steward = onboard(stack, unique("housing"), "lead", ["member", "steward"])
    for attempt in (
        lambda: steward.client.register_department(unique("rogue"), "Rogue"),
        lambda: steward.client.put_principal(steward.profile.department, "lead", ["member"]),
        steward.client.list_departments,
    ):
        with pytest.raises(CityShareError) as refused:
            attempt()
        assert (refused.value.status, refused.value.code) == (403, "forbidden")


def test_a_suspended_department_is_refused_until_reinstated(stack: RunningStack) -> None:
    member = onboard(stack, unique("events"), "tickets", ["member"])
    department = member.profile.department
    stack.admin().set_department_status(department, "suspended")
    with pytest.raises(CityShareError) as refused:
        member.client.create_dataset(unique("tickets"), "Tickets", "internal", SMALL_SCHEMA)
    assert (refused.value.status, refused.value.code) == (403, "forbidden")
    stack.admin().set_department_status(department, "active")
    assert member.client.create_dataset(unique("tickets"), "Tickets", "internal", SMALL_SCHEMA)["owner"] == department


def test_audit_chains_verify_and_stewards_read_only_their_own(stack: RunningStack) -> None:
    steward = onboard(stack, unique("culture"), "curator", ["member", "steward"])
    member = onboard(stack, steward.profile.department, "clerk", ["member"], register=False)
    member.client.create_dataset(unique("museums"), "Museum visits", "public", SMALL_SCHEMA)
    report = steward.client.verify_audit()
    assert report.intact and report.entries >= 2
    actions = [e["action"] for e in steward.client.iter_audit()]
    assert "CreateDataset" in actions
    with pytest.raises(CityShareError) as member_refused:
        member.client.audit()
    assert member_refused.value.status == 403
    with pytest.raises(CityShareError) as other_refused:
        steward.client.audit(department="platform")
    assert other_refused.value.status == 403
    assert stack.admin().verify_audit("platform").intact


@local_only("rewrites the audit table in its moto server")
def test_a_chain_rewritten_below_its_seal_fails_verification(stack: RunningStack) -> None:
    """The sealer (every 10 s here, 5 minutes in AWS) signs each chain's head; an entry rewritten
    afterwards straight in the table, its hashes and links recomputed so the chain alone still
    verifies, as a function holding the audit table's PutItem could, fails `verify_audit`."""

    steward = onboard(stack, unique("archives"), "keeper", ["member", "steward"])
    steward.client.create_dataset(unique("letters"), "Letters", "public", SMALL_SCHEMA)
    chain = steward.profile.department
    deadline = time.monotonic() + 60
    while (report := steward.client.verify_audit()).sealed_seq == 0 and time.monotonic() < deadline:
        time.sleep(1)
    assert report.intact and report.sealed_seq >= 2, report.problems
    sealed_seq = report.sealed_seq

    settings = json.loads(stack.profile_path.read_text())
    dynamodb = boto3.client(
        "dynamodb",
        endpoint_url=settings["aws_endpoint"],
        region_name="eu-west-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    (table,) = [t for t in dynamodb.list_tables()["TableNames"] if t.endswith("-audit")]
    entries = [
        from_item(i)
        for i in dynamodb.query(
            TableName=table, KeyConditionExpression="chain = :c", ExpressionAttributeValues=to_item({":c": chain})
        )["Items"]
    ]

    previous = "0" * 64
    for entry in sorted(entries, key=lambda e: int(e["seq"])):
        entry["seq"] = int(entry["seq"])
        entry["details"] = json.loads(entry.get("details") or "{}")
        entry.setdefault("policies", [])
        if entry["seq"] == 1:
            entry["reason"] = "rewritten"
        entry["prev_hash"], entry["hash"] = previous, ""
        entry["hash"] = entry_hash(entry)
        previous = entry["hash"]
        dynamodb.put_item(TableName=table, Item=to_item(dict(entry, details=json.dumps(entry["details"], sort_keys=True))))
    report = steward.client.verify_audit()
    assert not report.intact
    assert any(f"entry {sealed_seq}: differs from the entry the platform sealed" in p for p in report.problems), report.problems
