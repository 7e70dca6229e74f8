"""cdk-nag findings CityShare acknowledges (AWS Solutions, NIST 800-53 rev 5, Serverless, HIPAA
Security, PCI DSS 3.2.1), each on
the one resource it concerns and with the reason it is acceptable here. Everything else fails the
synth; tests/infra checks that every acknowledgement still matches a finding (none stale)."""

from __future__ import annotations

from aws_cdk import Acknowledgment, CfnResource, Stack, Validations
from constructs import IConstruct

from infra.spec import DEPARTMENT_ROOTS, SPEC

_INLINE = "NIST.800.53.R5-IAMNoInlinePolicy"
_INLINE_REASON = (
    "Each role's policy belongs to that role alone (one role per function, written statement by statement "
    "from infra/spec.py); a managed policy would be a second resource shared by no one."
)
_FUNCTION = {
    "NIST.800.53.R5-LambdaConcurrency": "Concurrency is bounded upstream: API Gateway throttles per department and per stage, "
    "and each SQS event source mapping has a maximum concurrency (infra/spec.py); this stage does not set "
    "reservedConcurrency (cdk.json), which would take its share from the account's other workloads.",
    "NIST.800.53.R5-LambdaInsideVPC": "CityShare reaches only AWS service endpoints (S3, DynamoDB, KMS, SQS, EventBridge, "
    "STS, Athena, Glue) over TLS with IAM-signed requests; no private network resource exists to reach.",
    "Serverless-LambdaLatestVersion": "Python 3.13 is the runtime the layers' wheels and .pyc are built and tested for; "
    "3.14 follows once its wheels are tested.",
    "AwsSolutions-L1": "Python 3.13 is the runtime the layers' wheels and .pyc are built and tested for; "
    "3.14 follows once its wheels are tested.",
}
_GLUE_TABLES = (
    "The tables of CityShare's own Glue database, one per published version, created at run time (so not nameable here)."
)
_SYNCHRONOUS = {
    "NIST.800.53.R5-LambdaDLQ": "Never invoked asynchronously (API Gateway calls it synchronously, or an SQS event "
    "source whose queue has its own dead-letter queue), so a function DLQ would never receive anything.",
    "Serverless-LambdaDLQ": "Never invoked asynchronously (API Gateway calls it synchronously, or an SQS event "
    "source whose queue has its own dead-letter queue), so a function DLQ would never receive anything.",
}
_DEAD_LETTER_QUEUE = {
    "Serverless-SQSRedrivePolicy": "This queue is itself a dead-letter queue (alarmed in infra/cloud/monitoring.py); "
    "messages wait here for the platform team's redrive.",
}


def acknowledge_findings(stack: Stack) -> None:
    functions = stack.node.find_child("Functions")
    asynchronous = {schedule.function for schedule in SPEC.schedules}
    for spec in SPEC.functions:
        log_group = _token(stack, f"Functions/Logs-{spec.name}")
        _acknowledge(
            functions,
            f"Role-{spec.name}/DefaultPolicy/Resource",
            {
                f"AwsSolutions-IAM5[Resource::<{log_group}.Arn>:*]": "Log streams of the function's own log group "
                "(stream names are made by Lambda at run time).",
                "AwsSolutions-IAM5[Resource::*]": "X-Ray PutTraceSegments/PutTelemetryRecords support no resource-level "
                "permissions (the statement holds those two actions only).",
                _INLINE: _INLINE_REASON,
                **(
                    {
                        f"AwsSolutions-IAM5[Resource::arn:aws:glue:{stack.region}:<AWS::AccountId>:table/{_database(stack)}/*]": _GLUE_TABLES
                    }
                    if spec.query_catalog
                    else {}
                ),
            },
        )
        findings = dict(_FUNCTION)
        if _reserves_concurrency(stack):  # the finding is answered by the reservation itself
            findings.pop("NIST.800.53.R5-LambdaConcurrency")
        if spec.name not in asynchronous:
            findings.update(_SYNCHRONOUS)
        _acknowledge(functions, f"Function-{spec.name}/Resource", findings)
        for child in functions.node.find_child(f"Function-{spec.name}").node.children:
            if child.node.id.startswith("SqsEventSource"):
                _acknowledge(
                    child,
                    "Resource",
                    {
                        "Serverless-LambdaEventSourceMappingDestination": "On-failure destinations exist for stream "
                        "sources only; for SQS the queue's redrive policy moves failed messages to its dead-letter queue."
                    },
                )
    data = _token(stack, "Storage/Bucket-data")
    account_keys = f"arn:aws:kms:{stack.region}:<AWS::AccountId>:key/*"
    gateway = f"arn:aws:apigateway:{stack.region}::"
    _acknowledge(
        stack,
        "QueryRole/Role/DefaultPolicy/Resource",
        {
            f"AwsSolutions-IAM5[Resource::<{data}.Arn>/athena-results/*]": "Athena's query results of the derived workgroup, "
            "named by Athena at run time.",
            f"AwsSolutions-IAM5[Resource::<{data}.Arn>/curated/*]": "Only with aws:CalledViaFirst = athena.amazonaws.com: "
            "Athena reading the curated inputs of a derived dataset (the bucket policy and each department key's policy "
            "allow this role alone to do so), and each session is narrowed by its policy to the query's input versions.",
            f"AwsSolutions-IAM5[Resource::{account_keys}]": "Departments' keys are made at run time; only kms:Decrypt, "
            "only through Athena, only keys tagged with this stage (each session: its inputs' owners' keys).",
            f"AwsSolutions-IAM5[Resource::arn:aws:glue:{stack.region}:<AWS::AccountId>:table/{_database(stack)}/*]": _GLUE_TABLES
            + " Each query session is narrowed to its inputs' tables.",
            _INLINE: _INLINE_REASON,
        },
    )
    _acknowledge(
        functions,
        "Role-provisioner/DefaultPolicy/Resource",
        {
            f"AwsSolutions-IAM5[Resource::{account_keys}]": "Keys are created at run time for each registered department: "
            "CreateKey only with this stage's and a department's tags, management only of keys tagged with this stage.",
            f"AwsSolutions-IAM5[Resource::arn:aws:kms:{stack.region}:<AWS::AccountId>:alias/cityshare/{_stage(stack)}/departments/*]": (
                "Aliases of departments' keys, one per department registered at run time, under this stage's prefix only."
            ),
            f"AwsSolutions-IAM5[Resource::{gateway}/apikeys/*]": "Departments' API keys, made at run time (one per "
            "department, on this stage's usage plan).",
            f"AwsSolutions-IAM5[Resource::{gateway}/tags/*]": "Tagging the API keys it creates with their department and stage.",
        },
    )
    role_findings = {
        f"AwsSolutions-IAM5[Resource::<{data}.Arn>/{root}/<aws:PrincipalTag/{'cityshare:department'}>/*]": (
            f"Objects under {root}/ of the one department the session is tagged with (aws:PrincipalTag): the prefix "
            "is the isolation itself."
        )
        for root in DEPARTMENT_ROOTS
    }
    role_findings[f"AwsSolutions-IAM5[Resource::{account_keys}]"] = (
        "Departments' keys are made at run time; the condition admits only the key tagged with the session's own "
        "department and this stage."
    )
    role_findings[_INLINE] = _INLINE_REASON
    _acknowledge(stack, "DataRole/Role/DefaultPolicy/Resource", role_findings)
    _acknowledge(
        stack,
        "Storage/Bucket-data/Notifications/HandlerPolicy/Resource",
        {_INLINE: "CDK's own deploy-time handler that configures the bucket's notifications; its policy is CDK's."},
    )
    replication = (
        "Cross-region replication needs a bucket in a second region, which is the city's disaster-recovery choice; "
        "the bucket is versioned, so replication can be added without change."
    )
    _acknowledge(
        stack,
        "Storage/AccessLogs/Resource",
        {
            "NIST.800.53.R5-S3BucketReplicationEnabled": replication,
            "NIST.800.53.R5-S3DefaultEncryptionKMS": "S3 server access logs can only be delivered to a bucket "
            "encrypted with SSE-S3.",
        },
    )
    _acknowledge(stack, "Storage/Bucket-data/Resource", {"NIST.800.53.R5-S3BucketReplicationEnabled": replication})
    _acknowledge(stack, "Storage/Bucket-audit-archive/Resource", {"NIST.800.53.R5-S3BucketReplicationEnabled": replication})
    archive = _token(stack, "Storage/Bucket-audit-archive")
    seals = {
        f"AwsSolutions-IAM5[Resource::<{archive}.Arn>/seals/*]": "Each chain's seals (chains are departments, "
        "registered at run time); the seal key's policy and the bucket's let the sealer alone write them."
    }
    _acknowledge(functions, "Role-api/DefaultPolicy/Resource", seals)
    _acknowledge(
        functions,
        "Role-sealer/DefaultPolicy/Resource",
        seals
        | {
            f"AwsSolutions-IAM5[Resource::<{archive}.Arn>/audit/*]": "Each chain's archived entries (chains are "
            "departments, registered at run time), under Object Lock: written once per range, never deleted."
        },
    )
    _acknowledge(
        stack,
        f"Api/Api/DeploymentStage.{_stage(stack)}/Resource",
        {
            "NIST.800.53.R5-APIGWCacheEnabledAndEncrypted": "Every answer is for one verified caller under its grants; "
            "a cache would serve one department's answer to another. Requests are single-use signed tokens.",
            "NIST.800.53.R5-APIGWSSLEnabled": "The integrations are Lambda functions, not HTTP backends: there is no "
            "backend connection for a client certificate to authenticate.",
        },
    )
    for queue in [*(f"DeadLetters-{q.name}" for q in SPEC.queues), "Undelivered"]:
        _acknowledge(stack, f"Messaging/{queue}/Resource", _DEAD_LETTER_QUEUE)
    _acknowledge(
        stack,
        "Api/Api/CloudWatchRole/Resource",
        {
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]": (
                "The account-level role API Gateway needs to write execution logs; AWS's managed policy is the documented one."
            )
        },
    )
    _acknowledge(
        stack,
        "Backups/Plan/Tables/Role/Resource",
        {
            f"AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/{policy}]": (
                f"AWS Backup's role for backing up and restoring the tables: {policy} is the policy AWS documents "
                "for it and keeps current as the DynamoDB backup features change."
            )
            for policy in ("AWSBackupServiceRolePolicyForBackup", "AWSBackupServiceRolePolicyForRestores")
        },
    )
    _acknowledge(stack, "Backups/Plan/Tables/Role/DefaultPolicy/Resource", {_INLINE: _INLINE_REASON})
    for method in stack.node.find_child("Api").node.find_all():
        # CORS preflights (OPTIONS, a mock integration without credentials by the Fetch standard) raise nothing.
        if (
            isinstance(method, CfnResource)
            and method.cfn_resource_type == "AWS::ApiGateway::Method"
            and getattr(method, "http_method", None) != "OPTIONS"
        ):
            findings = {
                "AwsSolutions-COG4": "Callers are departments' systems signing every request with keys registered in "
                "CityShare's directory (or Delta Sharing recipients' bearer tokens); Lambda REQUEST authorizers verify "
                "them (there are no Cognito users)."
            }
            if getattr(method, "authorization_type", None) == "NONE":
                findings = {
                    "AwsSolutions-APIG4": "The open-data catalog (GET /catalog/dcat): public datasets' metadata for the "
                    "city's portal to harvest, by design without authentication; WAF and the stage throttle apply.",
                    "AwsSolutions-COG4": "The open-data catalog is public by design: no caller is authenticated there.",
                }
            _acknowledge(method, "", findings)
    for child in stack.node.children:
        if child.node.id.startswith("BucketNotificationsHandler"):
            _acknowledge(
                child,
                "Role/Resource",
                {
                    "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]": (
                        "CDK's own deploy-time handler that configures the bucket's notifications: its logging policy is CDK's."
                    )
                },
            )
    _acknowledge_console(stack, replication)


def _acknowledge_console(stack: Stack, replication: str) -> None:
    not_kms = (
        "The console's files are public code with no data (and CloudFront's logs carry no request body): SSE-S3 "
        "lets CloudFront's origin access control and its log delivery use the bucket without a key grant."
    )
    _acknowledge(
        stack,
        "Console/Files/Resource",
        {"NIST.800.53.R5-S3BucketReplicationEnabled": replication, "NIST.800.53.R5-S3DefaultEncryptionKMS": not_kms},
    )
    _acknowledge(
        stack,
        "Console/RequestLogs/Resource",
        {"NIST.800.53.R5-S3BucketReplicationEnabled": replication, "NIST.800.53.R5-S3DefaultEncryptionKMS": not_kms},
    )
    distribution = {
        "AwsSolutions-CFR1": "The city's staff work from anywhere; the page holds no data, and every API call it makes is signed "
        "with a key registered in CityShare's directory.",
        "AwsSolutions-CFR2": "The distribution serves static code only; the API the page calls has its own WAF (rate per IP, "
        "AWS managed rules) on the stage. A WAF for CloudFront would have to live in us-east-1.",
    }
    if not _has_certificate(stack):
        distribution["AwsSolutions-CFR4"] = (
            "Without consoleDomainName/consoleCertificateArn in cdk.json the distribution uses "
            "the *.cloudfront.net certificate, whose viewer policy CloudFront fixes; with them it is TLSv1.2_2021."
        )
    _acknowledge(stack, "Console/Distribution/Resource", distribution)
    deployer = next(c for c in stack.node.children if c.node.id.startswith("Custom::CDKBucketDeployment"))
    cdk_handler = "CDK's own deploy-time handler (BucketDeployment) copying the console's built files to its bucket"
    _acknowledge(
        deployer,
        "Resource",
        {
            "NIST.800.53.R5-LambdaConcurrency": f"{cdk_handler}: it runs once per deploy.",
            "NIST.800.53.R5-LambdaDLQ": f"{cdk_handler}: CloudFormation invokes it and fails the deploy if it fails.",
            "Serverless-LambdaDLQ": f"{cdk_handler}: CloudFormation invokes it and fails the deploy if it fails.",
            "NIST.800.53.R5-LambdaInsideVPC": f"{cdk_handler}: it reaches S3 and CloudFront's API only.",
            "Serverless-LambdaLatestVersion": f"{cdk_handler}: its runtime is CDK's choice.",
            "AwsSolutions-L1": f"{cdk_handler}: its runtime is CDK's choice.",
            "Serverless-LambdaTracing": f"{cdk_handler}: nothing to trace in a deploy-time copy.",
        },
    )
    _acknowledge(
        deployer,
        "ServiceRole/Resource",
        {
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]": (
                f"{cdk_handler}: its logging policy is CDK's."
            )
        },
    )
    files = _token(stack, "Console/Files")
    copy = f"{cdk_handler}: reading the asset and replacing the page's files (prune) in the console's bucket only."
    _acknowledge(
        deployer,
        "ServiceRole/DefaultPolicy/Resource",
        {
            "AwsSolutions-IAM5[Action::s3:Abort*]": copy,
            "AwsSolutions-IAM5[Action::s3:DeleteObject*]": copy,
            "AwsSolutions-IAM5[Action::s3:GetBucket*]": copy,
            "AwsSolutions-IAM5[Action::s3:GetObject*]": copy,
            "AwsSolutions-IAM5[Action::s3:List*]": copy,
            f"AwsSolutions-IAM5[Resource::<{files}.Arn>/*]": copy,
            f"AwsSolutions-IAM5[Resource::arn:aws:s3:::cdk-hnb659fds-assets-<AWS::AccountId>-{stack.region}/*]": copy,
            "AwsSolutions-IAM5[Resource::*]": f"{cdk_handler}: cloudfront:CreateInvalidation/GetInvalidation after the copy, "
            "as CDK writes it.",
            _INLINE: f"{cdk_handler}: its policy is CDK's.",
        },
    )


def _reserves_concurrency(stack: Stack) -> bool:
    return bool(getattr(stack, "config", None) and stack.config.reserved_concurrency)  # type: ignore[attr-defined]


def _has_certificate(stack: Stack) -> bool:
    return bool(getattr(stack, "config", None) and stack.config.console_certificate_arn)  # type: ignore[attr-defined]


def _database(stack: Stack) -> str:
    return str(getattr(stack.node.find_child("Queries"), "database_name", ""))


def _stage(stack: Stack) -> str:
    return stack.stack_name.split("-", 1)[1]


def _find(scope: IConstruct, path: str) -> IConstruct:
    found = scope
    for part in [p for p in path.split("/") if p]:
        found = found.node.find_child(part)
    return found


def _token(stack: Stack, path: str) -> str:
    """The logical id cdk-nag shows for the resource at `path` (as <LogicalId.Arn>)."""
    resource = _find(stack, path).node.default_child
    assert isinstance(resource, CfnResource), path
    return stack.get_logical_id(resource)


# The HIPAA Security and PCI DSS 3.2.1 packs check these as NIST 800-53 does, resource for
# resource: a NIST acknowledgement answers theirs with the same reason.
_SAME_CHECK = {
    "HIPAA.Security": (
        "S3BucketReplicationEnabled",
        "S3DefaultEncryptionKMS",
        "IAMNoInlinePolicy",
        "LambdaDLQ",
        "LambdaInsideVPC",
        "APIGWCacheEnabledAndEncrypted",
        "APIGWSSLEnabled",
        "LambdaConcurrency",
    ),
    "PCI.DSS.321": (
        "S3BucketReplicationEnabled",
        "S3DefaultEncryptionKMS",
        "IAMNoInlinePolicy",
        "LambdaInsideVPC",
        "APIGWCacheEnabledAndEncrypted",
        "APIGWSSLEnabled",
    ),
}


def _with_same_checks(findings: dict[str, str]) -> dict[str, str]:
    answered = dict(findings)
    for finding, reason in findings.items():
        rule = finding.removeprefix("NIST.800.53.R5-")
        if rule != finding:
            answered |= {f"{pack}-{rule}": reason for pack, rules in _SAME_CHECK.items() if rule in rules}
    return answered


def _acknowledge(scope: IConstruct, path: str, findings: dict[str, str]) -> None:
    target = _find(scope, path)
    for finding, reason in _with_same_checks(findings).items():
        Validations.of(target).acknowledge(Acknowledgment(id=finding, reason=reason))
