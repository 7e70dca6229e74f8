"""The synthesised template has the security properties CityShare promises, one concern a test."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from aws_cdk.assertions import Match, Template

from app import NAG_PACKS
from functions.core.events import EVENT_TYPES
from functions.core.settings import required_environment_names
from infra.request_models import BODY_MODEL, MODEL_NAME, json_body_routes
from infra.spec import AUTHORIZER_CACHE_SECONDS, PUBLIC, SPEC
from tests.infra.conftest import Synthesised, of_type

Resources = dict[str, dict[str, Any]]


PACKS = NAG_PACKS


def test_cdk_nag_aws_solutions_nist_serverless_hipaa_and_pci_packs_pass(synthesised: Synthesised) -> None:
    for pack in PACKS:
        report = pack().validate_scope(synthesised.stack)
        assert report.success, (pack.__name__, [v.rule_name for v in report.violations])


def _acknowledged(resources: Resources) -> dict[tuple[str, str], str]:
    return {
        (logical_id, rule["id"]): rule["reason"]
        for logical_id, resource in resources.items()
        for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])
    }


def test_every_acknowledgement_has_a_reason_and_answers_a_finding_on_its_own_resource(
    resources: Resources, unacknowledged_findings: set[tuple[str, str]]
) -> None:
    acknowledged = _acknowledged(resources)
    assert acknowledged
    assert all(len(reason) > 40 for reason in acknowledged.values()), acknowledged
    found = unacknowledged_findings
    stale = sorted(set(acknowledged) - found)
    assert not stale, stale
    assert found <= set(acknowledged)


def test_no_department_in_the_template_only_the_platform_operations_and_seal_keys(
    synthesised: Synthesised, resources: Resources
) -> None:
    keys = of_type(resources, "AWS::KMS::Key")
    assert len(keys) == 3
    symmetric = [k for k in keys.values() if k["Properties"].get("KeySpec", "SYMMETRIC_DEFAULT") == "SYMMETRIC_DEFAULT"]
    assert len(symmetric) == 2 and all(key["Properties"]["EnableKeyRotation"] for key in symmetric)
    (seal,) = [k["Properties"] for k in keys.values() if k not in symmetric]  # KMS rotates no asymmetric key
    assert (seal["KeySpec"], seal["KeyUsage"]) == ("ECC_NIST_P256", "SIGN_VERIFY")
    aliases = {a["Properties"]["AliasName"] for a in of_type(resources, "AWS::KMS::Alias").values()}
    assert aliases == {"alias/cityshare/prod/platform", "alias/cityshare/prod/operations", "alias/cityshare/prod/audit-seal"}
    text = json.dumps(resources)
    for department in ("transport", "environment", "health", "public-safety", "logistics", "city-management"):
        assert f'"{department}"' not in text
    for function in of_type(resources, "AWS::Lambda::Function").values():
        variables = function["Properties"].get("Environment", {}).get("Variables", {})
        assert "DEPARTMENT_KEYS" not in variables
        assert len(json.dumps(variables)) < 2048  # Lambda allows 4 KB; nothing here grows with departments


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
    assert all("KmsKeyId" in group["Properties"] for group in log_groups.values())


def test_every_route_of_the_spec_is_a_method_behind_its_authorizer(resources: Resources) -> None:
    authorizers = of_type(resources, "AWS::ApiGateway::Authorizer")
    # Signed requests, and Delta Sharing recipients' bearer tokens; the open-data catalog has none.
    named = {SPEC.authorizer, *(r.authorizer for r in SPEC.routes if r.authorizer and r.authorizer != PUBLIC)}
    assert len(authorizers) == len(named) == 2
    kept = sorted(authorizer["Properties"]["AuthorizerResultTtlInSeconds"] for authorizer in authorizers.values())
    assert all(authorizer["Properties"]["Type"] == "REQUEST" for authorizer in authorizers.values())
    # Signed requests: never kept (single-use tokens). Recipients: kept, the function confirming the
    # token and its department on every request (functions/sharing/delta.RecipientLookup).
    assert kept == [0, AUTHORIZER_CACHE_SECONDS["recipient-authorizer"]]
    all_methods = of_type(resources, "AWS::ApiGateway::Method")
    # CORS preflights for the console are checked in test_console_hosting.py.
    methods = {name: m for name, m in all_methods.items() if m["Properties"]["HttpMethod"] != "OPTIONS"}
    paths = {r.path for r in SPEC.routes}
    # Each route, and ANY on each of its paths (other methods reach the function, which answers 405).
    assert len(methods) == len(SPEC.routes) + len(paths)
    assert {m["Properties"]["HttpMethod"] for m in methods.values()} == {r.method for r in SPEC.routes} | {"ANY"}
    public_paths = {r.path.strip("/") for r in SPEC.routes if r.authorizer == PUBLIC}
    for method in methods.values():
        properties = method["Properties"]
        assert "RequestValidatorId" in properties
        if properties["AuthorizationType"] == "NONE":  # only the public catalog, and it takes no API key
            assert properties.get("ApiKeyRequired") is not True
            continue
        assert properties["AuthorizationType"] == "CUSTOM"
        assert properties["ApiKeyRequired"] is True  # the department's key, named by the authorizer
    unauthenticated = [m for m in methods.values() if m["Properties"]["AuthorizationType"] == "NONE"]
    assert len(unauthenticated) == 2 * len(public_paths) == 2  # GET and ANY on /catalog/dcat


def test_one_invoke_permission_per_function_scoped_to_this_api_and_room_to_grow(resources: Resources) -> None:
    """One permission per function for this API's stage (and one per authorizer), not one per method."""
    permissions = [r["Properties"] for r in of_type(resources, "AWS::Lambda::Permission").values()]
    from_api = [p for p in permissions if p["Principal"] == "apigateway.amazonaws.com"]
    routed = {route.function for route in SPEC.routes}
    authorizers = {SPEC.authorizer, *(r.authorizer for r in SPEC.routes if r.authorizer and r.authorizer != PUBLIC)}
    assert len(from_api) == len(routed) + len(authorizers)
    invoked = [json.dumps(p["FunctionName"]) for p in from_api]
    assert len(set(invoked)) == len(invoked)  # one each
    for permission in from_api:
        source = json.dumps(permission["SourceArn"])
        assert source.startswith('{"Fn::Join": ["", ["arn:aws:execute-api:eu-west-1:"') and '"Ref": "Api' in source
    # CloudFormation allows 500 resources per stack: keep room (75) for the routes to come.
    assert len(resources) <= 425, len(resources)


def test_gateway_errors_are_problem_json_and_delta_sharing_errors(resources: Resources) -> None:
    """Gateway responses are one set per API: each is problem+json for the signed API and carries the
    Delta Sharing protocol's `errorCode` and `message` for the protocol's clients on the same API."""
    responses = of_type(resources, "AWS::ApiGateway::GatewayResponse")
    by_type = {r["Properties"]["ResponseType"]: r["Properties"] for r in responses.values()}
    assert {"UNAUTHORIZED", "ACCESS_DENIED", "MISSING_AUTHENTICATION_TOKEN", "THROTTLED", "DEFAULT_4XX", "DEFAULT_5XX"} <= set(
        by_type
    )
    for properties in by_type.values():
        assert properties["ResponseParameters"]["gatewayresponse.header.Content-Type"] == "'application/problem+json'"
        body = json.loads(properties["ResponseTemplates"]["application/json"])
        assert body["code"] and body["errorCode"] and body["message"]
    assert by_type["UNAUTHORIZED"]["StatusCode"] == "401"
    assert json.loads(by_type["UNAUTHORIZED"]["ResponseTemplates"]["application/json"])["errorCode"] == "UNAUTHENTICATED"
    assert json.loads(by_type["DEFAULT_5XX"]["ResponseTemplates"]["application/json"])["errorCode"] == "INTERNAL_ERROR"
    assert by_type["INVALID_API_KEY"]["StatusCode"] == "409"  # registered, not yet provisioned
    assert json.loads(by_type["INVALID_API_KEY"]["ResponseTemplates"]["application/json"])["code"] == "department_not_ready"


def test_queues_have_dead_letter_queues_and_are_encrypted_and_tls_only(resources: Resources) -> None:
    queues = of_type(resources, "AWS::SQS::Queue")
    assert len(queues) == 2 * len(SPEC.queues) + 1  # and one for what EventBridge and async invocations could not deliver
    consumers = [q for q in queues.values() if "RedrivePolicy" in q["Properties"]]
    assert len(consumers) == len(SPEC.queues)
    assert all(q["Properties"]["SqsManagedSseEnabled"] for q in queues.values())
    for policy in of_type(resources, "AWS::SQS::QueuePolicy").values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        assert any(s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}} for s in statements)


def test_event_bus_routes_platform_events_to_their_queue(resources: Resources) -> None:
    assert len(of_type(resources, "AWS::Events::EventBus")) == 1
    rules = of_type(resources, "AWS::Events::Rule")
    # The platform's own events (on its bus); the key events of monitoring are on the default bus.
    routing = [r for r in rules.values() if "EventPattern" in r["Properties"] and "EventBusName" in r["Properties"]]
    scheduled = [r for r in rules.values() if "ScheduleExpression" in r["Properties"]]
    assert len(routing) == len(SPEC.rules) and len(scheduled) == len(SPEC.schedules)
    routed = {t for rule in routing for t in rule["Properties"]["EventPattern"]["detail-type"]}
    assert routed == {t.detail_type() for t in EVENT_TYPES}
    assert scheduled[0]["Properties"]["ScheduleExpression"] == "rate(1 minute)"
    for rule in rules.values():  # nothing EventBridge fails to deliver is lost
        assert all("DeadLetterConfig" in target for target in rule["Properties"]["Targets"])
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
    compiled = list(code_dir.rglob("*.pyc"))
    if os.environ.get("LAMBDA_PYTHON"):  # `make` names the Lambda runtime's Python: every module has its .pyc
        assert len(compiled) == len(list(code_dir.rglob("*.py")))
    # Never the host's own bytecode, which Lambda's 3.13 could not use.
    assert all(p.name.endswith(".cpython-313.pyc") for p in compiled), compiled[:3]


def test_the_ingest_function_consumes_its_queue_with_partial_batch_failures(resources: Resources) -> None:
    mappings = of_type(resources, "AWS::Lambda::EventSourceMapping")
    assert len(mappings) == len([q for q in SPEC.queues if q.consumer])
    assert all(m["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"] for m in mappings.values())
    assert sorted(m["Properties"]["BatchSize"] for m in mappings.values()) == sorted(
        q.batch_size for q in SPEC.queues if q.consumer
    )
    assert all("ScalingConfig" in m["Properties"] for m in mappings.values())  # a burst cannot take all concurrency
    functions = of_type(resources, "AWS::Lambda::Function")
    ingest = [f for name, f in functions.items() if "Functioningest" in name]
    assert ingest[0]["Properties"]["EphemeralStorage"] == {"Size": 10240}
    for queue in SPEC.queues:  # AWS advises six times the consumer's timeout
        consumer = next(f for name, f in functions.items() if f"Function{queue.consumer}" in name)
        assert queue.visibility_timeout_seconds >= 6 * consumer["Properties"]["Timeout"]


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


def test_cfn_lint_finds_no_error_in_the_template(synthesised: Synthesised) -> None:
    template = synthesised.outdir / f"{synthesised.stack.stack_name}.template.json"
    result = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), "--non-zero-exit-code", "error", str(template)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    # Only CDK's redundant DependsOn warnings remain (W3005), nothing else.
    assert set(re.findall(r"^([EW]\d{4})", result.stdout, re.MULTILINE)) <= {"W3005"}, result.stdout[-3000:]


def test_every_json_body_must_be_a_json_object_at_the_edge(resources: Resources) -> None:
    """API Gateway's validator holds every JSON body route to the body model (a JSON object), before
    any function runs; the functions answer the rest precisely (infra/request_models.py says why)."""
    from jsonschema import Draft4Validator

    bodies = json_body_routes()
    assert len(bodies) >= 19 and bodies <= {(r.method, r.path) for r in SPEC.routes}
    ((model_id, resource),) = of_type(resources, "AWS::ApiGateway::Model").items()
    model = resource["Properties"]
    assert model["Name"] == MODEL_NAME and model["ContentType"] == "application/json"
    assert model["Schema"] == BODY_MODEL
    Draft4Validator.check_schema(model["Schema"])
    methods = of_type(resources, "AWS::ApiGateway::Method").values()
    with_model = [m["Properties"] for m in methods if "RequestModels" in m["Properties"]]
    assert len(with_model) == len(bodies)  # the route's own method: ANY on its path reaches the 405
    assert all(m["RequestModels"] == {"application/json": {"Ref": model_id}} for m in with_model)
    validators = of_type(resources, "AWS::ApiGateway::RequestValidator").values()
    assert [v["Properties"]["ValidateRequestBody"] for v in validators] == [True]
