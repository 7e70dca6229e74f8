"""Creates the spec's resources on the moto server: tables, the bucket and its notifications, queues
with dead-letter queues, the event bus and its rules, the SNS topics."""

from __future__ import annotations

import json
from typing import Any

from infra.spec import SPEC, ExpirySpec, PlatformSpec, TableSpec

REGION = "eu-west-1"
ACCOUNT = "123456789012"
# Object Lock's retention here (AWS: the stage's `auditRetentionDays`): a day, so that what a
# development stack archived is locked as in AWS, not for years.
LOCAL_RETENTION_DAYS = 1


def physical_names(prefix: str, spec: PlatformSpec = SPEC) -> dict[tuple[str, str], str]:
    names: dict[tuple[str, str], str] = {}
    names.update({("table", t.name): f"{prefix}-{t.name}" for t in spec.tables})
    names.update({("bucket", b.name): f"{prefix}-{b.name}" for b in spec.buckets})
    names.update({("queue", q.name): f"{prefix}-{q.name}" for q in spec.queues})
    names.update({("dead-letters", q.name): f"{prefix}-{q.name}-dlq" for q in spec.queues})
    names[("bus", spec.event_bus)] = f"{prefix}-{spec.event_bus}"
    names[("key", "platform")] = f"alias/{prefix}/platform"
    names[("key", "audit-seal")] = f"alias/{prefix}/audit-seal"
    # Functions get a topic's ARN, which the local region and account make predictable.
    names.update({("topic", t): f"arn:aws:sns:{REGION}:{ACCOUNT}:{prefix}-{t}" for t in spec.topics})
    names[("catalog", spec.query_catalog)] = f"{prefix}_{spec.query_catalog}".replace("-", "_")
    # moto registers Glue tables but does not run Athena queries: no workgroup, so derived datasets
    # use DuckDB here (asking for Athena is refused with a clear error).
    names[("workgroup", spec.query_workgroup)] = ""
    # The data role the functions assume per department (moto issues its sessions; it enforces no
    # policy, so isolation is AWS's to enforce and the template's tests to prove). No usage plan:
    # the embedded gateway throttles each department itself.
    names[("role", "data")] = f"arn:aws:iam::{ACCOUNT}:role/{prefix}-data"
    names[("usage-plan", "departments")] = ""
    names[("role", "queries")] = ""  # no Athena locally
    names[("function", "privacy")] = ""  # the API function computes private releases in its own process
    names[("function", "sessions")] = ""  # the broker decides in the serving function's process
    return names


def _table_request(table: TableSpec, name: str) -> dict[str, Any]:
    keys = [table.partition_key] + ([table.sort_key] if table.sort_key else [])
    attributes = {k.name: k.type for k in keys}
    request: dict[str, Any] = {
        "TableName": name,
        "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": k.name, "KeyType": kt} for k, kt in zip(keys, ("HASH", "RANGE"), strict=False)],
    }
    indexes = []
    for index in table.indexes:
        index_keys = [index.partition_key] + ([index.sort_key] if index.sort_key else [])
        attributes.update({k.name: k.type for k in index_keys})
        indexes.append(
            {
                "IndexName": index.name,
                "KeySchema": [
                    {"AttributeName": k.name, "KeyType": kt} for k, kt in zip(index_keys, ("HASH", "RANGE"), strict=False)
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        )
    if indexes:
        request["GlobalSecondaryIndexes"] = indexes
    request["AttributeDefinitions"] = [{"AttributeName": n, "AttributeType": t} for n, t in attributes.items()]
    return request


def create_table(dynamodb: Any, table: TableSpec, name: str) -> None:
    dynamodb.create_table(**_table_request(table, name))
    if table.ttl_attribute:
        dynamodb.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": table.ttl_attribute}
        )


def _lifecycle_rule(expiry: ExpirySpec) -> dict[str, Any]:
    prefix_filter: dict[str, Any] = {"Prefix": expiry.prefix}
    if expiry.tag:
        prefix_filter = {"And": {"Prefix": expiry.prefix, "Tags": [{"Key": expiry.tag[0], "Value": expiry.tag[1]}]}}
    rule: dict[str, Any] = {
        "ID": f"{expiry.prefix.strip('/').replace('/', '-')}-{expiry.days}d",
        "Status": "Enabled",
        "Filter": prefix_filter,
        "Expiration": {"Days": expiry.days},
    }
    if expiry.noncurrent_days:
        rule["NoncurrentVersionExpiration"] = {"NoncurrentDays": expiry.noncurrent_days}
    return rule


def provision(session: Any, names: dict[tuple[str, str], str], spec: PlatformSpec = SPEC) -> dict[str, str]:
    """Create everything; returns the queue URLs by logical name."""
    iam = session.client("iam")
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "sts:AssumeRole"}],
    }
    iam.create_role(RoleName=names[("role", "data")].rsplit("/", 1)[1], AssumeRolePolicyDocument=json.dumps(trust))
    kms = session.client("kms")
    key_id = kms.create_key(Description="CityShare embedded stack: platform and departments' data")["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName=names[("key", "platform")], TargetKeyId=key_id)
    seal_key = kms.create_key(
        Description="CityShare embedded stack: audit seals", KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY"
    )["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName=names[("key", "audit-seal")], TargetKeyId=seal_key)
    dynamodb = session.client("dynamodb")
    for table in spec.tables:
        create_table(dynamodb, table, names[("table", table.name)])
    sqs = session.client("sqs")
    queue_urls: dict[str, str] = {}
    queue_arns: dict[str, str] = {}
    for queue in spec.queues:
        name = names[("queue", queue.name)]
        dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(queue.max_receive_count)})
        url = sqs.create_queue(
            QueueName=name,
            Attributes={"VisibilityTimeout": str(queue.visibility_timeout_seconds), "RedrivePolicy": redrive},
        )["QueueUrl"]
        queue_urls[queue.name] = url
        queue_arns[queue.name] = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3 = session.client("s3")
    for bucket in spec.buckets:
        bucket_name = names[("bucket", bucket.name)]
        s3.create_bucket(
            Bucket=bucket_name,
            CreateBucketConfiguration={"LocationConstraint": REGION},
            ObjectLockEnabledForBucket=bucket.object_lock,
        )
        s3.put_bucket_versioning(Bucket=bucket_name, VersioningConfiguration={"Status": "Enabled"})
        if bucket.object_lock:
            s3.put_object_lock_configuration(
                Bucket=bucket_name,
                ObjectLockConfiguration={
                    "ObjectLockEnabled": "Enabled",
                    "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": LOCAL_RETENTION_DAYS}},
                },
            )
        if bucket.expiries:
            # Recorded as in AWS; moto does not run lifecycle rules (the views sweep does run here).
            s3.put_bucket_lifecycle_configuration(
                Bucket=bucket_name, LifecycleConfiguration={"Rules": [_lifecycle_rule(e) for e in bucket.expiries]}
            )
        if bucket.notify:
            s3.put_bucket_notification_configuration(
                Bucket=bucket_name,
                NotificationConfiguration={
                    "QueueConfigurations": [
                        {
                            "QueueArn": queue_arns[queue],
                            "Events": ["s3:ObjectCreated:*"],
                            "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": prefix}]}},
                        }
                        for prefix, queue in bucket.notify.items()
                    ]
                },
            )
    session.client("glue").create_database(DatabaseInput={"Name": names[("catalog", spec.query_catalog)]})
    sns = session.client("sns")
    for topic in spec.topics:
        sns.create_topic(Name=names[("topic", topic)].rsplit(":", 1)[1])
    events = session.client("events")
    bus = names[("bus", spec.event_bus)]
    events.create_event_bus(Name=bus)
    for rule in spec.rules:
        events.put_rule(Name=rule.name, EventBusName=bus, EventPattern=json.dumps({"detail-type": list(rule.detail_types)}))
        events.put_targets(
            Rule=rule.name, EventBusName=bus, Targets=[{"Id": rule.target_queue, "Arn": queue_arns[rule.target_queue]}]
        )
    return queue_urls


def queue_urls(session: Any, names: dict[tuple[str, str], str], spec: PlatformSpec = SPEC) -> dict[str, str]:
    """The queue URLs of a stack provisioned before (its state restored), by logical name."""
    sqs = session.client("sqs")
    return {queue.name: sqs.get_queue_url(QueueName=names[("queue", queue.name)])["QueueUrl"] for queue in spec.queues}
