"""DynamoDB tables from the spec: on demand, point-in-time recovery, the platform's KMS key; kept
with deletion protection where the stage retains data. The audit table's resource policy makes it
append-only for every principal: no DeleteItem, UpdateItem or batch write, whatever a role allows."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from infra.spec import Key, TableSpec

_TYPES = {"S": dynamodb.AttributeType.STRING, "N": dynamodb.AttributeType.NUMBER}


def _attribute(key: Key) -> dynamodb.Attribute:
    return dynamodb.Attribute(name=key.name, type=_TYPES[key.type])


class Tables(Construct):
    def __init__(self, scope: Construct, construct_id: str, tables: tuple[TableSpec, ...], key: kms.IKey, retain: bool) -> None:
        super().__init__(scope, construct_id)
        self.tables: dict[str, dynamodb.TableV2] = {}
        for spec in tables:
            self.tables[spec.name] = dynamodb.TableV2(
                self,
                f"Table-{spec.name}",
                partition_key=_attribute(spec.partition_key),
                sort_key=_attribute(spec.sort_key) if spec.sort_key else None,
                billing=dynamodb.Billing.on_demand(),
                encryption=dynamodb.TableEncryptionV2.customer_managed_key(key),
                point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                    point_in_time_recovery_enabled=True
                ),
                time_to_live_attribute=spec.ttl_attribute,
                deletion_protection=retain,
                removal_policy=RemovalPolicy.RETAIN if retain else RemovalPolicy.DESTROY,
                resource_policy=append_only_policy() if spec.append_only else None,
                global_secondary_indexes=[
                    dynamodb.GlobalSecondaryIndexPropsV2(
                        index_name=index.name,
                        partition_key=_attribute(index.partition_key),
                        sort_key=_attribute(index.sort_key) if index.sort_key else None,
                    )
                    for index in spec.indexes
                ],
            )


APPEND_ONLY_DENIED = (
    "dynamodb:DeleteItem",
    "dynamodb:UpdateItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:PartiQLDelete",
    "dynamodb:PartiQLUpdate",
)
# PutItem cannot be denied (appends need it); the writer's condition (attribute_not_exists) keeps it
# from overwriting, and the hash chain shows any overwrite made around it.


def append_only_policy() -> iam.PolicyDocument:
    # "*" is the table itself in a table's resource policy (its own ARN would be a circular reference).
    return iam.PolicyDocument(
        statements=[
            iam.PolicyStatement(
                sid="AppendOnly",
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=list(APPEND_ONLY_DENIED),
                resources=["*"],
            )
        ]
    )
