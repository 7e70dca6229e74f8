"""Alarms the platform team watches: messages in any dead-letter queue, API 5xx, function errors."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        key: kms.IKey,
        dead_letter_queues: dict[str, sqs.Queue],
        functions: dict[str, lambda_.Function],
        api: apigw.RestApi,
        alarm_email: str | None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(self, "Alarms", master_key=key, enforce_ssl=True)
        if alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(alarm_email))
        five_minutes = Duration.minutes(5)
        watched: list[tuple[str, cloudwatch.Metric, int, str]] = [
            (
                f"DeadLetters-{name}",
                queue.metric_approximate_number_of_messages_visible(period=five_minutes),
                1,
                f"Messages of {name} failed repeatedly and wait in its dead-letter queue",
            )
            for name, queue in dead_letter_queues.items()
        ]
        watched += [
            (f"Errors-{name}", function.metric_errors(period=five_minutes), 1, f"Function {name} raised errors")
            for name, function in functions.items()
        ]
        watched.append(("Api5xx", api.metric_server_error(period=five_minutes), 5, "The API answered 5xx"))
        alarms = [
            metric.create_alarm(self, alarm_id, threshold=threshold, evaluation_periods=1, alarm_description=description)
            for alarm_id, metric, threshold, description in watched
        ]
        for alarm in alarms:
            alarm.add_alarm_action(actions.SnsAction(self.topic))
