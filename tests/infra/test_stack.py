"""The synthesised template has the security properties CityShare promises, one concern a test."""

from __future__ import annotations

import json
import re
from typing import Any

from aws_cdk.assertions import Match, Template
from cdk_nag import AwsSolutionsChecks

from functions.core.events import EVENT_TYPES
from functions.core.settings import required_environment_names
from infra.spec import SPEC
from tests.infra.conftest import Synthesised, of_type

Resources = dict[str, dict[str, Any]]


def test_cdk_nag_aws_solutions_passes(synthesised: Synthesised) -> None:
    report = AwsSolutionsChecks().validate_scope(synthesised.stack)
    assert report.success, [v.rule_name for v in report.violations]


def test_every_acknowledged_finding_has_a_written_reason(resources: Resources) -> None:
    acknowledged = [
        rule
        for resource in resources.values()
        for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])
    ]
    assert acknowledged
    assert all(len(rule["reason"]) > 30 for rule in acknowledged), acknowledged


def test_one_rotating_kms_key_per_department_and_one_for_the_platform(synthesised: Synthesised, resources: Resources) -> None:
    keys = of_type(resources, "AWS::KMS::Key")
    assert len(keys) == len(synthesised.context["cityshare"]["departments"]) + 1
    assert all(key["Properties"]["EnableKeyRotation"] for key in keys.values())
    aliases = {a["Properties"]["AliasName"] for a in of_type(resources, "AWS::KMS::Alias").values()}
    assert {f"alias/cityshare/prod/{d}" for d in synthesised.context["cityshare"]["departments"]} <= aliases


def test_data_bucket_is_encrypted_private_versioned_logged_and_tls_only(template: Template, resources: Resources) -> None:
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    {
                        "ServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": Match.any_value()},
                        "BucketKeyEnabled": True,
                    }
                ]
            },
            "VersioningConfiguration": {"Status": "Enabled"},
            "LoggingConfiguration": Match.object_like({"DestinationBucketName": Match.any_value()}),
            "LifecycleConfiguration": {
                "Rules": Match.array_with([Match.object_like({"AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 2}})])
            },
        },
    )
    for bucket in of_type(resources, "AWS::S3::Bucket").values():
        assert bucket["Properties"]["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }
    policies = of_type(resources, "AWS::S3::BucketPolicy")
    assert len(policies) == len(of_type(resources, "AWS::S3::Bucket"))
    for policy in policies.values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        assert any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in statements)


def test_tables_are_on_demand_with_pitr_and_customer_managed_keys(resources: Resources) -> None:
    tables = of_type(resources, "AWS::DynamoDB::GlobalTable")
    assert len(tables) == len(SPEC.tables)
    for table in tables.values():
        properties = table["Properties"]
        assert properties["BillingMode"] == "PAY_PER_REQUEST"
        assert properties["SSESpecification"] == {"SSEEnabled": True, "SSEType": "KMS"}
        replica = properties["Replicas"][0]
        assert replica["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
        assert "KMSMasterKeyId" in replica["SSESpecification"]
        assert replica["DeletionProtectionEnabled"] is True
    nonces = [t for t in tables.values() if t["Properties"]["KeySchema"][0]["AttributeName"] == "nonce"]
    assert nonces[0]["Properties"]["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}


def test_functions_are_arm64_python_with_json_logs_tracing_and_retention(resources: Resources) -> None:
    functions = {name: f for name, f in of_type(resources, "AWS::Lambda::Function").items() if "Functions" in name}
    assert len(functions) == len(SPEC.functions)
    for function in functions.values():
        properties = function["Properties"]
        assert properties["Runtime"] in {"python3.12", "python3.13"}
        assert properties["Architectures"] == ["arm64"]
        assert properties["TracingConfig"] == {"Mode": "Active"}
        assert properties["LoggingConfig"]["LogFormat"] == "JSON"
        assert 1 <= len(properties["Layers"]) <= 2
        assert required_environment_names() <= set(properties["Environment"]["Variables"])
    log_groups = of_type(resources, "AWS::Logs::LogGroup")
    assert all("RetentionInDays" in group["Properties"] for group in log_groups.values())


def test_every_route_of_the_spec_is_a_method_behind_the_request_authorizer(resources: Resources) -> None:
    authorizers = of_type(resources, "AWS::ApiGateway::Authorizer")
    assert len(authorizers) == 1
    authorizer = next(iter(authorizers.values()))["Properties"]
    assert authorizer["Type"] == "REQUEST"
    assert authorizer["AuthorizerResultTtlInSeconds"] == 0  # single-use tokens: nothing cached
    methods = of_type(resources, "AWS::ApiGateway::Method")
    paths = {r.path for r in SPEC.routes}
    # Each route, and ANY on each of its paths (other methods reach the function, which answers 405).
    assert len(methods) == len(SPEC.routes) + len(paths)
    assert {m["Properties"]["HttpMethod"] for m in methods.values()} == {r.method for r in SPEC.routes} | {"ANY"}
    for method in methods.values():
        assert method["Properties"]["AuthorizationType"] == "CUSTOM"
        assert "RequestValidatorId" in method["Properties"]


def test_api_stage_logs_traces_and_throttles(synthesised: Synthesised, template: Template) -> None:
    limits = synthesised.context["cityshare"]
    template.has_resource_properties(
        "AWS::ApiGateway::Stage",
        {
            "AccessLogSetting": Match.object_like({"DestinationArn": Match.any_value()}),
            "TracingEnabled": True,
            "MethodSettings": Match.array_with(
                [
                    Match.object_like(
                        {
                            "LoggingLevel": "ERROR",
                            "ThrottlingRateLimit": limits["rateLimit"],
                            "ThrottlingBurstLimit": limits["burstLimit"],
                        }
                    )
                ]
            ),
        },
    )


def test_gateway_errors_are_problem_json(resources: Resources) -> None:
    responses = of_type(resources, "AWS::ApiGateway::GatewayResponse")
    by_type = {r["Properties"]["ResponseType"]: r["Properties"] for r in responses.values()}
    assert {"UNAUTHORIZED", "ACCESS_DENIED", "MISSING_AUTHENTICATION_TOKEN", "THROTTLED", "DEFAULT_4XX", "DEFAULT_5XX"} <= set(
        by_type
    )
    for properties in by_type.values():
        assert properties["ResponseParameters"]["gatewayresponse.header.Content-Type"] == "'application/problem+json'"
        body = properties["ResponseTemplates"]["application/json"]
        assert json.loads(body)["code"]
    assert by_type["UNAUTHORIZED"]["StatusCode"] == "401"


def test_queues_have_dead_letter_queues_and_are_encrypted_and_tls_only(resources: Resources) -> None:
    queues = of_type(resources, "AWS::SQS::Queue")
    assert len(queues) == 2 * len(SPEC.queues)
    consumers = [q for q in queues.values() if "RedrivePolicy" in q["Properties"]]
    assert len(consumers) == len(SPEC.queues)
    assert all(q["Properties"]["SqsManagedSseEnabled"] for q in queues.values())
    for policy in of_type(resources, "AWS::SQS::QueuePolicy").values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        assert any(s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}} for s in statements)


def test_event_bus_routes_platform_events_to_their_queue(resources: Resources) -> None:
    assert len(of_type(resources, "AWS::Events::EventBus")) == 1
    rules = of_type(resources, "AWS::Events::Rule")
    routing = [r for r in rules.values() if "EventPattern" in r["Properties"]]
    scheduled = [r for r in rules.values() if "ScheduleExpression" in r["Properties"]]
    assert len(routing) == len(SPEC.rules) and len(scheduled) == len(SPEC.schedules)
    assert set(routing[0]["Properties"]["EventPattern"]["detail-type"]) == {t.detail_type() for t in EVENT_TYPES}
    assert scheduled[0]["Properties"]["ScheduleExpression"] == "rate(1 minute)"
    assert json.loads(scheduled[0]["Properties"]["Targets"][0]["Input"]) == {"cityshare-schedule": "outbox"}


def test_landing_uploads_notify_the_ingest_queue(resources: Resources) -> None:
    notifications = of_type(resources, "Custom::S3BucketNotifications")
    configuration = next(iter(notifications.values()))["Properties"]["NotificationConfiguration"]["QueueConfigurations"][0]
    assert configuration["Events"] == ["s3:ObjectCreated:*"]
    assert configuration["Filter"]["Key"]["FilterRules"] == [{"Name": "prefix", "Value": "landing/"}]


def test_the_function_asset_holds_only_the_code_and_the_policies(synthesised: Synthesised) -> None:
    code_dir = synthesised.outdir.parent / "function-code"
    assert sorted(p.name for p in code_dir.iterdir()) == ["functions", "policies"]
    assert (code_dir / "policies" / "base.cedar").exists()
    assert not list(code_dir.rglob("__pycache__"))


def test_the_ingest_function_consumes_its_queue_with_partial_batch_failures(resources: Resources) -> None:
    mappings = of_type(resources, "AWS::Lambda::EventSourceMapping")
    assert len(mappings) == len([q for q in SPEC.queues if q.consumer])
    assert all(m["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"] for m in mappings.values())
    assert sorted(m["Properties"]["BatchSize"] for m in mappings.values()) == sorted(
        q.batch_size for q in SPEC.queues if q.consumer
    )
    ingest = [f for name, f in of_type(resources, "AWS::Lambda::Function").items() if "Functioningest" in name]
    assert ingest[0]["Properties"]["EphemeralStorage"] == {"Size": 10240}
    assert ingest[0]["Properties"]["Timeout"] < next(
        q["Properties"]["VisibilityTimeout"]
        for q in of_type(resources, "AWS::SQS::Queue").values()
        if "RedrivePolicy" in q["Properties"]
    )


def test_functions_that_protect_data_may_use_the_departments_keys(synthesised: Synthesised, resources: Resources) -> None:
    policies = [p["Properties"] for p in of_type(resources, "AWS::IAM::Policy").values()]
    ingest_policy = next(p for p in policies if "ingest" in json.dumps(p["Roles"]).lower())
    statements = json.dumps(ingest_policy["PolicyDocument"]["Statement"])
    assert "kms:GenerateDataKey" in statements and "kms:Decrypt" in statements
    department_keys = [name for name in of_type(resources, "AWS::KMS::Key") if "Department" in name]
    assert all(name in statements for name in department_keys)


def test_notifications_topic_is_kms_encrypted_tls_only_and_only_triggers_publish(resources: Resources) -> None:
    topics = of_type(resources, "AWS::SNS::Topic")
    notifications = [t for name, t in topics.items() if "Topicnotifications" in name]
    assert len(notifications) == 1 and "KmsMasterKeyId" in notifications[0]["Properties"]
    topic_policies = json.dumps(of_type(resources, "AWS::SNS::TopicPolicy"))
    assert '"aws:SecureTransport": "false"' in topic_policies
    publishers = [
        json.dumps(p["Properties"]["Roles"]).lower()
        for p in of_type(resources, "AWS::IAM::Policy").values()
        if "sns:Publish" in json.dumps(p["Properties"]["PolicyDocument"]) and "Topicnotifications" in json.dumps(p)
    ]
    assert len(publishers) == 1 and "triggers" in publishers[0]


def test_athena_results_are_kms_encrypted_and_only_the_right_functions_touch_glue_and_athena(resources: Resources) -> None:
    (workgroup,) = of_type(resources, "AWS::Athena::WorkGroup").values()
    configuration = workgroup["Properties"]["WorkGroupConfiguration"]
    assert configuration["EnforceWorkGroupConfiguration"] is True
    assert configuration["ResultConfiguration"]["EncryptionConfiguration"]["EncryptionOption"] == "SSE_KMS"
    assert configuration["BytesScannedCutoffPerQuery"] > 0
    assert len(of_type(resources, "AWS::Glue::Database")) == 1
    policies = [p["Properties"] for p in of_type(resources, "AWS::IAM::Policy").values()]

    def holders(action: str) -> set[str]:
        return {
            re.sub(r"^FunctionsFunction(\w+?)ServiceRole.*$", r"\1", role["Ref"])
            for p in policies
            if action in json.dumps(p["PolicyDocument"])
            for role in p["Roles"]
        }

    assert holders("glue:CreateTable") == {"ingest"}
    assert holders("athena:StartQueryExecution") == {"triggers"}
