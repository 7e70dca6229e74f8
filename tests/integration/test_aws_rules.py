"""The rules AWS applies to policy documents, which moto skips (tests/aws_rules.py): the provisioner's
key creation passes them, and the check itself refuses what KMS refuses."""

from __future__ import annotations

import json

import pytest

from functions.core.settings import Settings
from functions.identity.provisioning import department_key_policy
from tests.aws_rules import AwsRules, PolicyRefused, check_key_policy, role_in
from tests.integration.conftest import Aws, provision_departments

ROLE = "arn:aws:iam::123456789012:role/cityshare-prod-provisioner"


def no_role(arn: str) -> bool:
    return False


def test_a_key_policy_that_locks_its_creator_out_is_refused_unless_the_check_is_bypassed() -> None:
    policy = json.dumps(department_key_policy("123456789012", "transport"))
    # The call the provisioner made before: root administers through IAM, but the provisioner's
    # own IAM policy holds no kms:PutKeyPolicy, so KMS refuses it.
    with pytest.raises(PolicyRefused, match="will not allow you to update the key policy"):
        check_key_policy(policy, ROLE, bypass=False, role_exists=no_role)
    check_key_policy(policy, ROLE, bypass=True, role_exists=no_role)
    check_key_policy(policy, ROLE, bypass=False, role_exists=no_role, caller_iam_allows_put_key_policy=True)


def test_even_bypassed_the_account_must_keep_the_key_manageable() -> None:
    policy = department_key_policy("123456789012", "transport")
    policy["Statement"] = [s for s in policy["Statement"] if s["Sid"] != "TheAccountAdministersThroughIam"]
    with pytest.raises(PolicyRefused, match="manageable"):
        check_key_policy(json.dumps(policy), ROLE, bypass=True, role_exists=no_role)


def test_principals_must_exist_and_conditions_be_known() -> None:
    policy = department_key_policy("123456789012", "transport")
    policy["Statement"].append(
        {"Sid": "Ghost", "Effect": "Allow", "Principal": {"AWS": ROLE}, "Action": "kms:Decrypt", "Resource": "*"}
    )
    with pytest.raises(PolicyRefused, match="does not exist"):
        check_key_policy(json.dumps(policy), ROLE, bypass=True, role_exists=no_role)
    check_key_policy(json.dumps(policy), ROLE, bypass=True, role_exists=lambda arn: arn == ROLE)
    policy["Statement"][-1]["Condition"] = {"StringEqualz": {"aws:PrincipalTag/x": "y"}}
    with pytest.raises(PolicyRefused, match="operator"):
        check_key_policy(json.dumps(policy), ROLE, bypass=True, role_exists=lambda arn: arn == ROLE)


def test_the_provisioners_calls_pass_the_rules_kms_applies(moto_aws: Aws, settings: Settings) -> None:
    rules = AwsRules(role_exists=role_in(moto_aws.client("iam")), caller_role=ROLE)
    with rules.active():
        provision_departments("logistics")
    assert rules.checked == ["kms.CreateKey"]
    kms = moto_aws.client("kms")
    key = kms.describe_key(KeyId="alias/cityshare/it/departments/logistics")["KeyMetadata"]
    document = json.loads(kms.get_key_policy(KeyId=key["KeyId"], PolicyName="default")["Policy"])
    assert {s["Sid"] for s in document["Statement"]} >= {"TheAccountAdministersThroughIam", "NotDisabledOrDeletedWhileInUse"}


def test_the_sealers_calls_pass_the_rules_s3_and_kms_apply(moto_aws: Aws, settings: Settings) -> None:
    """Writing to the Object Lock archive needs a checksum (S3 refuses it otherwise; moto does not)."""
    from functions.audit.chain import AuditEvent, AuditLog
    from functions.audit.sealing import AuditArchive, AuditSealer, SealKey

    rules = AwsRules(role_exists=role_in(moto_aws.client("iam")))
    rules.locked_buckets.add(moto_aws.names[("bucket", "audit-archive")])
    log = AuditLog(moto_aws.table("audit"), moto_aws.client("dynamodb"))
    log.append(
        "transport", AuditEvent(actor_department="transport", actor_principal="p", action="A", resource="R", decision="allow")
    )
    archive = AuditArchive(moto_aws.names[("bucket", "audit-archive")], moto_aws.client("s3"))
    with rules.active():
        AuditSealer(
            log, archive, SealKey(moto_aws.names[("key", "audit-seal")], moto_aws.client("kms")), lambda: ["transport"]
        ).seal_all()
        with pytest.raises(PolicyRefused, match="Content-MD5"):
            moto_aws.client("s3").put_object(Bucket=moto_aws.names[("bucket", "audit-archive")], Key="audit/x", Body=b"x")
    assert rules.checked.count("s3.PutObject(object lock)") == 3 and "kms.Sign" in rules.checked


def test_many_datasets_and_many_audit_entries_are_read_and_written_within_dynamodbs_limits(moto_aws: Aws) -> None:
    """The city picture reads up to 120 datasets in one call and records its reads in one write:
    batches of at most 100 keys, transactions of at most 100 actions (moto does not refuse more)."""
    from functions.audit.chain import AuditEvent, AuditLog
    from functions.catalog.repository import CatalogRepository

    client = moto_aws.client("dynamodb")
    rules = AwsRules(role_exists=lambda _: True)
    with rules.active():
        with pytest.raises(PolicyRefused, match="at most 100"):
            client.batch_get_item(
                RequestItems={
                    moto_aws.table("catalog"): {"Keys": [{"pk": {"S": f"D#{n}"}, "sk": {"S": "DATASET"}} for n in range(101)]}
                }
            )
        assert CatalogRepository(moto_aws.table("catalog"), client).get_many([f"ds-{n:03d}" for n in range(150)]) == {}
        event = AuditEvent(
            actor_department="city", actor_principal="p", action="ReadData", resource="Dataset::x", decision="allow"
        )
        written = AuditLog(moto_aws.table("audit"), client).append_many("city", [event] * 150)
    assert [e.seq for e in written] == list(range(1, 151))
