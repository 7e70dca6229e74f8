"""What the platform team watches: alarms delivered to the addresses of cdk.json (`alarmEmails` of
the stage) through a topic CloudWatch may publish to (its key, the operations key, lets it), and one
dashboard: the API (requests, 4xx, 5xx, latency), every function (errors, throttles, duration), the
dead-letter queues, ingest lag, audit write failures, refusals (4xx), firewall blocks and KMS key
events (a key disabled, scheduled for deletion, re-aliased, its policy replaced, or deleted), and per
department (Powertools metrics of functions/core/observability.py, found by SEARCH so department #500
appears without a deploy)."""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

NAMESPACE = "CityShare"  # functions/core/observability.py METRICS_NAMESPACE
INGEST_LAG_ALARM_SECONDS = 900
# Refusals and firewall blocks in 5 minutes above what honest use makes (a client whose clock or key
# is wrong retries a few times a minute): someone probing, or a client broken for everyone.
CLIENT_ERRORS_ALARM = 200
FIREWALL_BLOCKS_ALARM = 100
FIVE_MINUTES = Duration.minutes(5)
# Calls that would make a department's data unreadable, or hand its key to someone else. Refused
# attempts are told too (CloudTrail records them with their errorCode): someone tried.
KEY_EVENTS = ("DisableKey", "ScheduleKeyDeletion", "PutKeyPolicy", "DeleteAlias", "UpdateAlias", "DeleteImportedKeyMaterial")


def _per_department(metric: str, statistic: str, label: str) -> cloudwatch.MathExpression:
    return cloudwatch.MathExpression(
        expression=f"SEARCH('{{{NAMESPACE},department}} MetricName=\"{metric}\"', '{statistic}', 300)",
        using_metrics={},
        label=label,
        period=FIVE_MINUTES,
    )


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        stage: str,
        key: kms.IKey,
        alarm_emails: list[str],
        dead_letter_queues: dict[str, sqs.Queue],
        ingest_queue: sqs.Queue,
        functions: dict[str, lambda_.Function],
        api: apigw.RestApi,
        undelivered: sqs.IQueue,
        web_acl_name: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(self, "Alarms", master_key=key, enforce_ssl=True, display_name=f"CityShare {stage} alarms")
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsPublish",
                actions=["sns:Publish"],
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                resources=[self.topic.topic_arn],
            )
        )
        for email in alarm_emails:
            self.topic.add_subscription(subscriptions.EmailSubscription(email, dead_letter_queue=undelivered))

        audit_failures = cloudwatch.Metric(
            namespace=NAMESPACE, metric_name="AuditWriteFailures", statistic="Sum", period=FIVE_MINUTES
        )
        ingest_age = ingest_queue.metric_approximate_age_of_oldest_message(period=FIVE_MINUTES, statistic="Maximum")
        watched: list[tuple[str, cloudwatch.Metric, float, str]] = [
            (
                f"DeadLetters-{name}",
                queue.metric_approximate_number_of_messages_visible(period=FIVE_MINUTES, statistic="Maximum"),
                1,
                f"Messages of {name} failed and wait in its dead-letter queue (redrive after the fix)",
            )
            for name, queue in dead_letter_queues.items()
        ]
        for name, function in functions.items():
            watched.append((f"Errors-{name}", function.metric_errors(period=FIVE_MINUTES), 1, f"Function {name} raised errors"))
            watched.append(
                (f"Throttles-{name}", function.metric_throttles(period=FIVE_MINUTES), 1, f"Function {name} was throttled")
            )
        watched += [
            ("Api5xx", api.metric_server_error(period=FIVE_MINUTES), 5, "The API answered 5xx"),
            ("ApiLatency", api.metric_latency(period=FIVE_MINUTES, statistic="p99"), 10_000, "The API's p99 latency passed 10 s"),
            ("IngestLag", ingest_age, INGEST_LAG_ALARM_SECONDS, "An upload has waited over 15 minutes to be ingested"),
            ("AuditWriteFailures", audit_failures, 1, "Audit entries could not be written: decisions may be unrecorded"),
            (
                "AuditTampered",
                cloudwatch.Metric(namespace=NAMESPACE, metric_name="AuditTampered", statistic="Sum", period=FIVE_MINUTES),
                1,
                "The sealer found an audit chain rewritten below its last seal, or not linking to it: the chain is "
                "no longer sealed; its archive (Object Lock) holds the entries as they were",
            ),
            (
                "ApiClientErrors",
                api.metric_client_error(period=FIVE_MINUTES),
                CLIENT_ERRORS_ALARM,
                "Over 200 requests in 5 minutes were refused (401 unauthenticated, 403 forbidden, 429 throttled...): "
                "a broken client, or someone trying keys; the platform audit chain names them",
            ),
            (
                "FirewallBlocks",
                cloudwatch.Metric(
                    namespace="AWS/WAFV2",
                    metric_name="BlockedRequests",
                    dimensions_map={"WebACL": web_acl_name, "Rule": "ALL", "Region": Stack.of(self).region},
                    statistic="Sum",
                    period=FIVE_MINUTES,
                ),
                FIREWALL_BLOCKS_ALARM,
                "The firewall blocked over 100 requests in 5 minutes (a flood from one address, known bad inputs "
                "or addresses): its log group says which rule and from where",
            ),
        ]
        self.alarms = [
            metric.create_alarm(
                self,
                alarm_id,
                threshold=threshold,
                evaluation_periods=1,
                alarm_description=description,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
            for alarm_id, metric, threshold, description in watched
        ]
        for alarm in self.alarms:
            alarm.add_alarm_action(actions.SnsAction(self.topic))

        def graph(title: str, metrics: list[cloudwatch.IMetric], width: int = 8) -> cloudwatch.GraphWidget:
            return cloudwatch.GraphWidget(title=title, left=metrics, width=width)

        self.dashboard = cloudwatch.Dashboard(
            self,
            "Dashboard",
            dashboard_name=f"cityshare-{stage}",
            widgets=[
                [
                    graph("API requests, 4xx, 5xx", [api.metric_count(), api.metric_client_error(), api.metric_server_error()]),
                    graph(
                        "API latency p50 / p99 (ms)", [api.metric_latency(statistic="p50"), api.metric_latency(statistic="p99")]
                    ),
                    cloudwatch.AlarmStatusWidget(title="Alarms", alarms=self.alarms, width=8),
                ],
                [
                    graph("Function errors", [f.metric_errors(label=n) for n, f in functions.items()]),
                    graph("Function throttles", [f.metric_throttles(label=n) for n, f in functions.items()]),
                    graph(
                        "Function duration p99 (ms)", [f.metric_duration(statistic="p99", label=n) for n, f in functions.items()]
                    ),
                ],
                [
                    graph(
                        "Dead-letter queues",
                        [q.metric_approximate_number_of_messages_visible(label=n) for n, q in dead_letter_queues.items()],
                    ),
                    graph("Ingest: oldest waiting upload (s)", [ingest_age]),
                    graph("Audit write failures", [audit_failures]),
                ],
                [
                    graph("Requests per department", [_per_department("Requests", "Sum", "")]),
                    graph("Refusals (403) per department", [_per_department("Refusals", "Sum", "")]),
                    graph("Ingest lag per department (s, max)", [_per_department("IngestLag", "Maximum", "")]),
                ],
                [
                    graph("Uploads published per department", [_per_department("UploadsPublished", "Sum", "")], width=12),
                    graph(
                        "Uploads rejected / failed per department",
                        [_per_department("UploadsRejected", "Sum", ""), _per_department("UploadsFailed", "Sum", "")],
                        width=12,
                    ),
                ],
            ],
        )
        self.key_rules = self._key_events(stage, undelivered)

    def _key_events(self, stage: str, undelivered: sqs.IQueue) -> list[events.Rule]:
        """KMS calls on keys (CloudTrail's events on the default bus: the account needs a trail that
        logs management events, as an organisation's usually does) and a key's deletion completed
        (KMS's own event), to the alarms topic. Its key lets EventBridge publish (keys.py)."""
        patterns = {
            "KeyCalls": events.EventPattern(
                source=["aws.kms"],
                detail_type=["AWS API Call via CloudTrail"],
                detail={"eventSource": ["kms.amazonaws.com"], "eventName": list(KEY_EVENTS)},
            ),
            "KeyDeleted": events.EventPattern(source=["aws.kms"], detail_type=["KMS CMK Deletion"]),
        }
        return [
            events.Rule(
                self,
                rule_id,
                description=f"CityShare {stage}: a KMS key disabled, scheduled for deletion, re-aliased or its policy replaced",
                event_pattern=pattern,
                targets=[targets.SnsTopic(self.topic, dead_letter_queue=undelivered, retry_attempts=8)],
            )
            for rule_id, pattern in patterns.items()
        ]
