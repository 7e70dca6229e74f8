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
        alarms: list[cloudwatch.Alarm] = []
        for name, queue in dead_letter_queues.items():
            alarms.append(
                queue.metric_approximate_number_of_messages_visible(period=Duration.minutes(5)).create_alarm(
                    self,
                    f"DeadLetters-{name}",
                    threshold=1,
                    evaluation_periods=1,
                    alarm_description=f"Messages of {name} failed repeatedly and wait in its dead-letter queue",
                )
            )
        for name, function in functions.items():
            alarms.append(
                function.metric_errors(period=Duration.minutes(5)).create_alarm(
                    self,
                    f"Errors-{name}",
                    threshold=1,
                    evaluation_periods=1,
                    alarm_description=f"Function {name} raised errors",
                )
            )
        alarms.append(
            api.metric_server_error(period=Duration.minutes(5)).create_alarm(
                self, "Api5xx", threshold=5, evaluation_periods=1, alarm_description="The API answered 5xx"
            )
        )
        for alarm in alarms:
            alarm.add_alarm_action(actions.SnsAction(self.topic))
