"""The data bucket (landing, curated, vault, quarantine, views, Athena results) and its access-log
bucket. Both are retained in every stage: versions cannot be deleted (bucket policy), so
CloudFormation could not empty them anyway, and a city's data outlives a stack."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.cloud.permissions import archive_bucket_statements, data_bucket_statements
from infra.spec import BucketSpec, ExpirySpec


def logged_private_bucket(
    scope: Construct,
    construct_id: str,
    access_logs: s3.IBucket,
    log_prefix: str,
    lifecycle_rules: list[s3.LifecycleRule],
    object_ownership: s3.ObjectOwnership = s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
) -> s3.Bucket:
    """A retained, versioned, TLS-only SSE-S3 bucket with no public access, its requests logged to `access_logs`."""
    return s3.Bucket(
        scope,
        construct_id,
        encryption=s3.BucketEncryption.S3_MANAGED,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        enforce_ssl=True,
        versioned=True,
        object_ownership=object_ownership,
        server_access_logs_bucket=access_logs,
        server_access_logs_prefix=log_prefix,
        lifecycle_rules=lifecycle_rules,
        removal_policy=RemovalPolicy.RETAIN,
    )


def _expiry_rule(expiry: ExpirySpec) -> s3.LifecycleRule:
    return s3.LifecycleRule(
        prefix=expiry.prefix,
        tag_filters=dict([expiry.tag]) if expiry.tag else None,
        expiration=Duration.days(expiry.days),
        noncurrent_version_expiration=Duration.days(expiry.noncurrent_days) if expiry.noncurrent_days else None,
    )


class Storage(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        buckets: tuple[BucketSpec, ...],
        key: kms.IKey,
        query_role_arn: str,
        noncurrent_days: int,
        archive_retention_days: int = 1,
        archive_writer_arn: str = "",
    ) -> None:
        super().__init__(scope, construct_id)
        # S3 server access logs can only be delivered to SSE-S3 buckets.
        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=True,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(400), noncurrent_version_expiration=Duration.days(30))],
            removal_policy=RemovalPolicy.RETAIN,
        )
        # Buckets are kept when the stack goes (RETAIN, in every stage): no one may delete versions.
        self.buckets: dict[str, s3.Bucket] = {}
        for spec in buckets:
            bucket = self._bucket(spec, key, noncurrent_days, archive_retention_days)
            if spec.object_lock:
                statements = archive_bucket_statements(bucket, archive_writer_arn)
            else:
                statements = data_bucket_statements(bucket, query_role_arn)
            for statement in statements:
                bucket.add_to_resource_policy(statement)
            self.buckets[spec.name] = bucket

    def _bucket(self, spec: BucketSpec, key: kms.IKey, noncurrent_days: int, retention_days: int) -> s3.Bucket:
        """A retained, versioned, TLS-only SSE-KMS bucket with no public access, its requests logged.
        Under Object Lock (compliance mode), every object version is kept `retention_days` from
        everyone, the account's root included, so no lifecycle rule expires versions there."""
        locked = spec.object_lock
        return s3.Bucket(
            self,
            f"Bucket-{spec.name}",
            encryption=s3.BucketEncryption.KMS,
            encryption_key=key,
            bucket_key_enabled=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            object_lock_enabled=locked or None,
            object_lock_default_retention=s3.ObjectLockRetention.compliance(Duration.days(retention_days)) if locked else None,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix=f"{spec.name}/",
            lifecycle_rules=[
                s3.LifecycleRule(abort_incomplete_multipart_upload_after=Duration.days(2)),
                *(() if locked else (s3.LifecycleRule(noncurrent_version_expiration=Duration.days(noncurrent_days)),)),
                *(_expiry_rule(expiry) for expiry in spec.expiries),
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )
