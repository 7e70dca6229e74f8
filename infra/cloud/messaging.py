"""SQS queues with dead-letter queues, the EventBridge bus and the rules that feed the queues, and
the SNS topics functions publish to (departments subscribe with a filter policy on `department`)."""

from __future__ import annotations

import json

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.spec import BucketSpec, QueueSpec, RuleSpec


class Messaging(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        queues: tuple[QueueSpec, ...],
        bus_name: str,
        rules: tuple[RuleSpec, ...],
        stage: str,
        topics: tuple[str, ...],
        topic_key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        self.dead_letter_queues: dict[str, sqs.Queue] = {}
        self.queues: dict[str, sqs.Queue] = {}
        for spec in queues:
            # SQS-managed encryption: a KMS key shared with the bucket that notifies the queue
            # would make a circular dependency, and S3 cannot use the default SQS KMS key.
            dead_letters = sqs.Queue(
                self,
                f"DeadLetters-{spec.name}",
                encryption=sqs.QueueEncryption.SQS_MANAGED,
                enforce_ssl=True,
                retention_period=Duration.days(14),
            )
            self.dead_letter_queues[spec.name] = dead_letters
            self.queues[spec.name] = sqs.Queue(
                self,
                f"Queue-{spec.name}",
                encryption=sqs.QueueEncryption.SQS_MANAGED,
                enforce_ssl=True,
                visibility_timeout=Duration.seconds(spec.visibility_timeout_seconds),
                retention_period=Duration.days(4),
                dead_letter_queue=sqs.DeadLetterQueue(max_receive_count=spec.max_receive_count, queue=dead_letters),
            )
        # What EventBridge could not deliver (to a queue or a scheduled function) after its retries.
        self.undelivered = sqs.Queue(
            self, "Undelivered", encryption=sqs.QueueEncryption.SQS_MANAGED, enforce_ssl=True, retention_period=Duration.days(14)
        )
        self.dead_letter_queues["undelivered-events"] = self.undelivered
        self.topics = {
            name: sns.Topic(self, f"Topic-{name}", master_key=topic_key, enforce_ssl=True, display_name=f"CityShare {name}")
            for name in topics
        }
        self.bus = events.EventBus(self, "Bus", event_bus_name=f"cityshare-{stage}-{bus_name}")
        for rule in rules:
            events.Rule(
                self,
                f"Rule-{rule.name}",
                event_bus=self.bus,
                event_pattern=events.EventPattern(detail_type=list(rule.detail_types)),
                targets=[targets.SqsQueue(self.queues[rule.target_queue], dead_letter_queue=self.undelivered, retry_attempts=8)],
                description=json.dumps({"routes": list(rule.detail_types), "to": rule.target_queue}),
            )

    def notify(self, bucket: s3.Bucket, spec: BucketSpec) -> None:
        for prefix, queue in spec.notify.items():
            bucket.add_event_notification(
                s3.EventType.OBJECT_CREATED, s3n.SqsDestination(self.queues[queue]), s3.NotificationKeyFilter(prefix=prefix)
            )
