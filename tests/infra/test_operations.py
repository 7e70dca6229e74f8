"""Operable: alarms that reach someone, a dashboard, WAF and throttles per department (the same
figures the embedded gateway applies), logs that say who, and stages from cdk.json."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from infra.cloud.api import waf_rate_per_ip
from infra.cloud.config import DeploymentConfig
from infra.spec import SPEC
from tests.infra.conftest import Synthesised, of_type
from tests.infra.iam import Resources


def test_alarms_reach_the_stages_addresses_through_a_topic_cloudwatch_may_use(
    synthesised: Synthesised, resources: Resources
) -> None:
    emails = synthesised.context["cityshare"]["stages"]["prod"]["alarmEmails"]
    assert emails
    subscriptions = [s["Properties"] for s in of_type(resources, "AWS::SNS::Subscription").values()]
    assert sorted(s["Endpoint"] for s in subscriptions if s["Protocol"] == "email") == sorted(emails)
    assert all("RedrivePolicy" in s for s in subscriptions)
    topics = {n: t for n, t in of_type(resources, "AWS::SNS::Topic").items() if n.startswith("MonitoringAlarms")}
    (topic,) = topics.values()
    key_id = topic["Properties"]["KmsMasterKeyId"]["Fn::GetAtt"][0]
    key_policy = json.dumps(resources[key_id]["Properties"]["KeyPolicy"])
    assert "cloudwatch.amazonaws.com" in key_policy and "kms:GenerateDataKey" in key_policy
    topic_policy = json.dumps(of_type(resources, "AWS::SNS::TopicPolicy"))
    assert "cloudwatch.amazonaws.com" in topic_policy
    alarms = of_type(resources, "AWS::CloudWatch::Alarm")
    names = {a["Properties"]["MetricName"] for a in alarms.values() if "MetricName" in a["Properties"]}
    assert {"ApproximateNumberOfMessagesVisible", "Errors", "Throttles", "5XXError", "Latency"} <= names
    assert {"ApproximateAgeOfOldestMessage", "AuditWriteFailures", "4XXError", "BlockedRequests"} <= names
    (blocks,) = [a["Properties"] for a in alarms.values() if a["Properties"].get("MetricName") == "BlockedRequests"]
    (acl,) = of_type(resources, "AWS::WAFv2::WebACL").values()
    assert {"Name": "WebACL", "Value": acl["Properties"]["Name"]} in blocks["Dimensions"]  # WAF's metrics are by name
    assert all(a["Properties"]["AlarmActions"] for a in alarms.values())
    queues = len(SPEC.queues) + 1
    assert sum(a["Properties"].get("MetricName") == "ApproximateNumberOfMessagesVisible" for a in alarms.values()) == queues


def test_key_events_reach_the_alarms_topic(resources: Resources) -> None:
    """Disabling a department's key, scheduling its deletion, replacing its policy or alias, tried or
    done, is told to the platform team; so is a deletion completed."""
    rules = {n: r["Properties"] for n, r in of_type(resources, "AWS::Events::Rule").items() if n.startswith("Monitoring")}
    patterns = [rule["EventPattern"] for rule in rules.values()]
    calls = next(p for p in patterns if p["detail-type"] == ["AWS API Call via CloudTrail"])
    assert calls["source"] == ["aws.kms"] and {"DisableKey", "ScheduleKeyDeletion", "PutKeyPolicy"} <= set(
        calls["detail"]["eventName"]
    )
    assert any(p["detail-type"] == ["KMS CMK Deletion"] for p in patterns)
    (topic_name,) = [n for n in of_type(resources, "AWS::SNS::Topic") if n.startswith("MonitoringAlarms")]
    assert all(rule["Targets"][0]["Arn"] == {"Ref": topic_name} for rule in rules.values())
    topic_policy = json.dumps(of_type(resources, "AWS::SNS::TopicPolicy"))
    assert "events.amazonaws.com" in topic_policy
    key_id = resources[topic_name]["Properties"]["KmsMasterKeyId"]["Fn::GetAtt"][0]
    key_policy = json.dumps(resources[key_id]["Properties"]["KeyPolicy"])
    assert "events.amazonaws.com" in key_policy


def test_the_dashboard_shows_api_functions_queues_ingest_audit_and_each_department(resources: Resources) -> None:
    (dashboard,) = of_type(resources, "AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for shown in ("5XXError", "4XXError", "Latency", "Errors", "Throttles", "Duration", "ApproximateAgeOfOldestMessage"):
        assert shown in body, shown
    for metric in (
        "Requests",
        "Refusals",
        "IngestLag",
        "UploadsPublished",
        "UploadsRejected",
        "UploadsFailed",
        "AuditWriteFailures",
    ):
        assert metric in body, metric
    assert "SEARCH(" in body and "CityShare,department" in body


def test_throttles_per_department_and_per_stage_are_the_specs(resources: Resources) -> None:
    (plan,) = of_type(resources, "AWS::ApiGateway::UsagePlan").values()
    assert plan["Properties"]["Throttle"] == {"RateLimit": SPEC.limits.rate_per_second, "BurstLimit": SPEC.limits.burst}
    (api,) = of_type(resources, "AWS::ApiGateway::RestApi").values()
    assert api["Properties"]["ApiKeySourceType"] == "AUTHORIZER"
    (stage,) = of_type(resources, "AWS::ApiGateway::Stage").values()
    settings = stage["Properties"]["MethodSettings"][0]
    assert settings["ThrottlingRateLimit"] == SPEC.limits.stage_rate_per_second
    assert settings["ThrottlingBurstLimit"] == SPEC.limits.stage_burst
    assert settings["LoggingLevel"] == "ERROR" and stage["Properties"]["TracingEnabled"] is True
    access_format = json.loads(stage["Properties"]["AccessLogSetting"]["Format"])
    assert access_format["department"] == "$context.authorizer.department_id"
    assert access_format["principal"] == "$context.authorizer.principal_id"
    provisioner = next(f for n, f in of_type(resources, "AWS::Lambda::Function").items() if "Functionprovisioner" in n)
    assert "Ref" in provisioner["Properties"]["Environment"]["Variables"]["USAGE_PLAN_ID"]


def test_a_waf_acl_with_managed_rules_and_a_rate_rule_guards_the_stage(synthesised: Synthesised, resources: Resources) -> None:
    (acl,) = of_type(resources, "AWS::WAFv2::WebACL").values()
    rules = {r["Name"]: r for r in acl["Properties"]["Rules"]}
    assert {
        "AWSManagedRulesCommonRuleSet",
        "AWSManagedRulesKnownBadInputsRuleSet",
        "AWSManagedRulesAmazonIpReputationList",
    } <= set(rules)
    rate = rules["RequestsPerClientIp"]["Statement"]["RateBasedStatement"]
    assert rate["AggregateKeyType"] == "IP"
    # Departments behind one city egress address share it: the address may send what the stage accepts.
    assert rate["Limit"] == waf_rate_per_ip(SPEC.limits) == SPEC.limits.stage_rate_per_second * 300
    assert rate["Limit"] >= SPEC.limits.rate_per_second * 300 * 6  # six departments at their full rate
    (association,) = of_type(resources, "AWS::WAFv2::WebACLAssociation").values()
    assert "restapis" in json.dumps(association["Properties"]["ResourceArn"])
    (logging,) = of_type(resources, "AWS::WAFv2::LoggingConfiguration").values()
    assert logging["Properties"]["RedactedFields"] == [{"SingleHeader": {"Name": "authorization"}}]


def test_eventbridge_targets_and_scheduled_functions_keep_what_they_could_not_deliver(resources: Resources) -> None:
    for rule in of_type(resources, "AWS::Events::Rule").values():
        for target in rule["Properties"]["Targets"]:
            assert "DeadLetterConfig" in target
    scheduled = {s.function for s in SPEC.schedules}
    for name, function in of_type(resources, "AWS::Lambda::Function").items():
        if any(f"Function{f}" in name for f in scheduled):
            assert "DeadLetterConfig" in function["Properties"]


def test_athena_results_expire_and_are_encrypted(resources: Resources) -> None:
    (workgroup,) = of_type(resources, "AWS::Athena::WorkGroup").values()
    configuration = workgroup["Properties"]["WorkGroupConfiguration"]
    assert configuration["EnforceWorkGroupConfiguration"] is True
    assert configuration["ResultConfiguration"]["EncryptionConfiguration"]["EncryptionOption"] == "SSE_KMS"
    rules = json.dumps(of_type(resources, "AWS::S3::Bucket"))
    assert '"Prefix": "athena-results/"' in rules


def test_stages_come_from_cdk_json_and_prod_keeps_its_data(synthesised: Synthesised, resources: Resources) -> None:
    context = synthesised.context["cityshare"]
    dev = DeploymentConfig.from_context(context, "dev")
    prod = DeploymentConfig.from_context(context, "prod")
    assert (dev.retain_data, prod.retain_data) == (False, True)
    assert prod.region == dev.region == context["region"]
    with pytest.raises(ValueError):
        DeploymentConfig.from_context(context, "staging")
    with pytest.raises(ValidationError):
        DeploymentConfig.from_context({**context, "stages": {"dev": {"logRetentionDays": 11}}}, "dev")
    tables = of_type(resources, "AWS::DynamoDB::GlobalTable")
    assert all(t["DeletionPolicy"] == "Retain" for t in tables.values())
    assert all(t["Properties"]["Replicas"][0]["DeletionProtectionEnabled"] for t in tables.values())
    assert all(k["DeletionPolicy"] == "Retain" for k in of_type(resources, "AWS::KMS::Key").values())


def test_tables_are_backed_up_nightly_to_a_locked_vault_and_prod_keeps_its_logs(
    synthesised: Synthesised, resources: Resources
) -> None:
    prod = DeploymentConfig.from_context(synthesised.context["cityshare"], "prod")
    (vault,) = of_type(resources, "AWS::Backup::BackupVault").values()
    assert vault["Properties"]["LockConfiguration"]["MinRetentionDays"] == prod.backup_retention_days
    assert "ChangeableForDays" not in vault["Properties"]["LockConfiguration"]  # governance mode
    assert "EncryptionKeyArn" in vault["Properties"] and vault["DeletionPolicy"] == "Retain"
    refused = json.dumps(vault["Properties"]["AccessPolicy"])
    assert "backup:DeleteRecoveryPoint" in refused and '"Deny"' in refused
    (plan,) = of_type(resources, "AWS::Backup::BackupPlan").values()
    (rule,) = plan["Properties"]["BackupPlan"]["BackupPlanRule"]
    assert rule["Lifecycle"]["DeleteAfterDays"] == prod.backup_retention_days
    (selection,) = of_type(resources, "AWS::Backup::BackupSelection").values()
    chosen = json.dumps(selection["Properties"]["BackupSelection"]["Resources"])
    tables = of_type(resources, "AWS::DynamoDB::GlobalTable")
    assert len(tables) == len(SPEC.tables) and all(name in chosen for name in tables)
    role_policy = json.dumps(
        [p for n, p in of_type(resources, "AWS::IAM::Policy").items() if n.startswith("BackupsPlanTablesRole")]
    )
    assert "kms:CreateGrant" in role_policy and "kms:Decrypt" in role_policy  # the vault's and the tables' keys
    logs = of_type(resources, "AWS::Logs::LogGroup")
    functions = [g for n, g in logs.items() if n.startswith("FunctionsLogs")]
    assert len(functions) == len(SPEC.functions) and all(g["DeletionPolicy"] == "Retain" for g in functions)
    dev = DeploymentConfig.from_context(synthesised.context["cityshare"], "dev")
    assert (dev.backup_vault_lock, prod.backup_vault_lock) == (False, True)
    assert prod.noncurrent_version_days >= 365 and prod.backup_retention_days >= 35


def test_prod_reserves_each_functions_share_of_the_accounts_concurrency(resources: Resources) -> None:
    reserved = SPEC.reserved_concurrency()
    found = {
        spec.name: function["Properties"].get("ReservedConcurrentExecutions")
        for spec in SPEC.functions
        for name, function in of_type(resources, "AWS::Lambda::Function").items()
        if name.startswith(f"FunctionsFunction{spec.name.replace('-', '')}")
    }
    assert found == reserved
    assert reserved["api"] >= SPEC.limits.stage_rate_per_second * 0.1  # the stage's full rate at 100 ms a request
    assert reserved["ingest"] >= SPEC.queue("ingest").max_concurrency


def test_the_api_on_the_citys_own_name_takes_tls_1_2_and_no_other_address(synthesised: Synthesised) -> None:
    """With apiDomainName and apiCertificateArn the API is served on that name with TLS 1.2 at
    least, API Gateway's execute-api address is off (nothing reaches the API around the name), and
    the profiles' endpoint (ApiUrl) and the console's connect-src are the name."""
    from aws_cdk import App
    from aws_cdk.assertions import Template

    from app import build_app

    certificate = "arn:aws:acm:eu-west-1:123456789012:certificate/12345678-1234-1234-1234-123456789012"
    context = json.loads(json.dumps(synthesised.context))
    context["cityshare"]["stages"]["prod"] |= {"apiDomainName": "api.data.city.example", "apiCertificateArn": certificate}
    app = App(context=context, outdir=str(synthesised.outdir.parent / "cdk.out-domain"))
    stack = build_app(
        app,
        layer_dir=synthesised.layer_dir,
        code_dir=synthesised.outdir.parent / "function-code",
        console_dir=synthesised.console_dir,
    )
    resources = Template.from_stack(stack).to_json()["Resources"]
    (domain,) = of_type(resources, "AWS::ApiGateway::DomainName").values()
    assert domain["Properties"]["DomainName"] == "api.data.city.example"
    assert domain["Properties"]["SecurityPolicy"] == "TLS_1_2"
    assert domain["Properties"]["RegionalCertificateArn"] == certificate
    (api,) = of_type(resources, "AWS::ApiGateway::RestApi").values()
    assert api["Properties"]["DisableExecuteApiEndpoint"] is True
    assert len(of_type(resources, "AWS::ApiGateway::BasePathMapping")) == 1
    outputs = Template.from_stack(stack).to_json()["Outputs"]
    assert outputs["ApiUrl"]["Value"] == "https://api.data.city.example/"
    with pytest.raises(ValidationError, match="stack's region"):
        DeploymentConfig.model_validate(
            {
                "region": "eu-west-1",
                "apiDomainName": "api.city.example",
                "apiCertificateArn": certificate.replace("eu-west-1", "us-east-1"),
            }
        )
