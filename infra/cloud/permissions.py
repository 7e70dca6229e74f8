"""Least privilege, from the spec: each function's IAM policy, statement by statement, and the data
role through which functions touch a department's data. No CDK `grant_*` helper is used: they grant
wildcards (`s3:DeleteObject*`, `kms:ReEncrypt*`, every key action without conditions) that a
reviewer would have to read around; here each action is named and each key use is conditioned.

- DynamoDB: the actions the spec lists per table (the audit table: PutItem, Query, GetItem only),
  the platform key only through DynamoDB (`kms:ViaService`);
- departments' data: only by assuming the data role with a `cityshare:department` session tag; the
  data role reaches `<root>/<that department>/*` of the data bucket and keys tagged with that
  department (and each department's key policy denies everyone else: functions/identity/provisioning.py);
- the platform secret (masking and linkage keys): `kms:Decrypt` of the platform key with the
  encryption context `purpose=platform-derivation`, for the API only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aws_cdk import Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.spec import DEPARTMENT_ROOTS, DEPARTMENT_TAG, SPEC, FunctionSpec

STAGE_TAG = "cityshare:stage"
DATA_OBJECT_ACTIONS = (
    "s3:GetObject",
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:GetObjectTagging",
    "s3:PutObjectTagging",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
)
DATA_KEY_ACTIONS = ("kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey")
TABLE_KEY_ACTIONS = ("kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey")
_TAGGED = f"${{aws:PrincipalTag/{DEPARTMENT_TAG}}}"


def department_keys_of(stage: str) -> dict[str, dict[str, str]]:
    """Conditions matching departments' keys of `stage` (not the stack's own keys, which carry no department tag)."""
    return {"StringEquals": {f"aws:ResourceTag/{STAGE_TAG}": stage}, "StringLike": {f"aws:ResourceTag/{DEPARTMENT_TAG}": "?*"}}


def table_statements(
    spec: FunctionSpec, tables: dict[str, dynamodb.TableV2], platform_key: kms.IKey
) -> list[iam.PolicyStatement]:
    statements = [
        iam.PolicyStatement(
            sid=f"Table{name.title()}",
            actions=sorted({f"dynamodb:{action}" for action in actions}),
            # Its secondary indexes by name: a role reaches no index added later without saying so.
            resources=[
                tables[name].table_arn,
                *(f"{tables[name].table_arn}/index/{i.name}" for i in SPEC.table(name).indexes if "Query" in actions),
            ],
        )
        for name, actions in spec.tables.items()
    ]
    writes = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem"}
    if writes & set(spec.tables.get("catalog", ())) and not spec.keeps_secrets:
        statements.append(
            iam.PolicyStatement(
                sid="NoSecretItems",
                effect=iam.Effect.DENY,
                actions=sorted(f"dynamodb:{action}" for action in writes),
                resources=[tables["catalog"].table_arn],
                conditions={"ForAnyValue:StringEquals": {"dynamodb:LeadingKeys": ["SECRET"]}},
            )
        )
    if spec.tables:
        region = Stack.of(platform_key).region
        statements.append(
            iam.PolicyStatement(
                sid="TablesKeyThroughDynamoDb",
                actions=list(TABLE_KEY_ACTIONS),
                resources=[platform_key.key_arn],
                conditions={"StringEquals": {"kms:ViaService": f"dynamodb.{region}.amazonaws.com"}},
            )
        )
    return statements


def platform_secret_statement(platform_key: kms.IKey) -> iam.PolicyStatement:
    return iam.PolicyStatement(
        sid="PlatformSecret",
        actions=["kms:Decrypt", "kms:GenerateDataKey"],
        resources=[platform_key.key_arn],
        conditions={"StringEquals": {"kms:EncryptionContext:purpose": "platform-derivation"}},
    )


def assume_data_role_statement(role_arn: str) -> iam.PolicyStatement:
    """A function may act for a department only through the data role, naming the department."""
    return iam.PolicyStatement(
        sid="ActForOneDepartment",
        actions=["sts:AssumeRole", "sts:TagSession"],
        resources=[role_arn],
        conditions={
            "StringLike": {f"aws:RequestTag/{DEPARTMENT_TAG}": "?*"},
            "ForAllValues:StringEquals": {"aws:TagKeys": [DEPARTMENT_TAG]},
        },
    )


def own_prefix_statements(spec: FunctionSpec, bucket: s3.IBucket) -> list[iam.PolicyStatement]:
    statements = []
    for prefix, actions in spec.own_prefixes.items():
        listing = [a for a in actions if a == "s3:ListBucket"]
        objects = [a for a in actions if a != "s3:ListBucket"]
        if listing:
            statements.append(
                iam.PolicyStatement(
                    sid=f"List{prefix.strip('/').title().replace('-', '')}",
                    actions=listing,
                    resources=[bucket.bucket_arn],
                    conditions={"StringLike": {"s3:prefix": f"{prefix}*"}},
                )
            )
        if objects:
            statements.append(
                iam.PolicyStatement(
                    sid=f"Objects{prefix.strip('/').title().replace('-', '')}",
                    actions=objects,
                    resources=[bucket.arn_for_objects(f"{prefix}*")],
                )
            )
    return statements


def data_role_name(stage: str) -> str:
    """Named, so functions can be told its ARN before it exists (it trusts their roles)."""
    return f"cityshare-{stage}-data"


class DataRole(Construct):
    """The role functions assume, tagged with a department, to touch that department's data."""

    def __init__(self, scope: Construct, construct_id: str, stage: str, bucket: s3.IBucket, trusted: list[iam.IRole]) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        principals = [
            iam.SessionTagsPrincipal(
                # The trust repeats what the callers' own policies say: one tag, the department's,
                # and nothing else (no other tag key a session could carry into a condition).
                iam.PrincipalWithConditions(
                    iam.ArnPrincipal(role.role_arn),
                    {
                        "StringLike": {f"aws:RequestTag/{DEPARTMENT_TAG}": "?*"},
                        "ForAllValues:StringEquals": {"aws:TagKeys": [DEPARTMENT_TAG]},
                    },
                )
            )
            for role in trusted
        ]
        self.role = iam.Role(
            self,
            "Role",
            role_name=data_role_name(stage),
            assumed_by=iam.CompositePrincipal(*principals),
            description="CityShare: a function's session acting for one department's data (session tag cityshare:department)",
        )
        roots = [bucket.arn_for_objects(f"{root}/{_TAGGED}/*") for root in DEPARTMENT_ROOTS]
        self.role.add_to_policy(
            iam.PolicyStatement(sid="OwnDepartmentsObjects", actions=list(DATA_OBJECT_ACTIONS), resources=roots)
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="ListOwnDepartmentsPrefixes",
                actions=["s3:ListBucket"],
                resources=[bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{root}/{_TAGGED}/*" for root in DEPARTMENT_ROOTS]}},
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="OwnDepartmentsKey",
                actions=list(DATA_KEY_ACTIONS),
                resources=[stack.format_arn(service="kms", resource="key", resource_name="*")],
                conditions={
                    "StringEquals": {f"aws:ResourceTag/{DEPARTMENT_TAG}": _TAGGED, f"aws:ResourceTag/{STAGE_TAG}": stage}
                },
            )
        )


def query_role_statements(bucket: s3.IBucket, platform_key: kms.IKey, stage: str) -> list[iam.PolicyStatement]:
    """Large derived datasets run on Athena, which reads curated objects of the inputs' departments
    with the caller's credentials (the query role's): allowed only when the call comes through
    Athena (`aws:CalledViaFirst`), and each department's key policy names this role for it."""
    through_athena = {"StringEquals": {"aws:CalledViaFirst": "athena.amazonaws.com"}}
    region = Stack.of(bucket).region
    return [
        iam.PolicyStatement(
            sid="CuratedThroughAthena",
            actions=["s3:GetObject"],
            resources=[bucket.arn_for_objects("curated/*")],
            conditions=through_athena,
        ),
        iam.PolicyStatement(
            sid="ListCuratedThroughAthena",
            actions=["s3:ListBucket", "s3:GetBucketLocation"],
            resources=[bucket.bucket_arn],
            conditions=through_athena,
        ),
        iam.PolicyStatement(
            sid="DepartmentKeysThroughAthena",
            actions=["kms:Decrypt"],
            resources=[Stack.of(bucket).format_arn(service="kms", resource="key", resource_name="*")],
            conditions={
                "StringEquals": {"aws:CalledViaFirst": "athena.amazonaws.com", f"aws:ResourceTag/{STAGE_TAG}": stage},
                "StringLike": {f"aws:ResourceTag/{DEPARTMENT_TAG}": "?*"},
            },
        ),
        iam.PolicyStatement(
            sid="AthenaResultsKeyThroughS3",
            actions=["kms:Decrypt", "kms:GenerateDataKey"],
            resources=[platform_key.key_arn],
            conditions={"StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"}},
        ),
    ]


def query_role_name(stage: str) -> str:
    """Named: departments' key policies (made at run time) and the bucket's policy name it."""
    return f"cityshare-{stage}-query"


class QueryRole(Construct):
    """The role Athena queries run as. Only the roles of the functions that run queries (triggers:
    derived datasets and forecast rules' windows; analytics: a forecast rule's backtest) may assume
    it, and they do so per query with a session policy naming the query's inputs (functions/analytics/athena.py):
    the role may read curated objects through Athena, the session only the input versions' folders,
    their Glue tables and their owners' keys, so a query reads what its definer's grants cover
    because AWS says so, not only because the SQL wrapper does."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        stage: str,
        bucket: s3.IBucket,
        platform_key: kms.IKey,
        trusted: Sequence[iam.IRole],
    ) -> None:
        super().__init__(scope, construct_id)
        self.role = iam.Role(
            self,
            "Role",
            role_name=query_role_name(stage),
            assumed_by=iam.CompositePrincipal(*(iam.ArnPrincipal(role.role_arn) for role in trusted)),
            description="CityShare: Athena queries of derived datasets and forecasts, each session limited to its inputs",
        )
        for statement in query_role_statements(bucket, platform_key, stage):
            self.role.add_to_policy(statement)
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="QueryResults",
                actions=["s3:GetObject", "s3:PutObject"],
                resources=[bucket.arn_for_objects("athena-results/*")],
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="ListQueryResults",
                actions=["s3:ListBucket"],
                resources=[bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": "athena-results/*"}},
            )
        )
        for role in trusted:
            role.add_to_principal_policy(
                iam.PolicyStatement(sid="RunQueriesAsTheQueryRole", actions=["sts:AssumeRole"], resources=[self.role.role_arn])
            )


def provisioner_statements(scope: Construct, stage: str, usage_plan_id: str) -> list[iam.PolicyStatement]:
    """The one path that makes departments' keys and API keys (functions/identity/provisioning.py):
    only keys tagged with this stage and a department, only aliases under
    alias/cityshare/<stage>/departments/, only this usage plan."""
    stack = Stack.of(scope)
    keys = stack.format_arn(service="kms", resource="key", resource_name="*")
    aliases = stack.format_arn(service="kms", resource="alias", resource_name=f"cityshare/{stage}/departments/*")
    tagged_on_creation = {
        "StringEquals": {f"aws:RequestTag/{STAGE_TAG}": stage},
        "StringLike": {f"aws:RequestTag/{DEPARTMENT_TAG}": "?*"},
        "ForAllValues:StringEquals": {"aws:TagKeys": [DEPARTMENT_TAG, STAGE_TAG]},
    }
    # The stack tags its own keys with the stage too: the department tag keeps them out of reach.
    this_stages_keys = department_keys_of(stage)
    gateway = f"arn:{stack.partition}:apigateway:{stack.region}::"
    return [
        # CreateKey has no resource to name; the tags it must carry are the condition.
        iam.PolicyStatement(
            sid="CreateDepartmentKeys",
            actions=["kms:CreateKey", "kms:TagResource"],
            resources=["*"],
            conditions=tagged_on_creation,
        ),
        iam.PolicyStatement(
            sid="ManageThisStagesDepartmentKeys",
            actions=["kms:DescribeKey", "kms:EnableKeyRotation", "kms:ScheduleKeyDeletion", "kms:CreateAlias"],
            resources=[keys],
            conditions=this_stages_keys,
        ),
        iam.PolicyStatement(sid="DepartmentKeyAliases", actions=["kms:CreateAlias"], resources=[aliases]),
        iam.PolicyStatement(
            sid="DepartmentApiKeys",
            actions=["apigateway:GET", "apigateway:POST"],
            resources=[f"{gateway}/apikeys", f"{gateway}/apikeys/*"],
        ),
        iam.PolicyStatement(sid="TagDepartmentApiKeys", actions=["apigateway:PUT"], resources=[f"{gateway}/tags/*"]),
        iam.PolicyStatement(
            sid="OnTheDepartmentsUsagePlan", actions=["apigateway:POST"], resources=[f"{gateway}/usageplans/{usage_plan_id}/keys"]
        ),
    ]


def function_role_name(stage: str, function: str) -> str:
    """Named, so key policies made at run time can name a role (the query role) before it exists."""
    return f"cityshare-{stage}-{function}"


def data_bucket_statements(bucket: s3.IBucket, query_role_arn: str) -> list[iam.PolicyStatement]:
    """The bucket's own policy repeats the isolation, so it holds whatever an identity policy says:
    objects under a department root are reached only by sessions tagged with that department (the
    query role through Athena reads curated/), and no one deletes an object's versions. (Which
    department's roots a tagged session reaches is the data role's policy; that another department's
    objects stay unreadable to it is also each department key's policy.)"""
    object_actions = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:GetObjectVersion"]
    roots = [bucket.arn_for_objects(f"{root}/*") for root in DEPARTMENT_ROOTS]
    untagged = {"Null": {f"aws:PrincipalTag/{DEPARTMENT_TAG}": "true"}}
    return [
        _deny_everyone(
            "DepartmentRootsOnlyForTaggedSessionsOrAthena",
            object_actions,
            roots,
            {**untagged, "StringNotEqualsIfExists": {"aws:CalledViaFirst": "athena.amazonaws.com"}},
        ),
        _deny_everyone(
            "ThroughAthenaOnlyTheQueryRoleAndOnlyCurated",
            object_actions,
            [bucket.arn_for_objects(f"{root}/*") for root in DEPARTMENT_ROOTS if root != "curated"],
            untagged,
        ),
        _deny_everyone(
            "AthenaReadsForTheQueryRoleOnly",
            object_actions,
            [bucket.arn_for_objects("curated/*")],
            {**untagged, "ArnNotEquals": {"aws:PrincipalArn": query_role_arn}},
        ),
        _deny_everyone("VersionsAreNeverDeleted", ["s3:DeleteObjectVersion"], [bucket.arn_for_objects("*")]),
    ]


def _deny_everyone(
    sid: str, actions: list[str], resources: list[str], conditions: dict[str, Any] | None = None
) -> iam.PolicyStatement:
    """A resource policy's deny to every principal (its own account's root included)."""
    anyone = [iam.AnyPrincipal()]
    return iam.PolicyStatement(
        sid=sid, effect=iam.Effect.DENY, principals=anyone, actions=actions, resources=resources, conditions=conditions
    )


def archive_bucket_statements(bucket: s3.IBucket, writer_arn: str) -> list[iam.PolicyStatement]:
    """The audit archive's own policy: one writer (the sealer's role), and no version deleted by
    anyone (Object Lock refuses it too, until the retention has passed; this holds after)."""
    objects = [bucket.arn_for_objects("*")]
    return [
        _deny_everyone(
            "OnlyTheSealerWrites",
            ["s3:PutObject", "s3:PutObjectRetention", "s3:PutObjectLegalHold", "s3:BypassGovernanceRetention"],
            objects,
            {"ArnNotEquals": {"aws:PrincipalArn": writer_arn}},
        ),
        _deny_everyone("NoArchivedVersionIsDeleted", ["s3:DeleteObject", "s3:DeleteObjectVersion"], objects),
    ]


def audit_seal_statements(
    spec: FunctionSpec, archive: s3.IBucket, seal_key: kms.IKey, platform_key: kms.IKey
) -> list[iam.PolicyStatement]:
    """The sealer signs and writes the archive; the API reads seals and the key's public half."""
    region = Stack.of(archive).region
    through_s3 = {"StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"}}
    # Without ListBucket, S3 answers a missing object (a chain never sealed) 403, not 404.
    seals_listed = iam.PolicyStatement(
        sid="ListSeals",
        actions=["s3:ListBucket"],
        resources=[archive.bucket_arn],
        conditions={"StringLike": {"s3:prefix": "seals/*"}},
    )
    statements: list[iam.PolicyStatement] = []
    if spec.seals_audit or spec.reads_audit_seals:
        statements.append(seals_listed)
    if spec.seals_audit:
        statements += [
            iam.PolicyStatement(sid="SignSeals", actions=["kms:Sign", "kms:DescribeKey"], resources=[seal_key.key_arn]),
            iam.PolicyStatement(
                sid="WriteTheArchive",
                actions=["s3:PutObject", "s3:GetObject"],
                resources=[archive.arn_for_objects("audit/*"), archive.arn_for_objects("seals/*")],
            ),
            iam.PolicyStatement(
                sid="ArchiveKeyThroughS3",
                actions=["kms:GenerateDataKey", "kms:Decrypt"],
                resources=[platform_key.key_arn],
                conditions=through_s3,
            ),
        ]
    if spec.reads_audit_seals:
        statements += [
            iam.PolicyStatement(
                sid="SealKeysPublicHalf", actions=["kms:GetPublicKey", "kms:DescribeKey"], resources=[seal_key.key_arn]
            ),
            iam.PolicyStatement(sid="ReadSeals", actions=["s3:GetObject"], resources=[archive.arn_for_objects("seals/*")]),
            iam.PolicyStatement(
                sid="SealsKeyThroughS3", actions=["kms:Decrypt"], resources=[platform_key.key_arn], conditions=through_s3
            ),
        ]
    return statements
