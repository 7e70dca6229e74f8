"""Isolation in the layer that cannot have CityShare's bugs: what each role may do, read from the
synthesised template (IAM, the bucket's and the audit table's resource policies), and the policy
every department's key gets when it is provisioned."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from functions.identity.provisioning import department_key_policy
from infra.spec import DEPARTMENT_ROOTS, DEPARTMENT_TAG, SPEC
from tests.infra.conftest import ROOT, Synthesised, of_type
from tests.infra.iam import Resources, Statement, role_statements, role_table

FUNCTION_ROLES = {f"role:{f.name}" for f in SPEC.functions}


@pytest.fixture(scope="module")
def statements(resources: Resources) -> list[Statement]:
    return [s for s in role_statements(resources) if s.role in FUNCTION_ROLES | {"role:data", "role:query"}]


def holders(statements: list[Statement], action: str, resource_part: str = "") -> set[str]:
    return {
        s.role.removeprefix("role:")
        for s in statements
        if s.allows(action) and (not resource_part or any(resource_part in r for r in s.resources))
    }


def test_the_readme_role_table_is_the_template(resources: Resources) -> None:
    readme = (ROOT / "docs" / "reference.md").read_text()
    start, end = "<!-- role-table:start -->", "<!-- role-table:end -->"
    documented = readme.split(start, 1)[1].split(end, 1)[0].strip()
    assert documented == role_table(resources), "the role table is stale; the template says:\n" + role_table(resources)


def test_every_function_has_a_role_of_its_own_with_exactly_the_spec_tables(statements: list[Statement]) -> None:
    for function in SPEC.functions:
        granted = {
            (resource.split(">")[0].removeprefix("<table:"), action.removeprefix("dynamodb:"))
            for s in statements
            if s.role == f"role:{function.name}" and s.effect == "Allow"
            for action in s.actions
            if action.startswith("dynamodb:")
            for resource in s.resources
        }
        assert granted == {(table, action) for table, actions in function.tables.items() for action in actions}, function.name


def test_only_the_roles_that_keep_secrets_may_write_the_catalogs_secret_items(statements: list[Statement]) -> None:
    """Key ciphertexts (the catalog's SECRET partition) are written only by the functions that make
    them: any other role that writes the catalog is denied that partition by its own policy."""
    for function in SPEC.functions:
        writes = {"PutItem", "UpdateItem", "DeleteItem"} & set(function.tables.get("catalog", ()))
        denied = [
            s
            for s in statements
            if s.role == f"role:{function.name}" and s.effect == "Deny" and any("<table:catalog>" in r for r in s.resources)
        ]
        if writes and not function.keeps_secrets:
            (deny,) = denied
            assert {f"dynamodb:{a}" for a in writes} <= set(deny.actions), function.name
            assert '"dynamodb:LeadingKeys": ["SECRET"]' in deny.conditions, function.name
        else:
            assert not denied, function.name
    assert {f.name for f in SPEC.functions if f.keeps_secrets} == {"ingest", "api", "delta-sharing"}


def test_no_function_role_reaches_departments_objects_or_keys_itself(statements: list[Statement]) -> None:
    for statement in statements:
        if statement.role == "role:data" or statement.effect != "Allow":
            continue
        for root in DEPARTMENT_ROOTS:
            touching = [r for r in statement.resources if f"/{root}/" in r or r.endswith(f"/{root.split('/')[0]}/*")]
            if touching and any(a.startswith("s3:") for a in statement.actions):
                # The one exception: the query role's reads through Athena.
                assert statement.role == "role:query" and statement.actions == ("s3:GetObject",), statement
                assert "aws:CalledViaFirst" in statement.conditions and "athena.amazonaws.com" in statement.conditions
        if any(a.startswith("kms:") for a in statement.actions) and any(":key/*" in r for r in statement.resources):
            assert statement.role in {"role:query", "role:provisioner"}, statement
            if statement.role == "role:query":
                assert statement.actions == ("kms:Decrypt",) and "athena.amazonaws.com" in statement.conditions
            else:
                assert not {"kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"} & set(statement.actions), statement
    assert holders(statements, "s3:DeleteObjectVersion") == set()
    assert holders(statements, "s3:PutObject", "/curated/") == {"data"}


def test_the_data_role_reaches_only_the_tagged_departments_prefixes_and_key(
    statements: list[Statement], resources: Resources
) -> None:
    data = [s for s in statements if s.role == "role:data"]
    tagged = f"${{aws:PrincipalTag/{DEPARTMENT_TAG}}}"
    objects = next(s for s in data if "s3:GetObject" in s.actions)
    assert sorted(objects.resources) == sorted(f"<bucket:data>/{root}/{tagged}/*" for root in DEPARTMENT_ROOTS)
    assert "s3:DeleteObjectVersion" not in objects.actions
    key = next(s for s in data if "kms:Decrypt" in s.actions)
    assert json.loads(key.conditions)["StringEquals"][f"aws:ResourceTag/{DEPARTMENT_TAG}"] == tagged
    (role,) = [r for name, r in of_type(resources, "AWS::IAM::Role").items() if name.startswith("DataRole")]
    trust = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    trusted = {json.dumps(t["Principal"]) for t in trust}
    acting = {f.name for f in SPEC.functions if f.acts_for_departments}
    assert all(any(f"FunctionsRole{name.replace('-', '')}" in t for t in trusted) for name in acting)
    assert not any(
        f"FunctionsRole{f.name.replace('-', '')}" in t for t in trusted for f in SPEC.functions if f.name not in acting
    )
    for statement in trust:  # a session must name its department, and carries no other tag
        assert "sts:TagSession" in statement["Action"]
        assert statement["Condition"] == {
            "StringLike": {f"aws:RequestTag/{DEPARTMENT_TAG}": "?*"},
            "ForAllValues:StringEquals": {"aws:TagKeys": [DEPARTMENT_TAG]},
        }
    assert holders(statements, "sts:AssumeRole", "-data") == acting


def test_request_paths_get_data_sessions_only_from_the_broker_against_tokens_only_the_authorizer_records(
    statements: list[Statement],
) -> None:
    """The functions serving requests cannot assume the data role: they ask the sessions function,
    which vends a session only against a token the authorizer recorded in the nonces table, and only
    the authorizer may write that table (functions/sharing/sessions.py)."""
    acting = {f.name for f in SPEC.functions if f.acts_for_departments}
    assert {"api", "analytics", "delta-sharing"}.isdisjoint(acting)
    assert acting == {"sessions", "ingest", "triggers"}  # the broker, and background work
    assert holders(statements, "lambda:InvokeFunction", "sessions") == {"api", "analytics", "delta-sharing"}
    assert holders(statements, "dynamodb:PutItem", "<table:nonces>") == {"authorizer"}
    assert holders(statements, "dynamodb:UpdateItem", "<table:nonces>") == set()
    assert holders(statements, "dynamodb:GetItem", "<table:nonces>") == {"sessions"}


def test_the_audit_trail_is_append_only_for_every_principal(statements: list[Statement], resources: Resources) -> None:
    for action in ("DeleteItem", "UpdateItem", "BatchWriteItem", "Scan", "PartiQLDelete", "PartiQLUpdate"):
        assert holders(statements, f"dynamodb:{action}", "<table:audit>") == set(), action
    (audit,) = [
        t
        for t in of_type(resources, "AWS::DynamoDB::GlobalTable").values()
        if t["Properties"]["KeySchema"][0]["AttributeName"] == "chain"
    ]
    policy = audit["Properties"]["Replicas"][0]["ResourcePolicy"]["PolicyDocument"]["Statement"]
    (deny,) = policy
    assert deny["Effect"] == "Deny" and deny["Principal"] == {"AWS": "*"}
    assert {"dynamodb:DeleteItem", "dynamodb:UpdateItem", "dynamodb:BatchWriteItem"} <= set(deny["Action"])


def test_the_bucket_policy_keeps_versions_and_departments_roots(resources: Resources) -> None:
    policies = [p for p in of_type(resources, "AWS::S3::BucketPolicy").values() if "VersionsAreNeverDeleted" in json.dumps(p)]
    (policy,) = policies
    by_sid = {s.get("Sid"): s for s in policy["Properties"]["PolicyDocument"]["Statement"]}
    assert by_sid["VersionsAreNeverDeleted"]["Effect"] == "Deny"
    assert by_sid["VersionsAreNeverDeleted"]["Action"] == "s3:DeleteObjectVersion"
    untagged = by_sid["DepartmentRootsOnlyForTaggedSessionsOrAthena"]
    assert untagged["Effect"] == "Deny" and untagged["Condition"]["Null"] == {f"aws:PrincipalTag/{DEPARTMENT_TAG}": "true"}
    assert len(untagged["Resource"]) == len(DEPARTMENT_ROOTS)
    athena = by_sid["AthenaReadsForTheQueryRoleOnly"]
    assert "cityshare-prod-query" in json.dumps(athena["Condition"]["ArnNotEquals"])


def test_the_audit_archive_and_the_seal_key_are_the_sealers_alone(
    statements: list[Statement], resources: Resources, synthesised: Synthesised
) -> None:
    """No role but the sealer's signs seals or writes the archive (its policies, the key's and the
    bucket's say so three times); the archive keeps every version under compliance Object Lock."""
    assert holders(statements, "kms:Sign") == {"sealer"}
    assert holders(statements, "s3:PutObject", "<bucket:audit-archive>") == {"sealer"}
    assert holders(statements, "s3:GetObject", "<bucket:audit-archive>") == {"sealer", "api"}
    assert holders(statements, "kms:GetPublicKey") == {"api"}
    assert holders(statements, "dynamodb:PutItem", "<table:audit>") & {"sealer"} == set()  # it reads chains, writes none
    (seal_key,) = [k for n, k in of_type(resources, "AWS::KMS::Key").items() if n.startswith("KeysAuditSeal")]
    (only_sealer,) = [s for s in seal_key["Properties"]["KeyPolicy"]["Statement"] if s.get("Sid") == "OnlyTheSealerSigns"]
    assert only_sealer["Effect"] == "Deny" and only_sealer["Action"] == "kms:Sign" and only_sealer["Principal"] == {"AWS": "*"}
    assert "cityshare-prod-sealer" in json.dumps(only_sealer["Condition"]["ArnNotEquals"])
    (archive,) = [b for n, b in of_type(resources, "AWS::S3::Bucket").items() if n.startswith("StorageBucketauditarchive")]
    lock = archive["Properties"]["ObjectLockConfiguration"]
    days = synthesised.context["cityshare"]["stages"]["prod"]["auditRetentionDays"]
    assert archive["Properties"]["ObjectLockEnabled"] is True and days >= 365 * 7
    assert lock == {"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": days}}}
    (policy,) = [p for p in of_type(resources, "AWS::S3::BucketPolicy").values() if "OnlyTheSealerWrites" in json.dumps(p)]
    by_sid = {s.get("Sid"): s for s in policy["Properties"]["PolicyDocument"]["Statement"]}
    assert by_sid["OnlyTheSealerWrites"]["Effect"] == "Deny" and "s3:PutObject" in by_sid["OnlyTheSealerWrites"]["Action"]
    assert by_sid["NoArchivedVersionIsDeleted"]["Effect"] == "Deny"
    assert "s3:DeleteObjectVersion" in by_sid["NoArchivedVersionIsDeleted"]["Action"]


def test_the_platform_secret_is_for_the_views_builders_alone_and_the_platform_key_only_through_services(
    statements: list[Statement],
) -> None:
    secret = {s.role for s in statements if "platform-derivation" in s.conditions}
    assert secret == {f"role:{f.name}" for f in SPEC.functions if f.platform_secret} == {"role:api", "role:delta-sharing"}
    for statement in statements:
        if "<key:platform>" in statement.resources:
            assert statement.conditions, statement  # through DynamoDB, SNS or S3, or with the secret's context


def test_only_the_provisioner_creates_keys_and_only_tagged_ones(statements: list[Statement]) -> None:
    assert holders(statements, "kms:CreateKey") == {"provisioner"}
    assert holders(statements, "kms:ScheduleKeyDeletion") == {"provisioner"}
    assert holders(statements, "kms:PutKeyPolicy") == set()
    assert holders(statements, "apigateway:POST") == {"provisioner"}
    create = next(s for s in statements if "kms:CreateKey" in s.actions)
    conditions = json.loads(create.conditions)
    assert conditions["StringEquals"] == {"aws:RequestTag/cityshare:stage": "prod"}
    manage = next(s for s in statements if "kms:ScheduleKeyDeletion" in s.actions)
    # Never the stack's own keys (tagged with the stage, but with no department).
    assert json.loads(manage.conditions)["StringLike"] == {f"aws:ResourceTag/{DEPARTMENT_TAG}": "?*"}


def test_a_departments_key_policy_denies_use_to_anyone_not_acting_for_it() -> None:
    policy = department_key_policy(
        "123456789012", "transport", query_role="arn:aws:iam::123456789012:role/cityshare-prod-triggers"
    )
    denies = [s for s in policy["Statement"] if s["Effect"] == "Deny" and s["Sid"] != "NotDisabledOrDeletedWhileInUse"]
    assert len(denies) == 2
    for deny in denies:
        assert deny["Principal"] == {"AWS": "*"}
        assert {"kms:Decrypt", "kms:GenerateDataKey*"} <= set(deny["Action"])
        assert deny["Condition"]["StringNotEquals"][f"aws:PrincipalTag/{DEPARTMENT_TAG}"] == "transport"
    assert denies[0]["Condition"]["StringNotEquals"]["aws:CalledViaFirst"] == "athena.amazonaws.com"
    assert denies[1]["Condition"]["ArnNotEquals"] == {
        "aws:PrincipalArn": "arn:aws:iam::123456789012:role/cityshare-prod-triggers"
    }
    local = department_key_policy("123456789012", "transport")
    assert [s["Sid"] for s in local["Statement"]] == [
        "TheAccountAdministersThroughIam",
        "NotDisabledOrDeletedWhileInUse",
        "OnlySessionsActingForTheDepartmentUseIt",
    ]


def test_a_departments_key_cannot_be_disabled_or_deleted_while_it_carries_its_alias() -> None:
    (guard,) = [
        s for s in department_key_policy("123456789012", "transport")["Statement"] if s["Sid"] == "NotDisabledOrDeletedWhileInUse"
    ]
    assert guard["Effect"] == "Deny" and guard["Principal"] == {"AWS": "*"}
    assert {"kms:ScheduleKeyDeletion", "kms:DisableKey", "kms:DeleteAlias", "kms:UpdateAlias"} <= set(guard["Action"])
    assert guard["Condition"] == {"ForAnyValue:StringLike": {"kms:ResourceAliases": "alias/cityshare/*"}}


def test_every_role_of_the_functions_is_named_for_its_stage(resources: Resources, synthesised: Synthesised) -> None:
    names = {r["Properties"].get("RoleName") for r in of_type(resources, "AWS::IAM::Role").values()}
    assert {f"cityshare-prod-{f.name}" for f in SPEC.functions} | {"cityshare-prod-data"} <= names
    assert Path(synthesised.outdir).is_dir()


def test_athena_queries_run_as_the_query_role_which_only_the_query_running_roles_assume(
    statements: list[Statement], resources: Resources
) -> None:
    """The query role alone reads curated objects through Athena; only the function that runs
    queries may assume it (per query, with a session policy naming the inputs: functions/analytics/athena.py)."""
    (role,) = [
        r for r in of_type(resources, "AWS::IAM::Role").values() if r["Properties"].get("RoleName") == "cityshare-prod-query"
    ]
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    trusted = json.dumps(trust["Principal"])
    assert trust["Action"] == "sts:AssumeRole" and "FunctionsRoletriggers" in trusted and "FunctionsRoleanalytics" in trusted
    assumes = [s for s in statements if s.sid == "RunQueriesAsTheQueryRole"]
    assert sorted(s.role for s in assumes) == ["role:analytics", "role:triggers"]
    assert holders(statements, "athena:StartQueryExecution") == {"query"}
    assert holders(statements, "s3:GetObject", "/curated/") == {"query", "data"}
